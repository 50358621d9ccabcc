//! The engine's and the killer's statements on SQLite: the claim, the finalize (the one
//! conditional step of SPEC §2.4, run by run in one transaction), and the kill and
//! expiry lookups.

use super::sql::{CLAIM_MOVE, END_RUN, EXPIRE, KILL, REQUEUE, RUNS_FINALIZED};
use super::{SqliteStore, Tx, json_array, now_us, optional};
use crate::rows::{IdRow, RUN_COLS, RunRefRow, RunRow, TimeRow, duration_us};
use bildad_core::{
    ClaimRequest, ClaimedRun, EntryAction, EntryFate, Finalize, FinalizeResult, JobRun, RetryState,
    RunId, RunRef, StoreResult, Timestamp, entry_action,
};
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection, sql_query};
use std::time::Duration;

/// An entry the claim picked.
#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = BigInt)]
    template_id: i64,
    #[diesel(sql_type = crate::rows::DbTime)]
    template_updated_at: Timestamp,
    #[diesel(sql_type = crate::rows::DbTime)]
    run_at: Timestamp,
    #[diesel(sql_type = Nullable<Text>)]
    trace_context: Option<String>,
    #[diesel(sql_type = Integer)]
    priority: i32,
    #[diesel(sql_type = BigInt)]
    inserted_at: i64,
}

/// A run a finalize ended.
#[derive(QueryableByName)]
struct EndedRun {
    #[diesel(sql_type = BigInt)]
    run_id: i64,
    #[diesel(sql_type = Integer)]
    retry: i32,
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = Integer)]
    uncounted_runs: i32,
}

/// What one finalize did, with the run's node (for `stop_entry`).
pub(super) struct Ended {
    pub(super) result: FinalizeResult,
    pub(super) node: Option<String>,
}

pub(super) async fn claim(store: &SqliteStore, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
    if req.limit == 0 || req.job_types.is_empty() {
        return Ok(Vec::new());
    }
    store
        .write(move |c| {
            let now = now_us(c)?;
            // The queues treated apart, and their rooms, counted under the write lock.
            let (special, rooms) = super::queues::special(c, &req, now)?;
            let mut picked = pick(c, &req, now, Pick::Except(&special), req.limit)?;
            for (queue, room) in rooms {
                let room = u32::try_from(room).unwrap_or(u32::MAX);
                picked.extend(pick(c, &req, now, Pick::Only(&queue), room)?);
            }
            picked.sort_by_key(|p| (p.priority, p.inserted_at, p.id));
            picked.truncate(req.limit as usize);
            let grace = duration_us(req.expiry_grace);
            let mut out = Vec::with_capacity(picked.len());
            for p in picked {
                let run: RunRow = sql_query(format!("{CLAIM_MOVE} RETURNING {RUN_COLS}"))
                    .bind::<BigInt, _>(p.id)
                    .bind::<Text, _>(&req.node.instance_id)
                    .bind::<Text, _>(&req.node.name)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(grace)
                    .get_result(c)?;
                let run: JobRun = run.try_into()?;
                sql_query("DELETE FROM bildad_queue WHERE id = ?1")
                    .bind::<BigInt, _>(p.id)
                    .execute(c)?;
                out.push(ClaimedRun {
                    run,
                    max_retries: p.max_retries,
                    template_id: p.template_id,
                    template_updated_at: p.template_updated_at,
                    entry_run_at: p.run_at,
                    trace_context: p.trace_context,
                });
            }
            Ok(out)
        })
        .await
}

