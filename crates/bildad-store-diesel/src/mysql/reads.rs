//! Reads on MariaDB: health, the clock, entries, runs, activity and counts (written once
//! with PostgreSQL's: `pooled::pooled_reads`; the activity query is MySQL's own).

use super::MysqlStore;
use super::sql::ACTIVITY;
use crate::dialect::Dialect;
use crate::rows::{ActivityRow, DbTime, activity};
use bildad_core::RunActivity;
use diesel::sql_types::BigInt;
use std::time::Duration;

crate::pooled::pooled_reads!(MysqlStore, diesel::mysql::Mysql, Dialect::Mysql);

pub(super) async fn run_activity(
    store: &MysqlStore,
    since: Timestamp,
    bucket: Duration,
) -> StoreResult<RunActivity> {
    let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
    let mut conn = store.conn().await?;
    let rows: Vec<ActivityRow> = diesel::sql_query(ACTIVITY)
        .bind::<DbTime, _>(since)
        .bind::<BigInt, _>(bucket_ms)
        .bind::<DbTime, _>(since)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(activity(rows))
}
