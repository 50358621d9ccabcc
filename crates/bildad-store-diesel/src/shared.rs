//! The rules both backends apply in Rust: enqueue validation, the fate of a finalized
//! run's entry, and the mapping of database errors to [`StoreError`] kinds.

use bildad_core::input::{Disposition, cap_reason};
use bildad_core::{
    DEFAULT_PRIORITY, Finalize, JobTemplate, NewEntry, Outcome, SchemaCache, StoreError, Timestamp,
    Violation,
};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// One entry that passed every rule of SPEC §2.1 but the identifier's freshness.
pub(crate) struct PreparedEntry {
    pub(crate) identifier: String,
    pub(crate) template_id: i64,
    pub(crate) priority: i32,
    pub(crate) timeout_seconds: i32,
    pub(crate) max_retries: i32,
    pub(crate) context: Value,
    pub(crate) run_at: Option<Timestamp>,
}

/// Applies the rules of SPEC §2.1 exactly as `MemoryStore` does: every violation is
/// collected (pointers prefixed with `/<index>`), then duplicate identifiers within the
/// batch are a `Conflict`.
pub(crate) fn prepare_entries(
    schemas: &SchemaCache,
    templates: &HashMap<String, JobTemplate>,
    new: Vec<NewEntry>,
) -> Result<Vec<PreparedEntry>, StoreError> {
    let mut v = Vec::new();
    let mut out = Vec::with_capacity(new.len());
    for (i, n) in new.into_iter().enumerate() {
        let prefix = format!("/{i}");
        n.check_fields(&prefix, &mut v);
        let Some(t) = templates.get(&n.template) else {
            v.push(Violation::new(
                format!("{prefix}/template"),
                format!("no template has code {:?}", n.template),
            ));
            continue;
        };
        if !t.active {
            v.push(Violation::new(
                format!("{prefix}/template"),
                format!("template {:?} is inactive", t.code),
            ));
        }
        if let Err(errs) = schemas.validate((t.id, t.updated_at), &t.context_schema, &n.context) {
            v.extend(errs.into_iter().map(|mut e| {
                e.pointer = format!("{prefix}{}", e.pointer);
                e
            }));
        }
        out.push(PreparedEntry {
            identifier: n
                .job_run_identifier
                .unwrap_or_else(bildad_core::new_identifier),
            template_id: t.id,
            priority: n.priority.unwrap_or(DEFAULT_PRIORITY),
            timeout_seconds: n.timeout_seconds.unwrap_or(t.default_timeout_seconds),
            max_retries: n.max_retries.unwrap_or(t.default_max_retries),
            context: n.context,
            run_at: n.run_at,
        });
    }
    if !v.is_empty() {
        return Err(StoreError::Invalid(v));
    }
    let mut seen = HashSet::new();
    for p in &out {
        if !seen.insert(p.identifier.as_str()) {
            return Err(identifier_taken(&p.identifier));
        }
    }
    Ok(out)
}

/// The conflict of an identifier already used by an entry or a run.
pub(crate) fn identifier_taken(identifier: &str) -> StoreError {
    StoreError::Conflict(format!("job_run_identifier {identifier:?} is already used"))
}

/// A single entry's violations carry no index prefix (as `MemoryStore::enqueue`).
pub(crate) fn strip_index(e: StoreError) -> StoreError {
    match e {
        StoreError::Invalid(v) => StoreError::Invalid(
            v.into_iter()
                .map(|mut x| {
                    x.pointer = x.pointer.trim_start_matches("/0").to_string();
                    x
                })
                .collect(),
        ),
        other => other,
    }
}

/// The columns a finalize writes on its run.
pub(crate) struct RunEnding {
    pub(crate) result: &'static str,
    pub(crate) reason: Option<String>,
    pub(crate) output: Option<Value>,
}

impl RunEnding {
    pub(crate) fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Succeeded { output } => Self {
                result: "SUCCEEDED",
                reason: None,
                output: output.clone(),
            },
            Outcome::Failed { reason, .. } => Self {
                result: "FAILED",
                reason: Some(cap_reason(reason.clone())),
                output: None,
            },
        }
    }
}

/// What happens to the entry of a run that a finalize won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EntryAction {
    /// Delete it.
    Delete,
    /// Back to `AVAILABLE`, at `now + delay_us`.
    Requeue { delay_us: i64 },
}

/// The retry rule of SPEC §2.4, with the delay from core's `Backoff` (so every store
/// agrees on it).
pub(crate) fn entry_action(req: &Finalize, retry: i32, max_retries: i32) -> EntryAction {
    let disposition = match &req.outcome {
        Outcome::Succeeded { .. } => Disposition::Delete,
        Outcome::Failed { kind, .. } => kind.disposition(),
    };
    match disposition {
        Disposition::Delete => EntryAction::Delete,
        Disposition::RequeueNow => EntryAction::Requeue { delay_us: 0 },
        Disposition::RetryRule if retry < max_retries => EntryAction::Requeue {
            delay_us: crate::rows::duration_us(req.backoff.delay(retry, req.run_id)),
        },
        Disposition::RetryRule => EntryAction::Delete,
    }
}

