//! Reads on PostgreSQL: health, the clock, entries, runs, activity and counts (written
//! once with MySQL's: `pooled::pooled_reads`; the activity query is PostgreSQL's own).

use super::PgStore;
use super::sql::ACTIVITY;
use crate::dialect::Dialect;
use crate::rows::{ActivityRow, activity};
use bildad_core::RunActivity;
use diesel::sql_types::{BigInt, Timestamptz};
use std::time::Duration;

crate::pooled::pooled_reads!(PgStore, diesel::pg::Pg, Dialect::Postgres);

pub(super) async fn run_activity(
    store: &PgStore,
    since: Timestamp,
    bucket: Duration,
) -> StoreResult<RunActivity> {
    // One grouped query (see `ACTIVITY`).
    let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
    let mut conn = store.conn().await?;
    let rows: Vec<ActivityRow> = diesel::sql_query(ACTIVITY)
        .bind::<Timestamptz, _>(since)
        .bind::<BigInt, _>(bucket_ms)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(activity(rows))
}