/// Which queues a pick takes entries of.
enum Pick<'a> {
    /// Those the request serves, but none of these.
    Except(&'a [String]),
    /// Only this one.
    Only(&'a str),
}

/// At most `limit` available entries in run order, of the queues `which` names.
fn pick(
    c: &mut SqliteConnection,
    req: &ClaimRequest,
    now: i64,
    which: Pick<'_>,
    limit: u32,
) -> Tx<Vec<Picked>> {
    let filter = if req.only_identifier.is_some() {
        "e.job_run_identifier = ?4 AND ?3 IS NOT NULL"
    } else {
        // SQLite refuses a bound parameter that the statement does not name.
        "e.run_at <= ?3 AND ?4 IS NULL"
    };
    let (queues, (list, served)) = match which {
        Pick::Except(special) => (
            "e.queue NOT IN (SELECT value FROM json_each(?5))
               AND (?6 IS NULL OR e.queue IN (SELECT value FROM json_each(?6)))",
            (json_array(special), req.queues.as_deref().map(json_array)),
        ),
        Pick::Only(q) => ("e.queue = ?5 AND ?6 IS NULL", (q.to_owned(), None)),
    };
    Ok(sql_query(format!(
        "SELECT e.id, e.max_retries, t.id AS template_id,
                t.updated_at AS template_updated_at, e.run_at, e.trace_context,
                e.priority, e.inserted_at
         FROM bildad_queue e
         JOIN bildad_templates t ON t.id = e.template_id
         WHERE e.status = 'AVAILABLE' AND {filter} AND {queues}
           AND t.job_type IN (SELECT value FROM json_each(?1))
         ORDER BY e.priority, e.inserted_at, e.id
         LIMIT ?2"
    ))
    .bind::<Text, _>(json_array(&req.job_types))
    .bind::<BigInt, _>(i64::from(limit))
    .bind::<BigInt, _>(now)
    .bind::<Nullable<Text>, _>(req.only_identifier.as_deref())
    .bind::<Text, _>(list)
    .bind::<Nullable<Text>, _>(served)
    .load(c)?)
}

pub(super) async fn finalize_many(
    store: &SqliteStore,
    reqs: Vec<Finalize>,
) -> StoreResult<Vec<FinalizeResult>> {
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let ended = store.write(move |c| finalize_in(c, &reqs)).await?;
    Ok(ended.into_iter().map(|e| e.result).collect())
}

pub(super) async fn runs_to_kill(store: &SqliteStore, node: &str) -> StoreResult<Vec<RunRef>> {
    let node = node.to_string();
    store
        .run(move |c| {
            let now = now_us(c)?;
            let rows: Vec<RunRefRow> = sql_query(KILL)
                .bind::<Text, _>(&node)
                .bind::<BigInt, _>(now)
                .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
}

pub(super) async fn runs_to_expire(
    store: &SqliteStore,
    node_dead_after: Duration,
) -> StoreResult<Vec<RunRef>> {
    let dead_after = duration_us(node_dead_after);
    store
        .run(move |c| {
            let now = now_us(c)?;
            let rows: Vec<RunRefRow> = sql_query(EXPIRE)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(dead_after)
                .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
}

pub(super) async fn runs_finalized(store: &SqliteStore, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let ids = json_array(runs);
    store
        .run(move |c| {
            let rows: Vec<IdRow> = sql_query(RUNS_FINALIZED).bind::<Text, _>(ids).load(c)?;
            Ok(rows.into_iter().map(|r| r.id).collect())
        })
        .await
}

/// The one conditional step of SPEC §2.4 for each run in turn, inside the caller's
/// transaction (so later duplicates of a run id lose, as if serial). The entry's fate is
/// core's rule (`bildad_core::entry_action`).
pub(super) fn finalize_in(c: &mut SqliteConnection, reqs: &[Finalize]) -> Tx<Vec<Ended>> {
    let now = now_us(c)?;
    let mut out = Vec::with_capacity(reqs.len());
    for req in reqs {
        let end = req.outcome.run_end();
        let ended: Option<EndedRun> = optional(
            sql_query(END_RUN)
                .bind::<BigInt, _>(req.run_id)
                .bind::<Text, _>(end.result.as_str())
                .bind::<Nullable<Text>, _>(end.reason)
                .bind::<Nullable<Text>, _>(end.output.map(|o| o.to_string()))
                .bind::<BigInt, _>(now)
                .get_result(c),
        )?;
        let Some(ended) = ended else {
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
        // The running entry was its run: a deletion has nothing left to delete, a
        // requeue re-inserts the entry.
        let state = RetryState {
            retry: ended.retry,
            uncounted_runs: ended.uncounted_runs,
            max_retries: ended.max_retries,
        };
        let fate = match entry_action(req, state) {
            EntryAction::Delete => EntryFate::Deleted,
            EntryAction::Requeue { delay, counted } => {
                let row: TimeRow = sql_query(REQUEUE)
                    .bind::<BigInt, _>(ended.run_id)
                    .bind::<BigInt, _>(now)
                    .bind::<BigInt, _>(duration_us(delay))
                    .bind::<Integer, _>(i32::from(!counted))
                    .get_result(c)?;
                EntryFate::Requeued { run_at: row.t }
            }
        };
        out.push(Ended {
            result: FinalizeResult {
                run_id: ended.run_id,
                won: true,
                entry: fate,
            },
            node: Some(ended.node),
        });
    }
    Ok(out)
}
