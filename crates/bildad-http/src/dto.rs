//! The wire shapes of SPEC §4. **Only this crate knows them**: core types never
//! reach the wire directly, so the API can stay stable while the model moves.

use bildad_core::{
    EntryStatus, JobRun, JobTemplate, NewEntry, NewTemplate, Page, QueueEntry, RunId, RunResult,
    RunStatus, TemplatePatch, Timestamp,
};
use bildad_runtime::EngineReport;
use chrono::SecondsFormat;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

#[allow(unused_imports)] // Named by the `schema(value_type = ...)` attributes only.
use crate::openapi::{EngineReportJson, EntryStatusSchema, RunResultSchema, RunStatusSchema};

/// RFC 3339 in UTC with a `Z`, fractional seconds only when present.
pub(crate) fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn ts_opt(t: Option<Timestamp>) -> Option<String> {
    t.map(ts)
}

/// `{"items", "total", "page", "limit"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PageJson<T> {
    pub(crate) items: Vec<T>,
    pub(crate) total: u64,
    pub(crate) page: u32,
    pub(crate) limit: u32,
}

impl<T> PageJson<T> {
    pub(crate) fn from_page<U>(p: Page<U>, f: impl FnMut(U) -> T) -> Self {
        Self {
            items: p.items.into_iter().map(f).collect(),
            total: p.total,
            page: p.page,
            limit: p.limit,
        }
    }
}

/// A template on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Template)]
pub(crate) struct TemplateJson {
    code: String,
    name: String,
    job_type: String,
    active: bool,
    display_order: i32,
    default_timeout_seconds: i32,
    default_max_retries: i32,
    #[schema(schema_with = crate::openapi::json_schema)]
    context_schema: Value,
    #[schema(format = DateTime)]
    inserted_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// The queue its entries join unless an enqueue names another (SPEC §8).
    queue: String,
}

impl From<JobTemplate> for TemplateJson {
    fn from(t: JobTemplate) -> Self {
        Self {
            code: t.code,
            name: t.name,
            job_type: t.job_type,
            active: t.active,
            display_order: t.display_order,
            default_timeout_seconds: t.default_timeout_seconds,
            default_max_retries: t.default_max_retries,
            context_schema: t.context_schema,
            inserted_at: ts(t.inserted_at),
            updated_at: ts(t.updated_at),
            queue: t.queue,
        }
    }
}

/// A queue entry on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Entry)]
pub(crate) struct EntryJson {
    job_run_identifier: String,
    template: String,
    #[schema(value_type = EntryStatusSchema)]
    status: EntryStatus,
    priority: i32,
    timeout_seconds: i32,
    max_retries: i32,
    /// The job's input: any JSON value its template's schema accepts.
    context: Value,
    #[schema(format = DateTime)]
    run_at: String,
    #[schema(format = DateTime)]
    inserted_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    attempts: i32,
    #[schema(value_type = Option<i64>)]
    current_run_id: Option<RunId>,
    /// The queue (SPEC §8).
    queue: String,
}

impl From<QueueEntry> for EntryJson {
    fn from(e: QueueEntry) -> Self {
        Self {
            job_run_identifier: e.job_run_identifier,
            template: e.template,
            status: e.status,
            priority: e.priority,
            timeout_seconds: e.timeout_seconds,
            max_retries: e.max_retries,
            context: e.context,
            run_at: ts(e.run_at),
            inserted_at: ts(e.inserted_at),
            updated_at: ts(e.updated_at),
            attempts: e.attempts,
            current_run_id: e.current_run_id,
            queue: e.queue,
        }
    }
}

/// One entry with its place in the run order (`GET /jobs/queue/{id}`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = EntryDetail)]
pub(crate) struct EntryDetailJson {
    #[serde(flatten)]
    pub(crate) entry: EntryJson,
    /// 1 = next to run; null while running.
    pub(crate) position: Option<u64>,
}