/// True for a foreign-key violation. SQLite reports some (a `RESTRICT` on delete)
/// without the extended code, so the message decides too.
pub(crate) fn is_foreign_key_violation(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => true,
        DieselError::DatabaseError(_, info) => {
            info.message().contains("FOREIGN KEY constraint failed")
        }
        _ => false,
    }
}

/// True for a NOT NULL violation (PostgreSQL reports its kind).
pub(crate) fn is_not_null_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::NotNullViolation, _)
    )
}

/// True for a unique violation (see [`is_foreign_key_violation`] for SQLite).
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        DieselError::DatabaseError(_, info) => info.message().contains("UNIQUE constraint failed"),
        _ => false,
    }
}

/// A transaction's failure: a store error, or a diesel error still to be mapped.
pub(crate) struct Fail(pub(crate) StoreError);

impl From<DieselError> for Fail {
    fn from(e: DieselError) -> Self {
        Fail(db_error(e))
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail(e)
    }
}

/// Maps a diesel error to a store error kind.
pub(crate) fn db_error(e: DieselError) -> StoreError {
    if let DieselError::DatabaseError(_, info) = &e
        && (is_unique_violation(&e) || is_foreign_key_violation(&e))
    {
        return StoreError::Conflict(describe(info.as_ref()));
    }
    match &e {
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                StoreError::Unavailable(info.message().to_string())
            }
            // SQLite: still busy after busy_timeout. Transient.
            _ if info.message().contains("database is locked")
                || info.message().contains("database is busy") =>
            {
                StoreError::Unavailable(info.message().to_string())
            }
            _ => StoreError::Database(describe(info.as_ref())),
        },
        DieselError::BrokenTransactionManager => {
            StoreError::Unavailable("the connection's transaction state is broken".into())
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn describe(info: &dyn diesel::result::DatabaseErrorInformation) -> String {
    match info.details() {
        Some(d) => format!("{} ({d})", info.message()),
        None => info.message().to_string(),
    }
}

/// Maps a pool checkout error: no connection means the database is unavailable.
pub(crate) fn pool_error(e: diesel_async::pooled_connection::deadpool::PoolError) -> StoreError {
    use deadpool::managed::PoolError;
    match e {
        PoolError::Timeout(t) => StoreError::Unavailable(format!(
            "no database connection within the wait timeout ({t:?})"
        )),
        PoolError::Backend(e) => StoreError::Unavailable(e.to_string()),
        PoolError::Closed => StoreError::Unavailable("the connection pool is closed".into()),
        PoolError::PostCreateHook(e) => StoreError::Unavailable(e.to_string()),
        PoolError::NoRuntimeSpecified => {
            StoreError::Database("the connection pool has no runtime".into())
        }
    }
}

/// Converts a SQL count.
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A page's LIMIT and OFFSET as SQL integers.
pub(crate) fn limit_offset(page: bildad_core::PageRequest) -> (i64, i64) {
    (
        i64::from(page.limit),
        i64::try_from(page.offset()).unwrap_or(i64::MAX),
    )
}

/// The sole error of a missing template.
pub(crate) fn template_not_found(code: &str) -> StoreError {
    StoreError::NotFound(format!("template {code:?}"))
}

/// The sole error of a missing entry.
pub(crate) fn entry_not_found(identifier: &str) -> StoreError {
    StoreError::NotFound(format!("queue entry {identifier:?}"))
}

/// The conflict of deleting a template that entries still use.
pub(crate) fn template_in_use(code: &str) -> StoreError {
    StoreError::Conflict(format!(
        "template {code:?} has queue entries; remove them first"
    ))
}

/// The conflict of a template code already used.
pub(crate) fn template_exists(code: &str) -> StoreError {
    StoreError::Conflict(format!("a template with code {code:?} exists"))
}

/// Puts enqueued entries back in the order of the request (identifiers are unique).
#[cfg(feature = "sqlite")]
pub(crate) fn in_request_order(
    identifiers: &[String],
    rows: Vec<crate::rows::EntryRow>,
) -> Result<Vec<bildad_core::QueueEntry>, StoreError> {
    let mut by_id: HashMap<String, crate::rows::EntryRow> = rows
        .into_iter()
        .map(|r| (r.job_run_identifier.clone(), r))
        .collect();
    identifiers
        .iter()
        .map(|i| {
            by_id
                .remove(i)
                .ok_or_else(|| StoreError::Database(format!("entry {i:?} was not returned")))
                .and_then(TryInto::try_into)
        })
        .collect()
}
