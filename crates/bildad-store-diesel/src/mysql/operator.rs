//! Operator actions on MariaDB: remove an entry, stop its run (both through the guarded
//! finalize), mark a run's process killed (written once with PostgreSQL's:
//! `pooled::pooled_operator`), prune the run history.

use super::MysqlStore;
use super::finalize::finalize_in;
use crate::dialect::Dialect;
use crate::rows::DbTime;
use bildad_core::Timestamp;
use diesel::sql_query;

crate::pooled::pooled_operator!(MysqlStore, diesel::mysql::Mysql, Dialect::Mysql);

pub(super) async fn prune_runs(store: &MysqlStore, older_than: Timestamp) -> StoreResult<u64> {
    let mut conn = store.conn().await?;
    conn.transaction::<_, Fail, _>(async |c| {
        // The expired unique keys go with the history.
        sql_query(super::enqueue::PRUNE_KEYS).execute(c).await?;
        let n = sql_query("DELETE FROM bildad_runs WHERE status = 'DONE' AND ended_at < ?")
            .bind::<DbTime, _>(older_than)
            .execute(c)
            .await?;
        Ok(n as u64)
    })
    .await
    .map_err(|f| f.0)
}
