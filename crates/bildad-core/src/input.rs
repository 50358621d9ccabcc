//! What callers hand to the store: new templates and entries, claims, finalizes —
//! and the rules every store applies to them before writing anything.

use crate::error::{StoreError, Violation};
use crate::model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The most bytes a run's `reason` keeps (SPEC §2.4).
pub const MAX_REASON_BYTES: usize = 4096;
/// The longest template code, job type, name or entry identifier, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// The longest timeout: one year.
pub const MAX_TIMEOUT_SECONDS: i32 = 366 * 24 * 3600;
/// The most retries an entry may ask for.
pub const MAX_RETRIES: i32 = 1000;
/// The longest delay of an entry's `run_in`: one hundred years (every store adds it to
/// its clock exactly, and no store's timestamps overflow).
pub const MAX_RUN_IN: Duration = Duration::from_secs(100 * 366 * 24 * 3600);

/// Default `timeout_seconds` of a template (SPEC §1).
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 3600;
/// Default `max_retries` of a template (SPEC §1).
pub const DEFAULT_MAX_RETRIES: i32 = 3;
/// Default priority of an entry (SPEC §1).
pub const DEFAULT_PRIORITY: i32 = 5;
/// The queue of a template that names none (SPEC §8).
pub const DEFAULT_QUEUE: &str = "default";

/// A template to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewTemplate {
    /// Unique code: letters, digits, `_ . : -`, 1..=255 characters.
    pub code: String,
    /// Display name, non-empty.
    pub name: String,
    /// The job type that runs it, non-empty.
    pub job_type: String,
    /// A JSON Schema that resolves locally.
    pub context_schema: Value,
    /// Default true.
    pub active: bool,
    /// Default 0.
    pub display_order: i32,
    /// Default 3600.
    pub default_timeout_seconds: i32,
    /// Default 3.
    pub default_max_retries: i32,
    /// The queue its entries join unless an enqueue names another; default
    /// [`DEFAULT_QUEUE`]. Same characters as a code.
    #[serde(default = "default_queue")]
    pub queue: String,
}

fn default_queue() -> String {
    DEFAULT_QUEUE.to_owned()
}

impl NewTemplate {
    /// A template with the SPEC §1 defaults.
    pub fn new(
        code: impl Into<String>,
        name: impl Into<String>,
        job_type: impl Into<String>,
        context_schema: Value,
    ) -> Self {
        Self {
            code: code.into(),
            name: name.into(),
            job_type: job_type.into(),
            context_schema,
            active: true,
            display_order: 0,
            default_timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
            default_max_retries: DEFAULT_MAX_RETRIES,
            queue: default_queue(),
        }
    }

    /// Every rule a new template must satisfy, the schema included.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut v = Vec::new();
        check_code("/code", &self.code, &mut v);
        check_text("/name", &self.name, &mut v);
        check_code("/job_type", &self.job_type, &mut v);
        check_timeout(
            "/default_timeout_seconds",
            self.default_timeout_seconds,
            &mut v,
        );
        check_retries("/default_max_retries", self.default_max_retries, &mut v);
        check_code("/queue", &self.queue, &mut v);
        check_no_nul("/context_schema", &self.context_schema, &mut v);
        v.extend(crate::validation::check_schema(&self.context_schema));
        finish(v)
    }
}

/// A partial update of a template; `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplatePatch {
    /// New display name.
    pub name: Option<String>,
    /// New job type.
    pub job_type: Option<String>,
    /// New schema (must be valid and local).
    pub context_schema: Option<Value>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// New listing order.
    pub display_order: Option<i32>,
    /// New default timeout.
    pub default_timeout_seconds: Option<i32>,
    /// New default retries.
    pub default_max_retries: Option<i32>,
    /// New queue of the entries enqueued from now on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
}

