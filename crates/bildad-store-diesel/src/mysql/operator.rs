//! Operator actions on MariaDB: remove an entry, stop its run (both through the guarded
//! finalize), mark a run's process killed, prune the run history.

use super::MysqlStore;
use super::finalize::finalize_in;
use crate::dialect::{self, Dialect};
use crate::errors::{Fail, db_error, keeps_changing};
use crate::rows::DbTime;
use bildad_core::{
    Backoff, FailureKind, Finalize, Outcome, RemoveResult, RunId, StopResult, StoreError,
    StoreResult, Timestamp,
};
use diesel::mysql::Mysql;
use diesel::sql_query;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, RunQueryDsl};

/// The finalize of run `run_id` with `kind`.
fn end(run_id: RunId, kind: FailureKind) -> [Finalize; 1] {
    [Finalize {
        run_id,
        outcome: Outcome::standard(kind),
        backoff: Backoff::immediate(),
    }]
}

pub(super) async fn remove_entry(
    store: &MysqlStore,
    identifier: &str,
) -> StoreResult<RemoveResult> {
    let mut conn = store.conn().await?;
    // Optimistic: read the entry, then act only if it is still in that state.
    for _ in 0..16 {
        let entry = MysqlStore::entry_run(&mut conn, identifier).await?;
        let done = conn
            .transaction::<_, Fail, _>(async |c| match entry.current_run_id {
                Some(run_id) => {
                    let ended = finalize_in(c, &end(run_id, FailureKind::Removed)).await?;
                    Ok(ended[0].result.won.then_some(RemoveResult {
                        stopped_run: Some(run_id),
                    }))
                }
                None => {
                    let n = sql_query("DELETE FROM bildad_queue WHERE id = ?")
                        .bind::<BigInt, _>(entry.id)
                        .execute(c)
                        .await?;
                    Ok((n == 1).then_some(RemoveResult { stopped_run: None }))
                }
            })
            .await
            .map_err(|f| f.0)?;
        if let Some(done) = done {
            return Ok(done);
        }
    }
    Err(keeps_changing(identifier))
}

pub(super) async fn stop_entry(store: &MysqlStore, identifier: &str) -> StoreResult<StopResult> {
    let mut conn = store.conn().await?;
    for _ in 0..16 {
        let entry = MysqlStore::entry_run(&mut conn, identifier).await?;
        let Some(run_id) = entry.current_run_id else {
            return Err(StoreError::Conflict(format!(
                "queue entry {identifier:?} is not running"
            )));
        };
        let reqs = end(run_id, FailureKind::Stopped);
        let ended = conn
            .transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
            .await
            .map_err(|f| f.0)?;
        if let Some(node) = ended.into_iter().next().and_then(|e| e.node) {
            return Ok(StopResult { run_id, node });
        }
    }
    Err(keeps_changing(identifier))
}

pub(super) async fn mark_killed(store: &MysqlStore, run: RunId) -> StoreResult<bool> {
    let mut conn = store.conn().await?;
    let n = dialect::mark_killed(Dialect::Mysql, run)
        .query::<Mysql>()
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(n == 1)
}

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
