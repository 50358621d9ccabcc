//! A run that never started (SPEC §2.4, `FailureKind::NotStarted`): its entry goes back
//! to `AVAILABLE` at once, and the run does not count against `max_retries`.

use crate::support::*;
use bildad_core::{
    Backoff, EntryFate, EntryStatus, FailureKind, Finalize, JobStore, Outcome, RunResult,
};
use std::sync::Arc;

/// With `max_retries` 0, a run that ended `NotStarted` runs again (a new run, with its
/// own `retry`), and the next failure then follows the ordinary rule: deleted, as a
/// first failure with no retries left would be.
pub async fn not_started_runs_again_without_spending_a_retry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let id = &e.job_run_identifier;
    let first = claim_one(s, &node, &t, id).await;
    let before = now(s).await;
    let r = finalize_and_win(
        s,
        finalize_request(first.run.id, Outcome::standard(FailureKind::NotStarted)),
    )
    .await;
    let after = now(s).await;
    let EntryFate::Requeued { run_at } = r.entry else {
        panic!("a run that never started gives its entry back: {r:?}");
    };
    assert_between(run_at, before, after, "requeued at once");
    let entry = expect_ok(s.get_entry(id).await, "entry");
    assert_eq!(entry.status, EntryStatus::Available);
    assert_eq!(entry.current_run_id, None);
    let run = expect_ok(s.get_run(first.run.id).await, "run");
    assert_eq!(run.result, Some(RunResult::Failed));
    assert_eq!(run.reason.as_deref(), Some("NotStarted"));

    let second = claim_one(s, &node, &t, id).await;
    assert_ne!(second.run.id, first.run.id);
    assert_ne!(
        second.run.retry, first.run.retry,
        "each run of an identifier has its own retry"
    );
    let r = finalize_and_win(
        s,
        finalize_request(second.run.id, Outcome::failed(FailureKind::Error, "boom")),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted, "no retries left: {r:?}");
}

/// With `max_retries` 1, after a `NotStarted` run the entry still has its one retry,
/// with the delay of a first failure (`Backoff::delay(0, …)`); the failure after that
/// deletes it.
pub async fn not_started_leaves_the_retries_and_backoff_as_they_were(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 1).await;
    let id = &e.job_run_identifier;
    let c = claim_one(s, &node, &t, id).await;
    finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::standard(FailureKind::NotStarted)),
    )
    .await;

    let c = claim_one(s, &node, &t, id).await;
    let backoff = Backoff::from_secs(60);
    let before = now(s).await;
    let r = finalize_and_win(
        s,
        Finalize {
            run_id: c.run.id,
            outcome: Outcome::failed(FailureKind::Error, "smtp down"),
            backoff,
        },
    )
    .await;
    let after = now(s).await;
    let EntryFate::Requeued { run_at } = r.entry else {
        panic!("the first counted failure keeps the entry: {r:?}");
    };
    let delay = chrono::Duration::from_std(backoff.delay(0, c.run.id)).unwrap();
    assert_between(
        run_at,
        before + delay,
        after + delay,
        "the first failure's delay",
    );

    let mut req = claim_request(&node, &[&t.job_type], 10);
    req.only_identifier = Some(id.clone());
    let mut got = expect_ok(s.claim(req).await, "claim only_identifier");
    assert_eq!(got.len(), 1, "{got:?}");
    let c = got.remove(0);
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Panic, "p")),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted, "the retry is spent now: {r:?}");
}
