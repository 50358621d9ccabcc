//! Enqueue on SQLite: the rules of SPEC §2.1 in Rust (`shared::prepare_entries`), then
//! the inserts in one `BEGIN IMMEDIATE` transaction, and an in-process wake-up.

use super::sql::{ENQUEUE, TAKEN};
use super::{SqliteStore, json_array, now_us};
use crate::errors::{Fail, identifier_taken};
use crate::rows::{ENTRY_COLS, EntryRow, TEMPLATE_COLS, TemplateRow, TextRow, micros};
use crate::shared::{in_request_order, prepare_entries};
use bildad_core::{JobTemplate, NewEntry, QueueEntry, StoreResult};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{RunQueryDsl, sql_query};
use std::collections::HashMap;

pub(super) async fn enqueue_many(
    store: &SqliteStore,
    new: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let codes: Vec<&str> = new.iter().map(|n| n.template.as_str()).collect();
    let codes = json_array(&codes);
    let templates: HashMap<String, JobTemplate> = store
        .run(move |c| {
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
        })
        .await?;
    let prepared = prepare_entries(&store.schemas, &templates, new)?;
    store
        .write(move |c| {
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
            for p in prepared {
                sql_query(ENQUEUE)
                    .bind::<Text, _>(&p.identifier)
                    .bind::<BigInt, _>(p.template_id)
                    .bind::<Integer, _>(p.priority)
                    .bind::<Integer, _>(p.timeout_seconds)
                    .bind::<Integer, _>(p.max_retries)
                    .bind::<Text, _>(p.context.to_string())
                    .bind::<Nullable<BigInt>, _>(p.run_at.map(micros))
                    .bind::<BigInt, _>(now)
                    .execute(c)?;
            }
            let rows: Vec<EntryRow> = sql_query(format!(
                "SELECT {ENTRY_COLS} FROM bildad_entries e
             JOIN bildad_templates t ON t.id = e.template_id
             WHERE e.job_run_identifier IN (SELECT value FROM json_each(?1))"
            ))
            .bind::<Text, _>(&wanted)
            .load(c)?;
            Ok(in_request_order(&identifiers, rows)?)
        })
        .await
        .inspect(|_| store.enqueued.notify())
}