impl TemplatePatch {
    /// Every rule the present fields must satisfy.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut v = Vec::new();
        if let Some(n) = &self.name {
            check_text("/name", n, &mut v);
        }
        if let Some(t) = &self.job_type {
            check_code("/job_type", t, &mut v);
        }
        if let Some(t) = self.default_timeout_seconds {
            check_timeout("/default_timeout_seconds", t, &mut v);
        }
        if let Some(r) = self.default_max_retries {
            check_retries("/default_max_retries", r, &mut v);
        }
        if let Some(q) = &self.queue {
            check_code("/queue", q, &mut v);
        }
        if let Some(s) = &self.context_schema {
            check_no_nul("/context_schema", s, &mut v);
            v.extend(crate::validation::check_schema(s));
        }
        finish(v)
    }
}

/// A job to enqueue. Unset fields take the template's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEntry {
    /// The template's code.
    pub template: String,
    /// The job's input; must satisfy the template's schema.
    pub context: Value,
    /// Default 5; lower runs first.
    pub priority: Option<i32>,
    /// Default: the template's.
    pub timeout_seconds: Option<i32>,
    /// Default: the template's.
    pub max_retries: Option<i32>,
    /// Default: [`new_identifier`] (a time-ordered UUID). A duplicate is a conflict.
    pub job_run_identifier: Option<String>,
    /// Default: now (database clock).
    pub run_at: Option<Timestamp>,
    /// Not before this long after the enqueue, measured on the database clock (so the
    /// node's own clock never matters). Setting both this and `run_at` is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_in: Option<Duration>,
    /// A unique job (SPEC §8): when an entry of the same template with an equal context
    /// was enqueued in the last this many seconds (queued, running or finished), nothing
    /// is written and the enqueue fails with [`StoreError::Duplicate`], naming the
    /// existing entry. `1..=`[`crate::MAX_UNIQUE_FOR_SECONDS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_for_seconds: Option<i32>,
    /// The queue to join; default: the template's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The W3C `traceparent` of the request that enqueues it: its runs' spans link to
    /// that request (see [`crate::trace_context`]). Must parse as one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_context: Option<String>,
}

/// A new entry identifier: a UUIDv7 in its hyphenated form.
///
/// Time-ordered on purpose: the identifier is a unique key of both the queue and the
/// run history, and identifiers that grow with time are inserted at the right edge of
/// those B-trees instead of on a random page of them, so that enqueue and claim cost the
/// same whether the history holds a thousand runs or a million (docs/PERFORMANCE.md).
pub fn new_identifier() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl NewEntry {
    /// An entry of `template` with `context` and every default.
    pub fn new(template: impl Into<String>, context: Value) -> Self {
        Self {
            template: template.into(),
            context,
            priority: None,
            timeout_seconds: None,
            max_retries: None,
            job_run_identifier: None,
            run_at: None,
            run_in: None,
            unique_for_seconds: None,
            queue: None,
            trace_context: None,
        }
    }

    /// Sets the identifier.
    pub fn identifier(mut self, id: impl Into<String>) -> Self {
        self.job_run_identifier = Some(id.into());
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = Some(p);
        self
    }

    /// Sets the timeout.
    pub fn timeout_seconds(mut self, t: i32) -> Self {
        self.timeout_seconds = Some(t);
        self
    }

    /// Sets the retries.
    pub fn max_retries(mut self, r: i32) -> Self {
        self.max_retries = Some(r);
        self
    }

    /// Sets the earliest start.
    pub fn run_at(mut self, t: Timestamp) -> Self {
        self.run_at = Some(t);
        self
    }

    /// Joins `queue` instead of the template's queue.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Carries the W3C `traceparent` of the enqueuing request (see
    /// [`NewEntry::trace_context`]).
    pub fn trace_context(mut self, traceparent: impl Into<String>) -> Self {
        self.trace_context = Some(traceparent.into());
        self
    }

    /// Starts no earlier than `delay` after the enqueue, on the database clock.
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_in = Some(delay);
        self
    }

    /// Makes it a unique job for `seconds` (see [`NewEntry::unique_for_seconds`]).
    pub fn unique_for_seconds(mut self, seconds: i32) -> Self {
        self.unique_for_seconds = Some(seconds);
        self
    }

    /// Its unique key (see [`crate::unique_key`]) when it is a unique job.
    pub fn unique_key(&self) -> Option<String> {
        self.unique_for_seconds
            .map(|_| crate::unique_key(&self.template, &self.context))
    }

    /// The rules that need no template: identifier, bounds. Pointers are prefixed
    /// with `prefix` (e.g. `/3` for the fourth entry of a bulk enqueue).
    pub fn check_fields(&self, prefix: &str, v: &mut Vec<Violation>) {
        // The checks name fields from the entry's root; `prefix` is put in front of the
        // pointers of what they found only, so that a valid entry costs no formatting.
        let start = v.len();
        check_code("/template", &self.template, v);
        check_no_nul("/context", &self.context, v);
        if let Some(id) = &self.job_run_identifier {
            check_identifier("/job_run_identifier", id, v);
        }
        if let Some(q) = &self.queue {
            check_code("/queue", q, v);
        }
        if let Some(t) = &self.trace_context
            && crate::Traceparent::parse(t).is_none()
        {
            v.push(Violation::new(
                "/trace_context",
                "must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)",
            ));
        }
        if let Some(t) = self.timeout_seconds {
            check_timeout("/timeout_seconds", t, v);
        }
        if let Some(r) = self.max_retries {
            check_retries("/max_retries", r, v);
        }
        if let Some(s) = self.unique_for_seconds {
            crate::unique::check_unique_for("/unique_for_seconds", s, v);
        }
        if self.run_at.is_some() && self.run_in.is_some() {
            v.push(Violation::new(
                "/run_in",
                "run_in and run_at cannot both be set",
            ));
        } else if self.run_in.is_some_and(|d| d > MAX_RUN_IN) {
            v.push(Violation::new(
                "/run_in",
                format!("must be at most {} seconds", MAX_RUN_IN.as_secs()),
            ));
        }
        if !prefix.is_empty() {
            for e in &mut v[start..] {
                e.pointer.insert_str(0, prefix);
            }
        }
    }
}

