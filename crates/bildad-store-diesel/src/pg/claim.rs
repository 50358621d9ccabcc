//! The engine's and the killer's statements on PostgreSQL: the claim (one statement),
//! the batched finalize (the one conditional step of SPEC §2.4), and the kill and expiry
//! lookups.

use super::PgStore;
use super::prepared::Cached;
use super::sql::{CLAIM, END_RUNS, EXPIRE, KILL, PICK, REQUEUE, RUNS_FINALIZED};
use crate::errors::{Fail, db_error, pool_error};
use crate::rows::{ClaimRow, EndedRow, IdRow, RequeuedRow, RunRefRow, convert, duration_us};
use bildad_core::{
    ClaimRequest, ClaimedRun, EntryAction, EntryFate, Finalize, FinalizeResult, RetryState, RunId,
    RunRef, StoreResult, entry_action,
};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;
use std::time::Duration;

pub(super) async fn claim(store: &PgStore, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
    if req.limit == 0 || req.job_types.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.claim_pool.get().await.map_err(pool_error)?;
    // The queues claimed apart, within their rooms: limited by their settings (a list a
    // node keeps for a second: see `queues::RestrictedCache`), or capped by the node.
    let restricted = super::queues::restricted(store, &mut conn).await?;
    let special: Vec<String> = restricted
        .iter()
        .chain(req.queue_caps.keys())
        .filter(|q| bildad_core::serves(req.queues.as_deref(), q))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut rows = if special.is_empty() {
        Vec::new()
    } else {
        super::queues::claim_limited(&mut conn, &req, &special).await?
    };
    let left = u64::from(req.limit).saturating_sub(rows.len() as u64);
    if left > 0 {
        rows.extend(claim_fast(&mut conn, &req, left, &special).await?);
    }
    // In run order: each statement's rows come unsorted (see `CLAIM`), and the limited
    // queues' come before the others'.
    rows.sort_unstable_by_key(ClaimRow::run_order);
    convert(rows)
}

/// The fast path: one statement, no transaction (the planner settings are the claim
/// connections' own: see `CLAIM_SESSION`), of at most `limit` entries of the queues the
/// node serves, none of the `special` ones (nor any restricted by its settings).
async fn claim_fast(
    conn: &mut AsyncPgConnection,
    req: &ClaimRequest,
    limit: u64,
    special: &[String],
) -> StoreResult<Vec<ClaimRow>> {
    let mut n = 5;
    let mut next = || {
        n += 1;
        n
    };
    let mut filter = match req.only_identifier {
        Some(_) => format!("e.job_run_identifier = ${}", next()),
        None => "e.run_at <= now()".to_owned(),
    };
    if req.queues.is_some() {
        filter += &format!(" AND e.queue = ANY(${})", next());
    }
    if !special.is_empty() {
        filter += &format!(" AND e.queue <> ALL(${})", next());
    }
    let sql = CLAIM.replace("{pick}", PICK).replace("{filter}", &filter);
    let mut query = sql_query(sql)
        .into_boxed::<diesel::pg::Pg>()
        .bind::<Array<Text>, _>(&req.job_types)
        .bind::<BigInt, _>(i64::try_from(limit).unwrap_or(i64::MAX))
        .bind::<Text, _>(&req.node.instance_id)
        .bind::<Text, _>(&req.node.name)
        .bind::<BigInt, _>(duration_us(req.expiry_grace));
    if let Some(id) = req.only_identifier.as_deref() {
        query = query.bind::<Text, _>(id);
    }
    if let Some(queues) = req.queues.as_deref() {
        query = query.bind::<Array<Text>, _>(queues);
    }
    if !special.is_empty() {
        query = query.bind::<Array<Text>, _>(special);
    }
    Cached(query).load(conn).await.map_err(db_error)
}

pub(super) async fn finalize_many(
    store: &PgStore,
    reqs: Vec<Finalize>,
) -> StoreResult<Vec<FinalizeResult>> {
    if reqs.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    // Successes (the common case) end in one statement, without BEGIN/COMMIT.
    let ended = if needs_transaction(&reqs) {
        conn.transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
            .await
    } else {
        finalize_in(&mut conn, &reqs).await
    }
    .map_err(|f| f.0)?;
    Ok(ended.into_iter().map(|e| e.result).collect())
}

