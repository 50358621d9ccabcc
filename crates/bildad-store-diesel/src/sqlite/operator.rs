//! Operator actions on SQLite: remove an entry, stop its run (both through the guarded
//! finalize), mark a run's process killed, prune the run history.

use super::claim::finalize_in;
use super::{SqliteStore, entry_run};
use crate::dialect::{self, Dialect};
use crate::errors::Fail;
use crate::rows::micros;
use bildad_core::{
    FailureKind, Finalize, Outcome, RemoveResult, RunId, StopResult, StoreError, StoreResult,
    Timestamp,
};
use diesel::sql_types::BigInt;
use diesel::sqlite::Sqlite;
use diesel::{RunQueryDsl, sql_query};

pub(super) async fn remove_entry(
    store: &SqliteStore,
    identifier: &str,
) -> StoreResult<RemoveResult> {
    let identifier = identifier.to_string();
    store
        .write(move |c| {
            let entry = entry_run(c, &identifier)?;
            if let Some(run_id) = entry.current_run_id {
                finalize_in(
                    c,
                    &[Finalize {
                        run_id,
                        outcome: Outcome::standard(FailureKind::Removed),
                        backoff: bildad_core::Backoff::immediate(),
                    }],
                )?;
            }
            sql_query("DELETE FROM bildad_queue WHERE id = ?1")
                .bind::<BigInt, _>(entry.id)
                .execute(c)?;
            Ok(RemoveResult {
                stopped_run: entry.current_run_id,
            })
        })
        .await
}

pub(super) async fn stop_entry(store: &SqliteStore, identifier: &str) -> StoreResult<StopResult> {
    let identifier = identifier.to_string();
    store
        .write(move |c| {
            let entry = entry_run(c, &identifier)?;
            let Some(run_id) = entry.current_run_id else {
                return Err(Fail(StoreError::Conflict(format!(
                    "queue entry {identifier:?} is not running"
                ))));
            };
            let ended = finalize_in(
                c,
                &[Finalize {
                    run_id,
                    outcome: Outcome::standard(FailureKind::Stopped),
                    backoff: bildad_core::Backoff::immediate(),
                }],
            )?;
            let node = ended
                .into_iter()
                .next()
                .and_then(|e| e.node)
                .ok_or_else(|| {
                    // The invariant (entry RUNNING ⇔ its run RUNNING) was broken.
                    Fail(StoreError::database(format!(
                        "run {run_id} of queue entry {identifier:?} is not running"
                    )))
                })?;
            Ok(StopResult { run_id, node })
        })
        .await
}

pub(super) async fn mark_killed(store: &SqliteStore, run: RunId) -> StoreResult<bool> {
    store
        .write(move |c| {
            let n = dialect::mark_killed(Dialect::Sqlite, run)
                .query::<Sqlite>()
                .execute(c)?;
            Ok(n == 1)
        })
        .await
}

pub(super) async fn prune_runs(store: &SqliteStore, older_than: Timestamp) -> StoreResult<u64> {
    store
        .write(move |c| {
            let n = sql_query("DELETE FROM bildad_runs WHERE status = 'DONE' AND ended_at < ?1")
                .bind::<BigInt, _>(micros(older_than))
                .execute(c)?;
            let now = super::now_us(c)?;
            sql_query(super::unique::PRUNE_KEYS)
                .bind::<BigInt, _>(now)
                .execute(c)?;
            Ok(n as u64)
        })
        .await
}
