//! Enqueue on MariaDB: the rules of SPEC §2.1 in Rust (`shared::prepare_entries`), then
//! one transaction: the templates read `LOCK IN SHARE MODE` (so a `delete_template`
//! waits for it, in place of a foreign key), the identifiers checked free, the unique
//! keys taken, the entries inserted, and the identifiers checked again against the runs
//! (a claim may have moved an entry of the same identifier between the first check and
//! the insert: the insert waited for that claim, and this read, a new statement under
//! `READ COMMITTED`, sees its run). [`enqueue_on`] is the one code of both the pool's
//! path and the application's transaction (`tx.rs`).

use super::{MysqlStore, TEXTS, in_list, json_texts, padded, retry_deadlocks};
use crate::errors::{Fail, identifier_taken};
use crate::rows::{DbJson, DbTime, ENTRY_COLS, EntryRow, TEMPLATE_COLS, TemplateRow, TextRow};
use crate::shared::{PreparedEntry, in_request_order, prepare_entries};
use bildad_core::{JobTemplate, NewEntry, QueueEntry, SchemaCache, StoreError, StoreResult};
use diesel::mysql::Mysql;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use std::collections::HashMap;

pub(super) async fn enqueue_many(
    store: &MysqlStore,
    new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    let schemas = &store.schemas;
    let out = retry_deadlocks!({
        let new = new.clone();
        conn.transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, new).await?))
            .await
            .map_err(|f| f.0)
    });
    out.inspect(|_| store.enqueued.notify())
}

/// Every step of the enqueue on one connection, inside the caller's transaction.
pub(super) async fn enqueue_on(
    schemas: &SchemaCache,
    c: &mut AsyncMysqlConnection,
    new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let (codes, _) = crate::shared::lookup_keys(&new);
    let templates = templates_of(c, &codes).await.map_err(|f| f.0)?;
    let prepared = prepare_entries(schemas, &templates, new)?;
    insert(c, prepared).await.map_err(|f| f.0)
}

/// The templates named by `codes`, by code, locked in share mode until the caller's
/// transaction ends.
async fn templates_of(
    c: &mut AsyncMysqlConnection,
    codes: &[String],
) -> Result<HashMap<String, JobTemplate>, Fail> {
    if codes.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = sql_query(format!(
        "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code IN ({})
         LOCK IN SHARE MODE",
        in_list(codes.len())
    ))
    .into_boxed::<Mysql>();
    for code in padded(codes) {
        q = q.bind::<Nullable<Text>, _>(code);
    }
    let rows: Vec<TemplateRow> = q.load(c).await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let t = JobTemplate::from(r);
            (t.code.clone(), t)
        })
        .collect())
}

/// The identifiers among `wanted` that a waiting entry (`queue` true) or a run uses.
async fn taken(
    c: &mut AsyncMysqlConnection,
    wanted: &str,
    queue: bool,
) -> Result<Vec<TextRow>, Fail> {
    let runs = format!(
        "SELECT DISTINCT r.job_run_identifier AS text
         FROM {TEXTS} STRAIGHT_JOIN bildad_runs r
           ON r.job_run_identifier = j.v COLLATE utf8mb4_nopad_bin"
    );
    let sql = if queue {
        format!(
            "SELECT q.job_run_identifier AS text
             FROM {TEXTS} STRAIGHT_JOIN bildad_queue q
               ON q.job_run_identifier = j.v COLLATE utf8mb4_nopad_bin
             UNION {runs}"
        )
    } else {
        runs
    };
    let mut q = sql_query(sql).into_boxed::<Mysql>().bind::<Text, _>(wanted);
    if queue {
        q = q.bind::<Text, _>(wanted);
    }
    Ok(q.load(c).await?)
}

/// Rows per `INSERT`: MySQL allows 65,535 placeholders a statement, and an entry binds 10.
const INSERT_ROWS: usize = 1000;

/// The first of `identifiers` that `taken` names, as a `Conflict`.
fn first_taken(identifiers: &[String], taken: &[TextRow]) -> Result<(), Fail> {
    match identifiers
        .iter()
        .find(|i| taken.iter().any(|t| &t.text == *i))
    {
        Some(first) => Err(Fail(identifier_taken(first))),
        None => Ok(()),
    }
}

