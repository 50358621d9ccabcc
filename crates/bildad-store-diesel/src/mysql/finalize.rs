//! The finalize on MariaDB (the one conditional step of SPEC §2.4), batched: the runs
//! still `RUNNING` are locked with one read, ended with one `UPDATE` per distinct end,
//! and the entries that core's rule keeps (`bildad_core::entry_action`) are re-inserted
//! with one `INSERT … SELECT … RETURNING` per distinct delay — all in one transaction.

use super::{IDS, MysqlStore, json_ids, retry_deadlocks};
use crate::errors::Fail;
use crate::rows::{RequeuedRow, duration_us};
use bildad_core::{
    EntryAction, EntryFate, Finalize, FinalizeResult, RetryState, StoreResult, entry_action,
};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use std::collections::{BTreeMap, HashMap};

/// A run still `RUNNING`, locked, with what the retry rule reads.
#[derive(QueryableByName)]
struct Running {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = BigInt)]
    entry_id: i64,
    #[diesel(sql_type = Integer)]
    retry: i32,
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = Integer)]
    uncounted_runs: i32,
}

/// How runs end (result, reason, output as JSON text): the runs of one end are ended
/// by one statement.
type Ends = BTreeMap<(&'static str, Option<String>, Option<String>), Vec<i64>>;

/// A winning request: its place in the output, its entry's id, and whether its entry
/// is re-inserted.
struct Won {
    index: usize,
    entry_id: i64,
    requeued: bool,
}

/// What one finalize did, with the run's node (for `stop_entry`).
pub(super) struct Ended {
    pub(super) result: FinalizeResult,
    pub(super) node: Option<String>,
}

/// Re-inserts the entries of the runs `?` ([`IDS`]), after `?` µs; `?` is 1 for runs
/// that do not count against `max_retries`. The same id, identifier, context and
/// `inserted_at` (its place in line).
fn requeue_sql() -> String {
    format!(
        "INSERT INTO bildad_queue (id, job_run_identifier, template_id, priority,
            timeout_seconds, max_retries, context, run_at, attempts, uncounted_runs,
            inserted_at, updated_at, queue, trace_context)
         SELECT r.entry_id, r.job_run_identifier, r.template_id, r.priority,
                r.timeout_seconds, r.max_retries, r.context,
                UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND, r.retry + 1,
                r.uncounted_runs + ?, r.entry_inserted_at, UTC_TIMESTAMP(6), r.queue,
                r.trace_context
         FROM {IDS} STRAIGHT_JOIN bildad_runs r ON r.id = j.id
         RETURNING id, run_at"
    )
}

pub(super) async fn finalize_many(
    store: &MysqlStore,
    reqs: Vec<Finalize>,
) -> StoreResult<Vec<FinalizeResult>> {
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    let ended = retry_deadlocks!(
        conn.transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
            .await
            .map_err(|f| f.0)
    )?;
    Ok(ended.into_iter().map(|e| e.result).collect())
}

/// Finalizes `reqs` inside the caller's transaction: a run wins once (a later duplicate
/// of its id loses, as if serial).
pub(super) async fn finalize_in(
    c: &mut AsyncMysqlConnection,
    reqs: &[Finalize],
) -> Result<Vec<Ended>, Fail> {
    let mut ids: Vec<i64> = reqs.iter().map(|r| r.run_id).collect();
    ids.sort_unstable();
    ids.dedup();
    // Locked in id order (the JSON's), as every finalize locks them: two batches cannot
    // deadlock on their runs.
    let running: Vec<Running> = sql_query(format!(
        "SELECT r.id, r.entry_id, r.retry, r.node, r.max_retries, r.uncounted_runs
         FROM {IDS} STRAIGHT_JOIN bildad_runs r ON r.id = j.id
         WHERE r.status = 'RUNNING' FOR UPDATE"
    ))
    .bind::<Text, _>(json_ids(&ids))
    .load(c)
    .await?;
    let mut running: HashMap<i64, Running> = running.into_iter().map(|r| (r.id, r)).collect();

    // Who wins, how each run ends (grouped), and which entries come back.
    let mut ends = Ends::new();
    let mut requeues: BTreeMap<(i64, bool), Vec<i64>> = BTreeMap::new();
    let mut out = Vec::with_capacity(reqs.len());
    let mut won: Vec<Won> = Vec::new();
    for req in reqs {
        let Some(run) = running.remove(&req.run_id) else {
            out.push(Ended {
                result: FinalizeResult {
                    run_id: req.run_id,
                    won: false,
                    entry: EntryFate::Untouched,
                },
                node: None,
            });
            continue;
        };
        let end = req.outcome.run_end();
        ends.entry((
            end.result.as_str(),
            end.reason,
            end.output.map(|o| o.to_string()),
        ))
        .or_default()
        .push(run.id);
        let state = RetryState {
            retry: run.retry,
            uncounted_runs: run.uncounted_runs,
            max_retries: run.max_retries,
        };
        let requeued = match entry_action(req, state) {
            EntryAction::Delete => false,
            EntryAction::Requeue { delay, counted } => {
                let key = (duration_us(delay), counted);
                requeues.entry(key).or_default().push(run.id);
                true
            }
        };
        won.push(Won {
            index: out.len(),
            entry_id: run.entry_id,
            requeued,
        });
        out.push(Ended {
            result: FinalizeResult {
                run_id: run.id,
                won: true,
                entry: EntryFate::Deleted,
            },
            node: Some(run.node),
        });
    }
    for ((result, reason, output), ids) in &ends {
        sql_query(format!(
            "UPDATE {IDS} STRAIGHT_JOIN bildad_runs r ON r.id = j.id
             SET r.status = 'DONE', r.result = ?, r.reason = ?, r.output = ?,
                 r.ended_at = UTC_TIMESTAMP(6)
             WHERE r.status = 'RUNNING'"
        ))
        .bind::<Text, _>(json_ids(ids))
        .bind::<Text, _>(*result)
        .bind::<Nullable<Text>, _>(reason.as_deref())
        .bind::<Nullable<Text>, _>(output.as_deref())
        .execute(c)
        .await?;
    }
    let mut run_at = HashMap::new();
    for ((delay, counted), ids) in &requeues {
        let rows: Vec<RequeuedRow> = sql_query(requeue_sql())
            .bind::<BigInt, _>(*delay)
            .bind::<Integer, _>(i32::from(!counted))
            .bind::<Text, _>(json_ids(ids))
            .load(c)
            .await?;
        run_at.extend(rows.into_iter().map(|r| (r.id, r.run_at)));
    }
    for w in won.into_iter().filter(|w| w.requeued) {
        if let Some(t) = run_at.get(&w.entry_id) {
            out[w.index].result.entry = EntryFate::Requeued { run_at: *t };
        }
    }
    Ok(out)
}
