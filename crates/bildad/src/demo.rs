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
//! | `demo.spin` | `{"seconds": number}` | process-isolated: a CPU loop that never awaits |
//! | `demo.block` | `{"seconds": number}` | process-isolated: `std::thread::sleep` |
//!
//! [`templates`] gives one template per type, whose code is the type's name;
//! [`registry`] declares them, so that the node creates them at start. The two
//! process-isolated types run in a child process (`bildad_runtime::isolation`): only a
//! `SIGKILL` ends them before their time.

use bildad_core::{
    DeclaredTemplate, JobContext, JobError, JobRegistry, NewTemplate, ProcessIsolation,
};
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

/// Registers the demo job types in `registry` (the five in-process ones and the
/// [`ISOLATED_JOB_TYPES`]).
pub fn register(registry: &mut JobRegistry) -> &mut JobRegistry {
    registry
        .register("demo.echo", echo)
        .register("demo.sleep", sleep)
        .register("demo.fail", fail)
        .register("demo.panic", panic)
        .register("demo.flaky", flaky);
    register_isolated(registry)
}

/// A registry holding every demo job type and declaring their templates.
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
        .chain(isolated_templates())
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
    let d = seconds(&ctx)?;
    tokio::select! {
        () = tokio::time::sleep(d) => Ok(Some(json!({"slept_seconds": d.as_secs_f64()}))),
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

// --- the process-isolated demo types ---------------------------------------------

/// The names of the process-isolated demo job types.
pub const ISOLATED_JOB_TYPES: [&str; 2] = ["demo.spin", "demo.block"];

/// Registers `demo.spin` and `demo.block`, marked process-isolated, in `registry`.
pub fn register_isolated(registry: &mut JobRegistry) -> &mut JobRegistry {
    registry
        .register("demo.spin", spin)
        .register("demo.block", block);
    for name in ISOLATED_JOB_TYPES {
        registry.isolate(name, ProcessIsolation::default());
    }
    registry
}

/// The templates of the process-isolated demo types (after the others in the list).
fn isolated_templates() -> Vec<NewTemplate> {
    let seconds = json!({
        "type": "object",
        "required": ["seconds"],
        "properties": {"seconds": {"type": "number", "minimum": 0}}
    });
    [
        ("demo.spin", "Spin the CPU (process-isolated)"),
        ("demo.block", "Block a thread (process-isolated)"),
    ]
    .into_iter()
    .zip(100..)
    .map(|((code, name), order)| {
        let mut t = NewTemplate::new(code, name, code, seconds.clone());
        t.display_order = order;
        t
    })
    .collect()
}

/// `context.seconds`, bounded to a year.
fn seconds(ctx: &JobContext) -> Result<Duration, JobError> {
    let seconds = ctx
        .context
        .get("seconds")
        .and_then(Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .ok_or_else(|| JobError::permanent("context.seconds must be a number >= 0"))?;
    // Beyond a year is a typo; Duration::from_secs_f64 would panic on absurd values.
    Ok(Duration::from_secs_f64(seconds.min(366.0 * 24.0 * 3600.0)))
}

/// Burns a CPU for `seconds`, never awaiting and never looking at its cancellation.
async fn spin(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let d = seconds(&ctx)?;
    let start = std::time::Instant::now();
    let mut x: u64 = 0;
    while start.elapsed() < d {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i));
        }
    }
    Ok(Some(
        json!({"spun_seconds": d.as_secs_f64(), "x": x % 1000}),
    ))
}

/// Blocks its thread for `seconds` (`std::thread::sleep`), never awaiting.
async fn block(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let d = seconds(&ctx)?;
    std::thread::sleep(d);
    Ok(Some(json!({"blocked_seconds": d.as_secs_f64()})))
}
