//! The demo job types of SPEC §5, registered by `bildad serve` so that the binary is
//! useful out of the box and black-box tests can drive every path.
//!
//! | job type | context | does |
//! |---|---|---|
//! | `demo.echo` | any object | succeeds at once; output = the context |
//! | `demo.sleep` | `{"seconds": number}` | sleeps (async, cancellable), then succeeds |
//! | `demo.fail` | `{"message": string}` | returns an error with that message |
//! | `demo.panic` | `{"message": string}` | panics with that message |
//! | `demo.flaky` | `{"fail_times": integer}` | fails while `retry < fail_times`, then succeeds |
//!
//! [`templates`] gives one template per type, whose code is the type's name;
//! [`registry`] declares them, so that the node creates them at start.

use bildad_core::{DeclaredTemplate, JobContext, JobError, JobRegistry, NewTemplate};
use serde_json::{Value, json};
use std::time::Duration;

/// The names of the demo job types.
pub const JOB_TYPES: [&str; 5] = [
    "demo.echo",
    "demo.sleep",
    "demo.fail",
    "demo.panic",
    "demo.flaky",
];

/// Registers the five demo job types in `registry`.
pub fn register(registry: &mut JobRegistry) -> &mut JobRegistry {
    registry
        .register("demo.echo", echo)
        .register("demo.sleep", sleep)
        .register("demo.fail", fail)
        .register("demo.panic", panic)
        .register("demo.flaky", flaky)
}

/// A registry holding the five demo job types and declaring their templates.
pub fn registry() -> JobRegistry {
    let mut r = JobRegistry::new();
    register(&mut r);
    declare_templates(&mut r);
    r
}

/// One template per demo job type; its code is the type's name and its schema
/// describes the context the type expects.
pub fn templates() -> Vec<NewTemplate> {
    let message = json!({
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}}
    });
    let specs: [(&str, &str, Value); 5] = [
        ("demo.echo", "Echo the context", json!({"type": "object"})),
        (
            "demo.sleep",
            "Sleep, then succeed",
            json!({
                "type": "object",
                "required": ["seconds"],
                "properties": {"seconds": {"type": "number", "minimum": 0}}
            }),
        ),
        ("demo.fail", "Fail with a message", message.clone()),
        ("demo.panic", "Panic with a message", message),
        (
            "demo.flaky",
            "Fail fail_times times, then succeed",
            json!({
                "type": "object",
                "required": ["fail_times"],
                "properties": {"fail_times": {"type": "integer", "minimum": 0}}
            }),
        ),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (code, name, schema))| {
            let mut t = NewTemplate::new(code, name, code, schema);
            t.display_order = i32::try_from(i).unwrap_or(0);
            t
        })
        .collect()
}

/// Declares the demo templates in `registry` ([`templates`]): the node creates them at
/// start when missing and keeps their job type and schema in step; an operator's other
/// edits (name, defaults, `active`, order) stay ([`bildad_core::declare`]).
pub fn declare_templates(registry: &mut JobRegistry) -> &mut JobRegistry {
    for t in templates() {
        registry.declare(DeclaredTemplate::new(t));
    }
    registry
}

async fn echo(ctx: JobContext) -> Result<Option<Value>, JobError> {
    Ok(Some(ctx.context))
}

async fn sleep(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let seconds = ctx
        .context
        .get("seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| JobError::permanent("context.seconds must be a number >= 0"))?;
    // Beyond a year is a typo; Duration::from_secs_f64 would panic on absurd values.
    let d = Duration::from_secs_f64(seconds.min(366.0 * 24.0 * 3600.0));
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(Some(json!({"slept_seconds": seconds}))),
        () = ctx.cancellation.cancelled() => Err(JobError::msg("cancelled while sleeping")),
    }
}

async fn fail(ctx: JobContext) -> Result<Option<Value>, JobError> {
    Err(JobError::msg(message(&ctx)))
}

async fn panic(ctx: JobContext) -> Result<Option<Value>, JobError> {
    panic!("{}", message(&ctx));
}

async fn flaky(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let fail_times = ctx
        .context
        .get("fail_times")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if i64::from(ctx.retry) < fail_times {
        Err(JobError::msg(format!(
            "flaky failure {} of {fail_times}",
            ctx.retry + 1
        )))
    } else {
        Ok(Some(json!({"succeeded_on_retry": ctx.retry})))
    }
}

fn message(ctx: &JobContext) -> String {
    ctx.context
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("demo failure")
        .to_owned()
}