fn finish(v: Vec<Violation>) -> Result<(), StoreError> {
    if v.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(v))
    }
}

/// Reports every place in `value` that holds a NUL (`\u0000`), which PostgreSQL cannot
/// store (SPEC §4): a string, or an object with such a key, at `pointer` followed by the
/// JSON pointer inside `value`; at most 20. Every store applies it to contexts and
/// schemas, so such input is a 422 naming the field on every backend.
pub fn check_no_nul(pointer: &str, value: &Value, v: &mut Vec<Violation>) {
    if !holds_nul(value) {
        return;
    }
    let mut found = 0;
    let mut stack = vec![(pointer.to_owned(), value)];
    while let Some((here, value)) = stack.pop().filter(|_| found < 20) {
        let child = |k: &str| format!("{here}/{}", k.replace('~', "~0").replace('/', "~1"));
        let nul = match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => {
                let items = items.iter().enumerate().rev();
                stack.extend(items.map(|(i, x)| (child(&i.to_string()), x)));
                false
            }
            Value::Object(map) => {
                stack.extend(map.iter().rev().map(|(k, x)| (child(k), x)));
                map.keys().any(|k| k.contains('\0'))
            }
            _ => false,
        };
        if nul {
            found += 1;
            v.push(Violation::new(here, "must not contain NUL (\\u0000)"));
        }
    }
}

/// True when a string or an object key anywhere in `value` holds a NUL: the check's
/// fast path, which allocates nothing.
fn holds_nul(value: &Value) -> bool {
    // A stack, not recursion: a context built in code may nest deeper than a thread's stack.
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            Value::String(s) if s.contains('\0') => return true,
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    return true;
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    false
}

