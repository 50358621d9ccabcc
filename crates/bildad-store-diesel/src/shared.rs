//! What both backends do alike in Rust: enqueue validation and paging. (What a finalize
//! writes on the run and does to the entry is core's `bildad_core::fate`; database
//! errors are mapped in `errors`.)

use bildad_core::{DEFAULT_PRIORITY, JobTemplate, NewEntry, SchemaCache, StoreError, Timestamp};
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
    /// The delay of `run_in` in microseconds, added to the database clock by the insert.
    pub(crate) run_in_us: Option<i64>,
    /// A unique job's key and window in seconds (`unique.rs` of each backend).
    pub(crate) unique: Option<(String, i32)>,
    /// The entry's queue: the request's, else the template's.
    pub(crate) queue: String,
    /// The W3C trace context it was enqueued with.
    pub(crate) trace_context: Option<String>,
}

/// The template codes (each once) and the caller-chosen identifiers of `new` that an
/// enqueue looks up. Core's field checks run first, and a code or an identifier they
/// reject is left out: it names no stored template or entry (both passed the same checks
/// when written), and PostgreSQL would refuse some such text outright (a NUL) as a
/// database error. [`prepare_entries`] then reports it as `Invalid`, naming the field,
/// as on every store.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn lookup_keys(new: &[NewEntry]) -> (Vec<String>, Vec<String>) {
    let mut codes = Vec::with_capacity(new.len());
    let mut identifiers = Vec::new();
    for n in new {
        let mut v = Vec::new();
        n.check_fields("", &mut v);
        let rejected = |field: &str| v.iter().any(|x| x.pointer == field);
        if !rejected("/template") {
            codes.push(n.template.clone());
        }
        if let Some(id) = &n.job_run_identifier
            && !rejected("/job_run_identifier")
        {
            identifiers.push(id.clone());
        }
    }
    codes.sort();
    codes.dedup();
    (codes, identifiers)
}

/// Applies the rules of SPEC §2.1 exactly as `MemoryStore` does: every violation is
/// collected (pointers prefixed with `/<index>`), then duplicate identifiers or unique
/// keys within the batch are a `Conflict`.
pub(crate) fn prepare_entries(
    schemas: &SchemaCache,
    templates: &HashMap<String, JobTemplate>,
    new: Vec<NewEntry>,
) -> Result<Vec<PreparedEntry>, StoreError> {
    let mut v = Vec::new();
    let mut out = Vec::with_capacity(new.len());
    for (i, n) in new.into_iter().enumerate() {
        // Pointers are made from the entry's root, and prefixed with its index only when
        // it has a violation: a valid entry costs no formatting.
        let start = v.len();
        let t = schemas.check_entry(templates.get(&n.template), &n, "", &mut v);
        for e in &mut v[start..] {
            e.pointer.insert_str(0, &format!("/{i}"));
        }
        let Some(t) = t else {
            continue;
        };
        let unique = n.unique_key().zip(n.unique_for_seconds);
        out.push(PreparedEntry {
            unique,
            identifier: n
                .job_run_identifier
                .unwrap_or_else(bildad_core::new_identifier),
            template_id: t.id,
            priority: n.priority.unwrap_or(DEFAULT_PRIORITY),
            timeout_seconds: n.timeout_seconds.unwrap_or(t.default_timeout_seconds),
            max_retries: n.max_retries.unwrap_or(t.default_max_retries),
            context: n.context,
            run_at: n.run_at,
            // Bounded by `MAX_RUN_IN` (checked above), so it fits.
            run_in_us: n
                .run_in
                .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            queue: n.queue.unwrap_or_else(|| t.queue.clone()),
            trace_context: n.trace_context,
        });
    }
    if !v.is_empty() {
        return Err(StoreError::Invalid(v));
    }
    let mut seen = HashSet::new();
    for p in &out {
        if !seen.insert(p.identifier.as_str()) {
            return Err(crate::errors::identifier_taken(&p.identifier));
        }
    }
    bildad_core::unique::check_repeated_keys(
        out.iter()
            .map(|p| p.unique.as_ref().map(|(k, _)| k.as_str())),
    )?;
    Ok(out)
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

/// Puts enqueued entries back in the order of the request (identifiers are unique).
#[cfg(any(feature = "sqlite", feature = "mysql"))]
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
                .ok_or_else(|| StoreError::database(format!("entry {i:?} was not returned")))
                .and_then(TryInto::try_into)
        })
        .collect()
}
