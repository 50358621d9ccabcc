//! Operator actions on PostgreSQL: remove an entry, stop its run (both through the
//! guarded finalize), mark a run's process killed, prune the run history.

use super::PgStore;
use super::claim::finalize_in;
use super::sql::REMOVE_IDLE;
use crate::dialect::{self, Dialect};
use crate::errors::{Fail, db_error, keeps_changing};
use bildad_core::{
    FailureKind, Finalize, Outcome, RemoveResult, RunId, StopResult, StoreError, StoreResult,
    Timestamp,
};
use diesel::pg::Pg;
use diesel::sql_query;
use diesel::sql_types::{BigInt, Timestamptz};
use diesel_async::{AsyncConnection, RunQueryDsl};

pub(super) async fn remove_entry(store: &PgStore, identifier: &str) -> StoreResult<RemoveResult> {
    let mut conn = store.conn().await?;
    // Optimistic: read the entry, then act only if it is still in that state (a run
    // is locked before its entry, as in every finalize, so no deadlock).
    for _ in 0..16 {
        let entry = PgStore::entry_run(&mut conn, identifier).await?;
        let done = conn
            .transaction::<_, Fail, _>(async |c| match entry.current_run_id {
                Some(run_id) => {
                    let ended = finalize_in(
                        c,
                        &[Finalize {
                            run_id,
                            outcome: Outcome::standard(FailureKind::Removed),
                            backoff: bildad_core::Backoff::immediate(),
                        }],
                    )
                    .await?;
                    // The Removed disposition deleted the entry with its run.
                    Ok(ended[0].result.won.then_some(RemoveResult {
                        stopped_run: Some(run_id),
                    }))
                }
                None => {
                    let n = sql_query(REMOVE_IDLE)
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

pub(super) async fn stop_entry(store: &PgStore, identifier: &str) -> StoreResult<StopResult> {
    let mut conn = store.conn().await?;
    for _ in 0..16 {
        let entry = PgStore::entry_run(&mut conn, identifier).await?;
        let Some(run_id) = entry.current_run_id else {
            return Err(StoreError::Conflict(format!(
                "queue entry {identifier:?} is not running"
            )));
        };
        let reqs = [Finalize {
            run_id,
            outcome: Outcome::standard(FailureKind::Stopped),
            backoff: bildad_core::Backoff::immediate(),
        }];
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

pub(super) async fn mark_killed(store: &PgStore, run: RunId) -> StoreResult<bool> {
    let mut conn = store.conn().await?;
    let n = dialect::mark_killed(Dialect::Postgres, run)
        .query::<Pg>()
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(n == 1)
}

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