fn check_text(pointer: &str, s: &str, v: &mut Vec<Violation>) {
    if s.trim().is_empty() {
        v.push(Violation::new(pointer, "must not be empty"));
    } else if s.chars().count() > MAX_NAME_CHARS {
        v.push(Violation::new(
            pointer,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    } else if s.chars().any(char::is_control) {
        v.push(Violation::new(
            pointer,
            "must not contain control characters",
        ));
    }
}

/// The rule of a template code, job type or queue name (SPEC §1, §8): 1..=255 ASCII
/// letters, digits and `_ . : -`. A violation at `pointer` is added to `v`.
pub fn check_code(pointer: &str, s: &str, v: &mut Vec<Violation>) {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    if s.is_empty() {
        v.push(Violation::new(pointer, "must not be empty"));
    } else if s.len() > MAX_NAME_CHARS {
        v.push(Violation::new(
            pointer,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    } else if !s.chars().all(ok) {
        v.push(Violation::new(
            pointer,
            "may contain only ASCII letters, digits and _ . : -",
        ));
    }
}

/// Identifiers are caller-chosen idempotency keys: any printable text without `/`
/// (they appear in URL paths).
fn check_identifier(pointer: &str, s: &str, v: &mut Vec<Violation>) {
    if s.is_empty() {
        v.push(Violation::new(pointer, "must not be empty"));
    } else if s.chars().count() > MAX_NAME_CHARS {
        v.push(Violation::new(
            pointer,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    } else if s.chars().any(|c| c.is_control() || c == '/') {
        v.push(Violation::new(
            pointer,
            "must not contain control characters or '/'",
        ));
    }
}

fn check_timeout(pointer: &str, t: i32, v: &mut Vec<Violation>) {
    if !(1..=MAX_TIMEOUT_SECONDS).contains(&t) {
        v.push(Violation::new(
            pointer,
            format!("must be between 1 and {MAX_TIMEOUT_SECONDS}"),
        ));
    }
}

fn check_retries(pointer: &str, r: i32, v: &mut Vec<Violation>) {
    if !(0..=MAX_RETRIES).contains(&r) {
        v.push(Violation::new(
            pointer,
            format!("must be between 0 and {MAX_RETRIES}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::*;
    use serde_json::json;

    #[test]
    fn new_identifiers_are_uuid_v7_in_increasing_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_identifier()).collect();
        for id in &ids {
            let u = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(id, &u.hyphenated().to_string(), "hyphenated, lower case");
        }
        // Time-ordered as text, which is what the B-trees compare.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "not increasing");
    }

    #[test]
    fn reason_is_capped_on_a_char_boundary() {
        let long = "é".repeat(3000); // 6000 bytes
        let capped = cap_reason(long);
        assert!(capped.len() <= MAX_REASON_BYTES);
        assert!(capped.len() >= MAX_REASON_BYTES - 1);
        assert!(capped.chars().all(|c| c == 'é'));
    }

    #[test]
    fn template_rules_report_every_violation() {
        let mut t = NewTemplate::new("bad code", "", "demo.echo", json!({"type": 12}));
        t.default_timeout_seconds = 0;
        t.default_max_retries = -1;
        let err = t.validate().unwrap_err();
        let pointers: Vec<_> = err
            .violations()
            .iter()
            .map(|v| v.pointer.as_str())
            .collect();
        for p in [
            "/code",
            "/name",
            "/default_timeout_seconds",
            "/default_max_retries",
            "/context_schema",
        ] {
            assert!(
                pointers.iter().any(|x| x.starts_with(p)),
                "{p} missing in {pointers:?}"
            );
        }
    }

    #[test]
    fn nul_text_is_named_by_its_pointer() {
        let mut v = Vec::new();
        let value = json!({"a": ["x", "y\u{0}"], "b/c": "\u{0}", "k\u{0}": 1, "n": 1});
        check_no_nul("/context", &value, &mut v);
        check_no_nul("/context", &json!({"a": ["x"], "b": 1}), &mut v);
        NewEntry::new("t", json!("\u{0}")).check_fields("/2", &mut v);
        let pointers: Vec<_> = v.iter().map(|v| v.pointer.as_str()).collect();
        assert_eq!(
            pointers,
            ["/context", "/context/a/1", "/context/b~1c", "/2/context"]
        );
    }

    #[test]
    fn dispositions_follow_the_spec() {
        assert_eq!(FailureKind::Stopped.disposition(), Disposition::RequeueNow);
        assert_eq!(FailureKind::Removed.disposition(), Disposition::Delete);
        assert_eq!(FailureKind::Invalid.disposition(), Disposition::Delete);
        assert_eq!(FailureKind::Timeout.disposition(), Disposition::RetryRule);
        assert_eq!(FailureKind::Expired.disposition(), Disposition::RetryRule);
    }
}
