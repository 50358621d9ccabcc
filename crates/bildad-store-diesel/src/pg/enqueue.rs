//! Enqueue on PostgreSQL: the rules of SPEC §2.1 in Rust (`shared::prepare_entries`),
//! then one multi-row INSERT that also locks the templates and notifies listeners.

use super::PgStore;
use super::prepared::Cached;
use super::sql::{ENQUEUE, TAKEN, TAKEN_BY_RUN};
use crate::errors::{db_error, identifier_taken, is_not_null_violation, is_unique_violation};
use crate::rows::{CountRow, InsertedRow, TEMPLATE_COLS, TemplateRow, TextRow};
use crate::shared::{lookup_keys, prepare_entries};
use bildad_core::{
    EntryStatus, JobTemplate, NewEntry, QueueEntry, SchemaCache, StoreError, StoreResult, Violation,
};
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;

pub(super) async fn enqueue_many(
    store: &PgStore,
    new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    enqueue_on(&store.schemas, &mut conn, new).await
}

/// The enqueue itself, on any connection: a pooled one (`enqueue_many`), or the
/// application's own inside its transaction (`tx.rs`). The reads are pipelined and the
/// write is one statement, so on a connection outside a transaction it is atomic alone.
pub(super) async fn enqueue_on(
    schemas: &SchemaCache,
    conn: &mut AsyncPgConnection,
    mut new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    // Only identifiers the caller chose can be taken: the ones drawn here are fresh
    // UUIDv7s (a millisecond clock and 74 random bits), unique without a lookup, and
    // the queue's unique index still stands behind them. Codes and identifiers that
    // fail the field checks are not read (a NUL would be a database error here); the
    // field checks of `prepare_entries` reject them as invalid.
    let (codes, wanted) = lookup_keys(&new);
    for n in &mut new {
        if n.job_run_identifier.is_none() {
            n.job_run_identifier = Some(bildad_core::new_identifier());
        }
    }
    let (template_rows, taken) = {
        let mut c: &AsyncPgConnection = conn;
        let templates = Cached(
            sql_query(format!(
                "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ANY($1)"
            ))
            .bind::<Array<Text>, _>(codes),
        )
        .load::<TemplateRow>(&mut c);
        // An identifier with history is taken too (SPEC §2.1; see MemoryStore).
        let taken =
            Cached(sql_query(TAKEN).bind::<Array<Text>, _>(&wanted)).load::<TextRow>(&mut c);
        tokio::try_join!(templates, taken).map_err(db_error)?
    };
    let templates: HashMap<String, JobTemplate> = template_rows
        .into_iter()
        .map(|r| {
            let t = JobTemplate::from(r);
            (t.code.clone(), t)
        })
        .collect();
    // Invalid entries first, then conflicts, as before the reads were pipelined.
    let prepared = prepare_entries(schemas, &templates, new)?;
    let identifiers: Vec<String> = prepared.iter().map(|p| p.identifier.clone()).collect();
    if let Some(first) = identifiers
        .iter()
        .find(|i| taken.iter().any(|t| &t.text == *i))
    {
        return Err(identifier_taken(first));
    }

    let keys = super::unique::Keys::of(&prepared);
    let mut template_ids = Vec::with_capacity(prepared.len());
    let mut priorities = Vec::with_capacity(prepared.len());
    let mut timeouts = Vec::with_capacity(prepared.len());
    let mut retries = Vec::with_capacity(prepared.len());
    let mut contexts = Vec::with_capacity(prepared.len());
    let mut run_ats = Vec::with_capacity(prepared.len());
    let mut run_ins = Vec::with_capacity(prepared.len());
    let mut queues = Vec::with_capacity(prepared.len());
    for p in prepared {
        template_ids.push(p.template_id);
        priorities.push(p.priority);
        timeouts.push(p.timeout_seconds);
        retries.push(p.max_retries);
        contexts.push(p.context);
        run_ats.push(p.run_at);
        run_ins.push(p.run_in_us);
        queues.push(p.queue);
    }
    let code_of: HashMap<i64, &str> = templates
        .values()
        .map(|t| (t.id, t.code.as_str()))
        .collect();
    let mut distinct_templates = template_ids.clone();
    distinct_templates.sort_unstable();
    distinct_templates.dedup();
    // One statement (see `ENQUEUE`). The rest of each entry is the request's, so the
    // contexts are not sent back.
    let insert = || {
        Cached(
            sql_query(ENQUEUE)
                .bind::<Array<Text>, _>(&identifiers)
                .bind::<Array<BigInt>, _>(&template_ids)
                .bind::<Array<Integer>, _>(&priorities)
                .bind::<Array<Integer>, _>(&timeouts)
                .bind::<Array<Integer>, _>(&retries)
                .bind::<Array<Jsonb>, _>(&contexts)
                .bind::<Array<Nullable<Timestamptz>>, _>(&run_ats)
                .bind::<Array<BigInt>, _>(&distinct_templates)
                .bind::<Array<Nullable<BigInt>>, _>(&run_ins)
                .bind::<Array<Text>, _>(&queues),
        )
    };
    // An identifier the caller chose is looked at again after the insert, in the same
    // transaction (a savepoint inside the caller's): the queue's unique index does not
    // cover a running job (see `TAKEN_BY_RUN`). Drawn identifiers are fresh and skip it.
    // Unique entries take their keys first, in the same transaction (`unique.rs`).
    let mut taken_by_run = None;
    let mut duplicate = None;
    let inserted = if wanted.is_empty() && keys.is_empty() {
        insert().load::<InsertedRow>(conn).await
    } else {
        conn.transaction::<_, DieselError, _>(async |c| {
            if !keys.is_empty() {
                duplicate = keys.take(c).await?;
                if duplicate.is_some() {
                    return Err(DieselError::RollbackTransaction);
                }
            }
            let rows = insert().load::<InsertedRow>(c).await?;
            if wanted.is_empty() {
                return Ok(rows);
            }
            let late: Vec<TextRow> =
                Cached(sql_query(TAKEN_BY_RUN).bind::<Array<Text>, _>(&wanted))
                    .load(c)
                    .await?;
            if let Some(t) = late.into_iter().next() {
                taken_by_run = Some(t.text);
                return Err(DieselError::RollbackTransaction);
            }
            Ok(rows)
        })
        .await
    };
    if let Some(d) = duplicate {
        return Err(d);
    }
    if let Some(identifier) = taken_by_run {
        return Err(identifier_taken(&identifier));
    }
    let mut rows = match inserted {
        Ok(rows) => rows,
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::Conflict(
                "a job_run_identifier of this request is already used".into(),
            ));
        }
        Err(e) if is_not_null_violation(&e) => {
            return Err(
                deleted_templates(conn, &code_of, &distinct_templates, &template_ids).await,
            );
        }
        Err(e) => return Err(db_error(e)),
    };
    // The rows were inserted in request order, so their ids ascend in it; the
    // identifiers are checked all the same.
    if rows.len() != identifiers.len() {
        return Err(StoreError::database(format!(
            "enqueue: {} rows came back for {} entries",
            rows.len(),
            identifiers.len()
        )));
    }
    rows.sort_unstable_by_key(|r| r.id);
    let mut out = Vec::with_capacity(rows.len());
    for (k, (((row, context), identifier), queue)) in rows
        .into_iter()
        .zip(contexts)
        .zip(identifiers)
        .zip(queues)
        .enumerate()
    {
        if row.job_run_identifier != identifier {
            return Err(StoreError::database(format!(
                "enqueue: row {k} came back as {:?}, expected {identifier:?}",
                row.job_run_identifier
            )));
        }
        out.push(QueueEntry {
            id: row.id,
            job_run_identifier: identifier,
            template: code_of
                .get(&template_ids[k])
                .copied()
                .unwrap_or_default()
                .to_string(),
            status: EntryStatus::Available,
            priority: priorities[k],
            timeout_seconds: timeouts[k],
            max_retries: retries[k],
            context,
            run_at: row.run_at,
            attempts: 0,
            current_run_id: None,
            inserted_at: row.inserted_at,
            updated_at: row.inserted_at,
            queue,
        });
    }
    Ok(out)
}

/// The error of an enqueue whose template was deleted between its lookup and the insert
/// (the insert found it gone under its lock): the same violation as a template that
/// never existed, for every entry of a template that is gone now.
async fn deleted_templates(
    conn: &mut AsyncPgConnection,
    code_of: &HashMap<i64, &str>,
    distinct_templates: &[i64],
    template_ids: &[i64],
) -> StoreError {
    let present: Vec<i64> =
        match sql_query("SELECT id AS n FROM bildad_templates WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(distinct_templates)
            .load::<CountRow>(conn)
            .await
        {
            Ok(rows) => rows.into_iter().map(|r| r.n).collect(),
            Err(e) => return db_error(e),
        };
    let v: Vec<Violation> = template_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !present.contains(id))
        .map(|(i, id)| {
            Violation::new(
                format!("/{i}/template"),
                format!(
                    "no template has code {:?}",
                    code_of.get(id).copied().unwrap_or("?")
                ),
            )
        })
        .collect();
    if v.is_empty() {
        // No template of the request is missing now: not expected (a deletion that
        // rolled back makes the lock wait, not fail); report a conflict, a retry tells.
        return StoreError::Conflict("a template of this request changed meanwhile; retry".into());
    }
    StoreError::Invalid(v)
}