/// Checks the identifiers are free and inserts the entries (the caller holds a
/// transaction: all of them or none).
async fn insert(
    c: &mut AsyncMysqlConnection,
    prepared: Vec<PreparedEntry>,
) -> Result<Vec<QueueEntry>, Fail> {
    let identifiers: Vec<String> = prepared.iter().map(|p| p.identifier.clone()).collect();
    let wanted = json_texts(&identifiers);
    // An identifier with history is taken too (SPEC §2.1; see MemoryStore).
    first_taken(&identifiers, &taken(c, &wanted, true).await?)?;
    take_keys(c, &prepared).await?;
    for chunk in prepared.chunks(INSERT_ROWS) {
        insert_rows(c, chunk).await?;
    }
    first_taken(&identifiers, &taken(c, &wanted, false).await?)?;
    // The new entries, from the queue itself: they wait (no claim sees them before this
    // transaction commits), and MariaDB cannot push the join into the entries' view, a
    // UNION, which it would read whole.
    let cols = ENTRY_COLS.replace("e.current_run_id", "CAST(NULL AS SIGNED) AS current_run_id");
    let rows: Vec<EntryRow> = sql_query(format!(
        "SELECT {cols} FROM {TEXTS}
         STRAIGHT_JOIN bildad_queue e
           ON e.job_run_identifier = j.v COLLATE utf8mb4_nopad_bin
         JOIN bildad_templates t ON t.id = e.template_id"
    ))
    .bind::<Text, _>(&wanted)
    .load(c)
    .await?;
    Ok(in_request_order(&identifiers, rows)?)
}

/// One multi-row `INSERT` of `prepared` (at most [`INSERT_ROWS`]).
async fn insert_rows(c: &mut AsyncMysqlConnection, prepared: &[PreparedEntry]) -> Result<(), Fail> {
    let rows = vec![
        "(?, ?, ?, ?, ?, ?, COALESCE(?, UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, \
         UTC_TIMESTAMP(6)), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), ?, ?)";
        prepared.len()
    ];
    let mut q = sql_query(format!(
        "INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
            timeout_seconds, max_retries, context, run_at, inserted_at, updated_at, queue,
            trace_context)
         VALUES {}",
        rows.join(", ")
    ))
    .into_boxed::<Mysql>();
    for p in prepared {
        q = q
            .bind::<Text, _>(p.identifier.clone())
            .bind::<BigInt, _>(p.template_id)
            .bind::<Integer, _>(p.priority)
            .bind::<Integer, _>(p.timeout_seconds)
            .bind::<Integer, _>(p.max_retries)
            .bind::<DbJson, _>(p.context.clone())
            .bind::<Nullable<DbTime>, _>(p.run_at)
            .bind::<Nullable<BigInt>, _>(p.run_in_us)
            .bind::<Text, _>(p.queue.clone())
            .bind::<Nullable<Text>, _>(p.trace_context.clone());
    }
    q.execute(c).await.map_err(|e| match e {
        e if crate::errors::is_unique_violation(&e) => Fail(StoreError::Conflict(format!(
            "a job_run_identifier is in use: {e}"
        ))),
        e => e.into(),
    })?;
    Ok(())
}

/// Takes each unique entry's key, or takes over one whose age is at least the new
/// entry's window; `Duplicate` for the first entry whose key is held within its window.
/// The upsert locks the key's row until the caller's transaction ends, so two enqueues
/// of one key are serial. (MySQL applies the assignments left to right: `inserted_at`
/// is set last, after the others read the old one.)
async fn take_keys(c: &mut AsyncMysqlConnection, prepared: &[PreparedEntry]) -> Result<(), Fail> {
    for (index, p) in prepared.iter().enumerate() {
        let Some((key, seconds)) = &p.unique else {
            continue;
        };
        sql_query(
            "INSERT INTO bildad_unique_keys (`key`, job_run_identifier, inserted_at, expires_at)
             VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) + INTERVAL ? SECOND)
             ON DUPLICATE KEY UPDATE
                 job_run_identifier = IF(inserted_at <= UTC_TIMESTAMP(6) - INTERVAL ? SECOND,
                     VALUES(job_run_identifier), job_run_identifier),
                 expires_at = IF(inserted_at <= UTC_TIMESTAMP(6) - INTERVAL ? SECOND,
                     VALUES(expires_at), expires_at),
                 inserted_at = IF(inserted_at <= UTC_TIMESTAMP(6) - INTERVAL ? SECOND,
                     VALUES(inserted_at), inserted_at)",
        )
        .bind::<Text, _>(key)
        .bind::<Text, _>(&p.identifier)
        .bind::<Integer, _>(*seconds)
        .bind::<Integer, _>(*seconds)
        .bind::<Integer, _>(*seconds)
        .bind::<Integer, _>(*seconds)
        .execute(c)
        .await?;
        let holder: TextRow =
            sql_query("SELECT job_run_identifier AS text FROM bildad_unique_keys WHERE `key` = ?")
                .bind::<Text, _>(key)
                .get_result(c)
                .await?;
        if holder.text != p.identifier {
            return Err(Fail(StoreError::Duplicate {
                index,
                job_run_identifier: holder.text,
            }));
        }
    }
    Ok(())
}

/// Deletes the keys whose own window has passed (the history's pruning).
pub(super) const PRUNE_KEYS: &str =
    "DELETE FROM bildad_unique_keys WHERE expires_at <= UTC_TIMESTAMP(6)";