/// The answer of `POST /jobs/queue` (201): the entry as enqueued, `duplicate: false`
/// and, when `trigger_engine` was set, the engine report (`null` if the pass failed).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Enqueued)]
pub(crate) struct EnqueuedJson {
    #[serde(flatten)]
    pub(crate) entry: EntryJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EngineReportJson>)]
    pub(crate) engine: Option<Option<EngineReport>>,
    /// Always false: a new entry (SPEC §8).
    pub(crate) duplicate: bool,
}

/// The answer of `POST /jobs/queue` (200) for a unique job already enqueued within its
/// window (SPEC §8): nothing was written. `engine` as in the 201 answer.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Duplicate)]
pub(crate) struct DuplicateJson {
    /// Always true.
    pub(crate) duplicate: bool,
    /// The identifier of the entry enqueued earlier (it may have finished since).
    pub(crate) job_run_identifier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<EngineReportJson>)]
    pub(crate) engine: Option<Option<EngineReport>>,
}

/// The answer of `POST /jobs/queue/{id}/stop`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Stopped)]
pub(crate) struct StoppedJson {
    pub(crate) job_run_identifier: String,
    #[schema(value_type = i64, minimum = 1)]
    pub(crate) stopped_run_id: RunId,
    pub(crate) node: String,
}

/// A run on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Run)]
pub(crate) struct RunJson {
    #[schema(value_type = i64)]
    id: RunId,
    job_run_identifier: String,
    template: String,
    job_type: String,
    retry: i32,
    node: String,
    node_name: String,
    process_name: String,
    #[schema(value_type = RunStatusSchema)]
    status: RunStatus,
    #[schema(value_type = Option<RunResultSchema>)]
    result: Option<RunResult>,
    reason: Option<String>,
    #[schema(format = DateTime)]
    started_at: String,
    #[schema(format = DateTime)]
    timeout_at: String,
    #[schema(format = DateTime)]
    expires_at: String,
    #[schema(format = DateTime)]
    ended_at: Option<String>,
    /// The job's input.
    context: Value,
    /// What the job returned (`null` when nothing, or not finished).
    output: Option<Value>,
    /// The queue (SPEC §8).
    queue: String,
}

impl From<JobRun> for RunJson {
    fn from(r: JobRun) -> Self {
        Self {
            id: r.id,
            job_run_identifier: r.job_run_identifier,
            template: r.template,
            job_type: r.job_type,
            retry: r.retry,
            node: r.node,
            node_name: r.node_name,
            process_name: r.process_name,
            status: r.status,
            result: r.result,
            reason: r.reason,
            started_at: ts(r.started_at),
            timeout_at: ts(r.timeout_at),
            expires_at: ts(r.expires_at),
            ended_at: ts_opt(r.ended_at),
            context: r.context,
            output: r.output,
            queue: r.queue,
        }
    }
}

/// An optional `i32` that also takes a whole number written with a fraction or an
/// exponent (`5.0`, `1e3`), since JSON Schema's `integer` (the document's) includes
/// them; `1.5` and out-of-range numbers are still refused.
fn whole_i32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    let whole = match (n.as_i64(), n.as_f64()) {
        (Some(i), _) => Some(i),
        (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e18 => Some(f as i64),
        _ => None,
    };
    match whole.map(i32::try_from) {
        Some(Ok(i)) => Ok(Some(i)),
        Some(Err(_)) => Err(D::Error::custom(format!(
            "{n} is out of range: must be between {} and {}",
            i32::MIN,
            i32::MAX
        ))),
        None => Err(D::Error::custom(format!(
            "invalid type: {n} is not a whole number"
        ))),
    }
}

/// The body of `POST /jobs/templates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTemplateBody {
    /// Unique code: ASCII letters, digits and `_ . : -`.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    code: String,
    /// Display name: not blank, no control characters.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// The job type that runs it.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    job_type: String,
    #[schema(schema_with = crate::openapi::json_schema)]
    context_schema: Value,
    /// Default true.
    active: Option<bool>,
    /// Default 0.
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_i32")]
    display_order: Option<i32>,
    /// Default 3600.
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    default_timeout_seconds: Option<i32>,
    /// Default 3.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_i32")]
    default_max_retries: Option<i32>,
    /// Default `"default"`. Same characters as a code.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    queue: Option<String>,
}

