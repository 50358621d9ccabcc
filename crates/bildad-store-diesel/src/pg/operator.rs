//! Operator actions on PostgreSQL: remove an entry, stop its run (both through the
//! guarded finalize), mark a run's process killed (written once with MySQL's:
//! `pooled::pooled_operator`), prune the run history.

use super::PgStore;
use super::claim::finalize_in;
use crate::dialect::Dialect;
use bildad_core::Timestamp;
use diesel::sql_query;
use diesel::sql_types::Timestamptz;

crate::pooled::pooled_operator!(PgStore, diesel::pg::Pg, Dialect::Postgres);

pub(super) async fn prune_runs(store: &PgStore, older_than: Timestamp) -> StoreResult<u64> {
    let mut conn = store.conn().await?;
    // The expired unique keys go in the same statement (`unique::PRUNE_KEYS`).
    let n = sql_query(format!(
        "WITH keys AS ({}) DELETE FROM bildad_runs WHERE status = 'DONE' AND ended_at < $1",
        super::unique::PRUNE_KEYS
    ))
    .bind::<Timestamptz, _>(older_than)
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    Ok(n as u64)
}