pub(super) async fn runs_to_kill(store: &PgStore, node: &str) -> StoreResult<Vec<RunRef>> {
    let mut conn = store.conn().await?;
    let rows: Vec<RunRefRow> = Cached(sql_query(KILL).bind::<Text, _>(node))
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(super) async fn runs_to_expire(
    store: &PgStore,
    node_dead_after: Duration,
) -> StoreResult<Vec<RunRef>> {
    let mut conn = store.conn().await?;
    let rows: Vec<RunRefRow> =
        Cached(sql_query(EXPIRE).bind::<BigInt, _>(duration_us(node_dead_after)))
            .load(&mut conn)
            .await
            .map_err(db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(super) async fn runs_finalized(store: &PgStore, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    let rows: Vec<IdRow> = Cached(sql_query(RUNS_FINALIZED).bind::<Array<BigInt>, _>(runs))
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// What one finalize did, with the run's node (for `stop_entry`).
pub(super) struct Ended {
    pub(super) result: FinalizeResult,
    pub(super) node: Option<String>,
}

/// The entry's fate when the outcome alone decides it, which `END_RUNS` then applies
/// itself; `None` for the retry rule, decided after the statement.
fn fixed_action(req: &Finalize) -> Option<EntryAction> {
    req.outcome.disposition().fixed_action()
}

/// A fixed action as `END_RUNS` receives it: the action's name (NULL for the retry
/// rule), the requeue delay, and whether the run counts against `max_retries`.
fn as_data(action: Option<EntryAction>) -> (Option<&'static str>, i64, bool) {
    match action {
        Some(EntryAction::Delete) => (Some("delete"), 0, true),
        Some(EntryAction::Requeue { delay, counted }) => {
            (Some("requeue"), duration_us(delay), counted)
        }
        None => (None, 0, true),
    }
}

/// True when a batch needs a transaction: a retry-rule failure is settled by a second
/// statement, which must commit with the first. Any other batch is one statement.
fn needs_transaction(reqs: &[Finalize]) -> bool {
    reqs.iter().any(|r| fixed_action(r).is_none())
}

/// The one conditional step of SPEC §2.4 for a batch of runs: one statement (`END_RUNS`)
/// when no request follows the retry rule, else at most three, which the caller must run
/// inside a transaction (see [`needs_transaction`]).
pub(super) async fn finalize_in(
    c: &mut AsyncPgConnection,
    reqs: &[Finalize],
) -> Result<Vec<Ended>, Fail> {
    // A run id given twice: the first finalize decides, later ones lose (as if serial).
    let mut first: HashMap<RunId, usize> = HashMap::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        first.entry(r.run_id).or_insert(i);
    }
    // Rows are locked in run-id order, so that concurrent batches (a node's finalizer,
    // another node's expiry, an operator's stop) cannot deadlock on each other.
    let mut order: Vec<usize> = first.values().copied().collect();
    order.sort_unstable_by_key(|&i| reqs[i].run_id);
    let n = order.len();
    let mut ids = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut reasons = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut actions = Vec::with_capacity(n);
    let mut delays = Vec::with_capacity(n);
    let mut counted = Vec::with_capacity(n);
    for i in order {
        let r = &reqs[i];
        let end = r.outcome.run_end();
        let (action, delay, counts) = as_data(fixed_action(r));
        ids.push(r.run_id);
        results.push(end.result.as_str());
        reasons.push(end.reason);
        outputs.push(end.output);
        actions.push(action);
        delays.push(delay);
        counted.push(counts);
    }
    let ended: Vec<EndedRow> = Cached(
        sql_query(END_RUNS)
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<Text>, _>(results)
            .bind::<Array<Nullable<Text>>, _>(reasons)
            .bind::<Array<Nullable<Jsonb>>, _>(outputs)
            .bind::<Array<Nullable<Text>>, _>(actions)
            .bind::<Array<BigInt>, _>(delays)
            .bind::<Array<Bool>, _>(counted),
    )
    .load(c)
    .await?;

    let mut out: Vec<Ended> = reqs
        .iter()
        .map(|r| Ended {
            result: FinalizeResult {
                run_id: r.run_id,
                won: false,
                entry: EntryFate::Untouched,
            },
            node: None,
        })
        .collect();
    // Runs whose entry the retry rule re-inserts, with their delays; a retry rule that
    // deletes has nothing to do (the running entry was its run).
    let (mut requeue, mut delays) = (vec![], vec![]);
    let mut requeued_slot: HashMap<i64, usize> = HashMap::new();
    for row in ended {
        let slot = first[&row.run_id];
        out[slot].result.won = true;
        out[slot].node = Some(row.node);
        out[slot].result.entry = match row.requeued_at {
            Some(run_at) => EntryFate::Requeued { run_at },
            None => EntryFate::Deleted,
        };
        if fixed_action(&reqs[slot]).is_some() {
            continue; // settled by END_RUNS itself
        }
        let (Some(max_retries), Some(uncounted_runs)) = (row.max_retries, row.uncounted_runs)
        else {
            continue;
        };
        let state = RetryState {
            retry: row.retry,
            uncounted_runs,
            max_retries,
        };
        if let EntryAction::Requeue { delay, .. } = entry_action(&reqs[slot], state) {
            requeue.push(row.run_id);
            delays.push(duration_us(delay));
            requeued_slot.insert(row.entry_id, slot);
        }
    }
    if !requeue.is_empty() {
        let rows: Vec<RequeuedRow> = Cached(
            sql_query(REQUEUE)
                .bind::<Array<BigInt>, _>(requeue)
                .bind::<Array<BigInt>, _>(delays),
        )
        .load(c)
        .await?;
        for r in rows {
            out[requeued_slot[&r.id]].result.entry = EntryFate::Requeued { run_at: r.run_at };
        }
    }
    Ok(out)
}
