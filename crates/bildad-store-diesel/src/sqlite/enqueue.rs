//! Enqueue on SQLite: the rules of SPEC §2.1 in Rust (`shared::prepare_entries`), then
//! the inserts in one `BEGIN IMMEDIATE` transaction, and an in-process wake-up.
//!
//! The steps are written once and shared by both paths: [`templates_of`] then
//! `prepare_entries` then [`insert`]. The pool path reads the templates before it takes
//! the write lock; the application's connection (`tx.rs`) runs [`enqueue_on`], the same
//! steps inside the caller's transaction.

use super::sql::{ENQUEUE, TAKEN};
use super::{SqliteStore, Tx, json_array, now_us};
use crate::errors::{Fail, identifier_taken};
use crate::rows::{ENTRY_COLS, EntryRow, TEMPLATE_COLS, TemplateRow, TextRow, micros};
use crate::shared::{PreparedEntry, in_request_order, prepare_entries};
use bildad_core::{JobTemplate, NewEntry, QueueEntry, SchemaCache, StoreResult};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{RunQueryDsl, SqliteConnection, sql_query};
use std::collections::HashMap;

pub(super) async fn enqueue_many(
    store: &SqliteStore,
    new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let codes = codes_of(&new);
    let templates = store.run(move |c| templates_of(c, &codes)).await?;
    let prepared = prepare_entries(&store.schemas, &templates, new)?;
    store
        .write(move |c| insert(c, prepared))
        .await
        .inspect(|_| store.enqueued.notify())
}

/// Every step of the enqueue on one connection, for a caller that already holds it in
/// its transaction (`tx.rs`): nothing of it commits before the caller does.
pub(super) fn enqueue_on(
    schemas: &SchemaCache,
    c: &mut SqliteConnection,
    new: Vec<NewEntry>,
) -> Tx<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let templates = templates_of(c, &codes_of(&new))?;
    let prepared = prepare_entries(schemas, &templates, new)?;
    insert(c, prepared)
}

/// The template codes of `new`, as one JSON array.
fn codes_of(new: &[NewEntry]) -> String {
    let codes: Vec<&str> = new.iter().map(|n| n.template.as_str()).collect();
    json_array(&codes)
}

/// The templates named by `codes` (a JSON array), by code.
fn templates_of(c: &mut SqliteConnection, codes: &str) -> Tx<HashMap<String, JobTemplate>> {
    let rows: Vec<TemplateRow> = sql_query(format!(
        "SELECT {TEMPLATE_COLS} FROM bildad_templates
         WHERE code IN (SELECT value FROM json_each(?1))"
    ))
    .bind::<Text, _>(codes)
    .load(c)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let t = JobTemplate::from(r);
            (t.code.clone(), t)
        })
        .collect())
}

/// Checks the identifiers are free and inserts the entries (the caller holds a
/// transaction: all of them or none).
fn insert(c: &mut SqliteConnection, prepared: Vec<PreparedEntry>) -> Tx<Vec<QueueEntry>> {
    let identifiers: Vec<String> = prepared.iter().map(|p| p.identifier.clone()).collect();
    let wanted = json_array(&identifiers);
    // An identifier with history is taken too (SPEC §2.1; see MemoryStore).
    let taken: Vec<TextRow> = sql_query(TAKEN).bind::<Text, _>(&wanted).load(c)?;
    if let Some(first) = identifiers
        .iter()
        .find(|i| taken.iter().any(|t| &t.text == *i))
    {
        return Err(Fail(identifier_taken(first)));
    }
    let now = now_us(c)?;
    super::unique::take_keys(c, &prepared, now)?;
    for p in prepared {
        let run_at = p
            .run_at
            .map(micros)
            .or_else(|| p.run_in_us.map(|d| now.saturating_add(d)));
        sql_query(ENQUEUE)
            .bind::<Text, _>(&p.identifier)
            .bind::<BigInt, _>(p.template_id)
            .bind::<Integer, _>(p.priority)
            .bind::<Integer, _>(p.timeout_seconds)
            .bind::<Integer, _>(p.max_retries)
            .bind::<Text, _>(p.context.to_string())
            .bind::<Nullable<BigInt>, _>(run_at)
            .bind::<BigInt, _>(now)
            .bind::<Text, _>(&p.queue)
            .execute(c)?;
    }
    let rows: Vec<EntryRow> = sql_query(format!(
        "SELECT {ENTRY_COLS} FROM bildad_entries_v2 e
         JOIN bildad_templates t ON t.id = e.template_id
         WHERE e.job_run_identifier IN (SELECT value FROM json_each(?1))"
    ))
    .bind::<Text, _>(&wanted)
    .load(c)?;
    Ok(in_request_order(&identifiers, rows)?)
}