impl From<CreateTemplateBody> for NewTemplate {
    fn from(b: CreateTemplateBody) -> Self {
        let mut t = NewTemplate::new(b.code, b.name, b.job_type, b.context_schema);
        if let Some(a) = b.active {
            t.active = a;
        }
        if let Some(o) = b.display_order {
            t.display_order = o;
        }
        if let Some(s) = b.default_timeout_seconds {
            t.default_timeout_seconds = s;
        }
        if let Some(r) = b.default_max_retries {
            t.default_max_retries = r;
        }
        if let Some(q) = b.queue {
            t.queue = q;
        }
        t
    }
}

/// The body of `PATCH /jobs/templates/{code}`: absent fields are kept.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTemplateBody {
    /// New display name.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: Option<String>,
    /// New job type.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    job_type: Option<String>,
    #[schema(schema_with = crate::openapi::json_schema_or_null)]
    context_schema: Option<Value>,
    /// Activate or deactivate.
    active: Option<bool>,
    /// New listing order.
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_i32")]
    display_order: Option<i32>,
    /// New default timeout.
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    default_timeout_seconds: Option<i32>,
    /// New default retries.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_i32")]
    default_max_retries: Option<i32>,
    /// New queue of the entries enqueued from now on.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    queue: Option<String>,
}

impl From<PatchTemplateBody> for TemplatePatch {
    fn from(b: PatchTemplateBody) -> Self {
        TemplatePatch {
            name: b.name,
            job_type: b.job_type,
            context_schema: b.context_schema,
            active: b.active,
            display_order: b.display_order,
            default_timeout_seconds: b.default_timeout_seconds,
            default_max_retries: b.default_max_retries,
            queue: b.queue,
        }
    }
}

/// The body of `POST /jobs/queue`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueBody {
    /// The template's code.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    template: String,
    /// The job's input: it must satisfy the template's schema; no `\u0000` in it.
    context: Value,
    /// Default 5; lower runs first.
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_i32")]
    priority: Option<i32>,
    /// Default: the template's.
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    timeout_seconds: Option<i32>,
    /// Default: the template's.
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_i32")]
    max_retries: Option<i32>,
    /// Default: a new UUIDv7. Printable text without `/`.
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f/]+$"
    )]
    job_run_identifier: Option<String>,
    /// The earliest start (RFC 3339); default now.
    #[schema(format = DateTime)]
    run_at: Option<String>,
    /// The queue to join; default: the template's.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    queue: Option<String>,
    /// Run the engine right after enqueueing.
    #[serde(default)]
    pub(crate) trigger_engine: bool,
    /// A unique job (SPEC §8): when an entry of the same template with an equal context
    /// was enqueued in the last this many seconds (queued, running or finished), nothing
    /// is written and the answer is 200 with `duplicate: true` and its identifier.
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    unique_for_seconds: Option<i32>,
}

impl EnqueueBody {
    /// The entry to enqueue; a `run_at` that is not RFC 3339 is a 422 at `/run_at`.
    pub(crate) fn into_entry(self) -> Result<NewEntry, bildad_core::Violation> {
        let run_at = match self.run_at.as_deref() {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|e| {
                        bildad_core::Violation::new(
                            "/run_at",
                            format!(
                                "must be an RFC 3339 timestamp such as 2030-01-31T09:30:00Z ({e})"
                            ),
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            ),
        };
        Ok(NewEntry {
            template: self.template,
            context: self.context,
            priority: self.priority,
            timeout_seconds: self.timeout_seconds,
            max_retries: self.max_retries,
            job_run_identifier: self.job_run_identifier,
            run_at,
            run_in: None,
            queue: self.queue,
            unique_for_seconds: self.unique_for_seconds,
        })
    }
}
