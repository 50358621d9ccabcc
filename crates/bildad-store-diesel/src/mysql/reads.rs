//! Reads on MariaDB: health, the clock, entries, runs, activity and counts.

use super::MysqlStore;
use super::sql::ACTIVITY;
use crate::dialect::{self, Dialect, MYSQL_NOW};
use crate::errors::{db_error, entry_not_found, not_found_is_none};
use crate::rows::{
    ActivityRow, DbTime, ENTRY_COLS, EntryRow, PositionRow, RUN_COLS, RunRow, StatsRow, TimeRow,
    activity, convert,
};
use crate::shared::count;
use bildad_core::{
    EntryFilter, EntryStatus, JobRun, Page, PageRequest, QueueEntry, QueueStats, RunActivity,
    RunFilter, RunId, StoreError, StoreResult, Timestamp,
};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use diesel_async::RunQueryDsl;
use std::time::Duration;

pub(super) async fn ping(store: &MysqlStore) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    sql_query("SELECT 1")
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn now(store: &MysqlStore) -> StoreResult<Timestamp> {
    let mut conn = store.conn().await?;
    let row: TimeRow = sql_query(format!("SELECT {MYSQL_NOW} AS t"))
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(row.t)
}

pub(super) async fn get_entry(store: &MysqlStore, identifier: &str) -> StoreResult<QueueEntry> {
    let mut conn = store.conn().await?;
    let row: Option<EntryRow> = sql_query(format!(
        "SELECT {ENTRY_COLS} FROM bildad_entries_v2 e
         JOIN bildad_templates t ON t.id = e.template_id
         WHERE e.job_run_identifier = ?"
    ))
    .bind::<Text, _>(identifier)
    .get_result(&mut conn)
    .await
    .map(Some)
    .or_else(not_found_is_none)?;
    row.ok_or_else(|| entry_not_found(identifier))?.try_into()
}

pub(super) async fn entry_position(
    store: &MysqlStore,
    identifier: &str,
) -> StoreResult<Option<u64>> {
    let mut conn = store.conn().await?;
    let row: Option<PositionRow> = sql_query(dialect::position(Dialect::Mysql))
        .bind::<Text, _>(identifier)
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
    let row = row.ok_or_else(|| entry_not_found(identifier))?;
    Ok((row.status == EntryStatus::Available.as_str()).then(|| count(row.ahead) + 1))
}

pub(super) async fn list_entries(
    store: &MysqlStore,
    status: Option<EntryStatus>,
    page: PageRequest,
) -> StoreResult<Page<QueueEntry>> {
    let filter = EntryFilter {
        status,
        ..Default::default()
    };
    list_entries_where(store, filter, page).await
}

pub(super) async fn list_entries_where(
    store: &MysqlStore,
    filter: EntryFilter,
    page: PageRequest,
) -> StoreResult<Page<QueueEntry>> {
    let l = dialect::entries(Dialect::Mysql, filter, page);
    let (rows, total) = store.listing::<EntryRow>(&l).await?;
    Ok(Page::new(convert(rows)?, total, page))
}

pub(super) async fn get_run(store: &MysqlStore, id: RunId) -> StoreResult<JobRun> {
    let mut conn = store.conn().await?;
    let row: Option<RunRow> = sql_query(format!("SELECT {RUN_COLS} FROM bildad_runs WHERE id = ?"))
        .bind::<BigInt, _>(id)
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
    row.ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
        .try_into()
}

pub(super) async fn list_runs(
    store: &MysqlStore,
    filter: RunFilter,
    page: PageRequest,
) -> StoreResult<Page<JobRun>> {
    let l = dialect::runs(Dialect::Mysql, filter, page);
    let (rows, total) = store.listing::<RunRow>(&l).await?;
    Ok(Page::new(convert(rows)?, total, page))
}

pub(super) async fn run_activity(
    store: &MysqlStore,
    since: Timestamp,
    bucket: Duration,
) -> StoreResult<RunActivity> {
    let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
    let mut conn = store.conn().await?;
    let rows: Vec<ActivityRow> = sql_query(ACTIVITY)
        .bind::<DbTime, _>(since)
        .bind::<BigInt, _>(bucket_ms)
        .bind::<DbTime, _>(since)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(activity(rows))
}

pub(super) async fn stats(store: &MysqlStore) -> StoreResult<QueueStats> {
    let mut conn = store.conn().await?;
    let row: StatsRow = sql_query(dialect::stats(Dialect::Mysql))
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(row.into())
}

pub(super) async fn queue_depths(store: &MysqlStore) -> StoreResult<Vec<bildad_core::QueueDepth>> {
    let mut conn = store.conn().await?;
    let rows: Vec<crate::depth::DepthRow> =
        sql_query(crate::depth::queue_depths_sql(Dialect::Mysql))
            .load(&mut conn)
            .await
            .map_err(db_error)?;
    Ok(crate::depth::depths(rows))
}
