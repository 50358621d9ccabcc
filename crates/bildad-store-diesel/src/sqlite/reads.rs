//! Reads on SQLite: health, the clock, entries, runs, activity and counts.

use super::sql::{ACTIVITY, NOW};
use super::{SqliteStore, optional};
use crate::dialect::{self, Dialect};
use crate::errors::{Fail, entry_not_found};
use crate::rows::{
    ActivityRow, ENTRY_COLS, EntryRow, PositionRow, RUN_COLS, RunRow, StatsRow, TimeRow, activity,
    convert, micros,
};
use crate::shared::count;
use bildad_core::{
    EntryFilter, EntryStatus, JobRun, Page, PageRequest, QueueEntry, QueueStats, RunActivity,
    RunFilter, RunId, StoreError, StoreResult, Timestamp,
};
use diesel::sql_types::{BigInt, Text};
use diesel::{RunQueryDsl, sql_query};
use std::time::Duration;

pub(super) async fn ping(store: &SqliteStore) -> StoreResult<()> {
    store
        .run(|c| {
            sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
        .await
}

pub(super) async fn now(store: &SqliteStore) -> StoreResult<Timestamp> {
    store
        .run(|c| {
            Ok(sql_query(format!("SELECT {NOW} AS t"))
                .get_result::<TimeRow>(c)?
                .t)
        })
        .await
}

pub(super) async fn get_entry(store: &SqliteStore, identifier: &str) -> StoreResult<QueueEntry> {
    let identifier = identifier.to_string();
    store
        .run(move |c| {
            let row = optional(
                sql_query(format!(
                    "SELECT {ENTRY_COLS} FROM bildad_entries_v2 e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE e.job_run_identifier = ?1"
                ))
                .bind::<Text, _>(&identifier)
                .get_result::<EntryRow>(c),
            )?;
            Ok(row
                .ok_or_else(|| entry_not_found(&identifier))?
                .try_into()?)
        })
        .await
}

pub(super) async fn entry_position(
    store: &SqliteStore,
    identifier: &str,
) -> StoreResult<Option<u64>> {
    let identifier = identifier.to_string();
    store
        .run(move |c| {
            let row = optional(
                sql_query(dialect::position(Dialect::Sqlite))
                    .bind::<Text, _>(&identifier)
                    .get_result::<PositionRow>(c),
            )?
            .ok_or_else(|| Fail(entry_not_found(&identifier)))?;
            Ok((row.status == EntryStatus::Available.as_str()).then(|| count(row.ahead) + 1))
        })
        .await
}

pub(super) async fn list_entries(
    store: &SqliteStore,
    status: Option<EntryStatus>,
    page: PageRequest,
) -> StoreResult<Page<QueueEntry>> {
    let l = dialect::entries(
        Dialect::Sqlite,
        bildad_core::EntryFilter {
            status,
            ..Default::default()
        },
        page,
    );
    store
        .run(move |c| {
            let (rows, total) = super::listing::<EntryRow>(c, &l)?;
            Ok(Page::new(convert(rows)?, total, page))
        })
        .await
}

pub(super) async fn list_entries_where(
    store: &SqliteStore,
    filter: EntryFilter,
    page: PageRequest,
) -> StoreResult<Page<QueueEntry>> {
    let l = dialect::entries(Dialect::Sqlite, filter, page);
    store
        .run(move |c| {
            let (rows, total) = super::listing::<EntryRow>(c, &l)?;
            Ok(Page::new(convert(rows)?, total, page))
        })
        .await
}

pub(super) async fn get_run(store: &SqliteStore, id: RunId) -> StoreResult<JobRun> {
    store
        .run(move |c| {
            let row = optional(
                sql_query(format!("SELECT {RUN_COLS} FROM bildad_runs WHERE id = ?1"))
                    .bind::<BigInt, _>(id)
                    .get_result::<RunRow>(c),
            )?;
            Ok(row
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
                .try_into()?)
        })
        .await
}

pub(super) async fn list_runs(
    store: &SqliteStore,
    filter: RunFilter,
    page: PageRequest,
) -> StoreResult<Page<JobRun>> {
    let l = dialect::runs(Dialect::Sqlite, filter, page);
    store
        .run(move |c| {
            let (rows, total) = super::listing::<RunRow>(c, &l)?;
            Ok(Page::new(convert(rows)?, total, page))
        })
        .await
}

pub(super) async fn run_activity(
    store: &SqliteStore,
    since: Timestamp,
    bucket: Duration,
) -> StoreResult<RunActivity> {
    // One grouped query on integer microseconds: the bucket of a run is
    // floor(ms since `since`) / bucket ms, exactly as `RunActivity::record` computes it.
    let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
    store
        .run(move |c| {
            let rows: Vec<ActivityRow> = sql_query(ACTIVITY)
                .bind::<BigInt, _>(micros(since))
                .bind::<BigInt, _>(bucket_ms)
                .load(c)?;
            Ok(activity(rows))
        })
        .await
}

pub(super) async fn stats(store: &SqliteStore) -> StoreResult<QueueStats> {
    store
        .run(|c| {
            let row: StatsRow = sql_query(dialect::stats(Dialect::Sqlite)).get_result(c)?;
            Ok(row.into())
        })
        .await
}

pub(super) async fn queue_depths(store: &SqliteStore) -> StoreResult<Vec<bildad_core::QueueDepth>> {
    store
        .run(|c| {
            let rows: Vec<crate::depth::DepthRow> =
                sql_query(crate::depth::queue_depths_sql(Dialect::Sqlite)).load(c)?;
            Ok(crate::depth::depths(rows))
        })
        .await
}
