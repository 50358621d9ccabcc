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

/// RFC 3339 in UTC with a `Z`, fractional seconds only when present.
pub(crate) fn ts(t: Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn ts_opt(t: Option<Timestamp>) -> Option<String> {
    t.map(ts)
}

/// `{"items", "total", "page", "limit"}`.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
pub(crate) struct TemplateJson {
    code: String,
    name: String,
    job_type: String,
    active: bool,
    display_order: i32,
    default_timeout_seconds: i32,
    default_max_retries: i32,
    context_schema: Value,
    inserted_at: String,
    updated_at: String,
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
        }
    }
}

/// A queue entry on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct EntryJson {
    job_run_identifier: String,
    template: String,
    status: EntryStatus,
    priority: i32,
    timeout_seconds: i32,
    max_retries: i32,
    context: Value,
    run_at: String,
    inserted_at: String,
    updated_at: String,
    attempts: i32,
    current_run_id: Option<RunId>,
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
        }
    }
}

/// One entry with its place in the run order (`GET /jobs/queue/{id}`).
#[derive(Debug, Serialize)]
pub(crate) struct EntryDetailJson {
    #[serde(flatten)]
    pub(crate) entry: EntryJson,
    /// 1 = next to run; null while running.
    pub(crate) position: Option<u64>,
}

/// The answer of `POST /jobs/queue`: the entry as enqueued and, when
/// `trigger_engine` was set, the engine report (`null` if the pass failed).
#[derive(Debug, Serialize)]
pub(crate) struct EnqueuedJson {
    #[serde(flatten)]
    pub(crate) entry: EntryJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) engine: Option<Option<EngineReport>>,
}

/// The answer of `POST /jobs/queue/{id}/stop`.
#[derive(Debug, Serialize)]
pub(crate) struct StoppedJson {
    pub(crate) job_run_identifier: String,
    pub(crate) stopped_run_id: RunId,
    pub(crate) node: String,
}

/// A run on the wire.
#[derive(Debug, Serialize)]
pub(crate) struct RunJson {
    id: RunId,
    job_run_identifier: String,
    template: String,
    job_type: String,
    retry: i32,
    node: String,
    node_name: String,
    process_name: String,
    status: RunStatus,
    result: Option<RunResult>,
    reason: Option<String>,
    started_at: String,
    timeout_at: String,
    expires_at: String,
    ended_at: Option<String>,
    context: Value,
    output: Option<Value>,
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
        }
    }
}

/// The body of `POST /jobs/templates`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateTemplateBody {
    code: String,
    name: String,
    job_type: String,
    context_schema: Value,
    active: Option<bool>,
    display_order: Option<i32>,
    default_timeout_seconds: Option<i32>,
    default_max_retries: Option<i32>,
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
        t
    }
}

/// The body of `PATCH /jobs/templates/{code}`: absent fields are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchTemplateBody {
    name: Option<String>,
    job_type: Option<String>,
    context_schema: Option<Value>,
    active: Option<bool>,
    display_order: Option<i32>,
    default_timeout_seconds: Option<i32>,
    default_max_retries: Option<i32>,
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
        }
    }
}

/// The body of `POST /jobs/queue`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnqueueBody {
    template: String,
    context: Value,
    priority: Option<i32>,
    timeout_seconds: Option<i32>,
    max_retries: Option<i32>,
    job_run_identifier: Option<String>,
    run_at: Option<String>,
    #[serde(default)]
    pub(crate) trigger_engine: bool,
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
        })
    }
}
