//! A job that snoozes or cancels itself (SPEC §8): both are outcomes of the one guarded
//! finalize. A snoozed entry is available again after the delay, without spending a
//! retry; a cancelled one is deleted, whatever its retries.

use crate::support::*;
use bildad_core::{
    EntryFate, EntryStatus, ErrorKind, FailureKind, JobError, JobStore, Outcome, RunResult,
};
use std::sync::Arc;
use std::time::Duration;

/// The outcome of a job that returned `e`, as the runtime finalizes it.
fn returned(e: JobError) -> Outcome {
    Outcome::failed(e.kind(), e.message())
}

/// With `max_retries` 0, a job that snoozes twice runs a third time; the entry comes
/// back `AVAILABLE` at now + the delay, the run records `Snoozed for N s`, and the next
/// failure follows the ordinary rule (deleted: no retry was spent, none is left).
pub async fn snooze_requeues_later_without_spending_a_retry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let id = &e.job_run_identifier;
    for _ in 0..2 {
        let c = claim_one_ignoring_run_at(s, &node, &t, id).await;
        let before = now(s).await;
        let r = finalize_and_win(
            s,
            finalize_request(
                c.run.id,
                returned(JobError::snooze(Duration::from_secs(90))),
            ),
        )
        .await;
        let after = now(s).await;
        let EntryFate::Requeued { run_at } = r.entry else {
            panic!("a snoozed entry comes back: {r:?}");
        };
        let delay = chrono::Duration::seconds(90);
        assert_between(run_at, before + delay, after + delay, "snoozed for 90 s");
        let entry = expect_ok(s.get_entry(id).await, "entry");
        assert_eq!(entry.status, EntryStatus::Available);
        assert_eq!(entry.run_at, run_at);
        let run = expect_ok(s.get_run(c.run.id).await, "run");
        assert_eq!(run.result, Some(RunResult::Failed));
        assert_eq!(run.reason.as_deref(), Some("Snoozed for 90 s"));
        // Not claimable before its time.
        let got = expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 10)).await,
            "claim",
        );
        assert!(got.is_empty(), "a snoozed entry waits: {got:?}");
    }
    let c = claim_one_ignoring_run_at(s, &node, &t, id).await;
    assert_eq!(c.run.retry, 2);
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Error, "boom")),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted, "no retries left: {r:?}");
}

/// A cancelled run ends `FAILED` with reason `Cancelled: <reason>` and its entry is
/// deleted although retries are left; the identifier stays taken by the history.
pub async fn cancel_is_final(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 5).await;
    let id = &e.job_run_identifier;
    let c = claim_one(s, &node, &t, id).await;
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, returned(JobError::cancel("customer left"))),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted, "cancel is final: {r:?}");
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_eq!(run.result, Some(RunResult::Failed));
    assert_eq!(run.reason.as_deref(), Some("Cancelled: customer left"));
    expect_err(
        s.get_entry(id).await,
        ErrorKind::NotFound,
        "cancelled entry",
    );
    assert_eq!(counts(s).await, (0, 1));
}

/// A snooze or cancel that arrives after the run was ended elsewhere (stopped by an
/// operator) loses, and changes nothing: the same guard as every outcome.
pub async fn snooze_and_cancel_lose_to_an_earlier_finalize(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let id = &e.job_run_identifier;
    let c = claim_one(s, &node, &t, id).await;
    expect_ok(s.stop_entry(id).await, "stop");
    for late in [
        JobError::snooze(Duration::from_secs(60)),
        JobError::cancel("too late"),
    ] {
        let r = expect_ok(
            s.finalize(finalize_request(c.run.id, returned(late))).await,
            "late finalize",
        );
        assert!(!r.won, "{r:?}");
        assert_eq!(r.entry, EntryFate::Untouched);
    }
    let entry = expect_ok(s.get_entry(id).await, "entry");
    assert_eq!(entry.status, EntryStatus::Available);
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_eq!(run.reason.as_deref(), Some("Stopped"));
}
