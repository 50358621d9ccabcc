//! Stop and remove (SPEC §2.7).

use crate::support::*;
use bildad_core::{EntryStatus, ErrorKind, FailureKind, JobStore, Outcome, RunResult, RunStatus};
use std::sync::Arc;

/// Stop: the run ends `FAILED`/`Stopped`, the entry is `AVAILABLE` now; the result names
/// the run and its node.
pub async fn stop_running_entry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let before = now(s).await;
    let r = expect_ok(s.stop_entry(&e.job_run_identifier).await, "stop_entry");
    let after = now(s).await;
    assert_eq!(r.run_id, c.run.id);
    assert_eq!(r.node, node.instance_id);
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_eq!(run.status, RunStatus::Done);
    assert_eq!(run.result, Some(RunResult::Failed));
    assert_eq!(run.reason.as_deref(), Some("Stopped"));
    let entry = expect_ok(s.get_entry(&e.job_run_identifier).await, "entry");
    assert_eq!(entry.status, EntryStatus::Available);
    assert_eq!(entry.current_run_id, None);
    assert_between(entry.run_at, before, after, "available now");
    assert_eq!(
        expect_ok(s.runs_finalized(&[c.run.id]).await, "runs_finalized"),
        [c.run.id]
    );
    // Stopping again: not running.
    expect_err(
        s.stop_entry(&e.job_run_identifier).await,
        ErrorKind::Conflict,
        "stop twice",
    );
    // The job's own late finish loses.
    let late = expect_ok(
        s.finalize(finalize_request(c.run.id, Outcome::succeeded(None)))
            .await,
        "late",
    );
    assert!(!late.won);
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "entry"),
        entry
    );
    // It runs again.
    let c2 = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(c2.run.retry, 1);
}

/// Stopping an entry that is not running is a `Conflict` and changes nothing.
pub async fn stop_available_entry_conflicts(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let e = enqueue_with_retries(s, &t, 0).await;
    expect_err(
        s.stop_entry(&e.job_run_identifier).await,
        ErrorKind::Conflict,
        "stop available",
    );
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "entry"),
        e
    );
    assert_eq!(counts(s).await, (1, 0));
}

/// Stop of an unknown identifier is `NotFound`.
pub async fn stop_unknown_entry_not_found(store: Arc<dyn JobStore>) {
    expect_err(
        store.stop_entry("conf-unknown").await,
        ErrorKind::NotFound,
        "stop unknown",
    );
}

/// Remove of an unknown identifier is `NotFound`.
pub async fn remove_unknown_entry_not_found(store: Arc<dyn JobStore>) {
    expect_err(
        store.remove_entry("conf-unknown").await,
        ErrorKind::NotFound,
        "remove unknown",
    );
}

/// The position of an unknown identifier is `NotFound`.
pub async fn entry_position_unknown_not_found(store: Arc<dyn JobStore>) {
    expect_err(
        store.entry_position("conf-unknown").await,
        ErrorKind::NotFound,
        "position unknown",
    );
}

/// A removed entry is unknown: removing or stopping it again is `NotFound`.
pub async fn removed_entry_is_unknown(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let e = enqueue_with_retries(s, &t, 0).await;
    expect_ok(s.remove_entry(&e.job_run_identifier).await, "remove");
    expect_err(
        s.remove_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "remove twice",
    );
    expect_err(
        s.stop_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "stop removed",
    );
}

/// Remove of a running entry: the entry is gone, the run ends `FAILED`/`Removed`.
pub async fn remove_running_entry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 5).await;
    let other = enqueue_with_retries(s, &t, 5).await;
    let c = claim_one_of(s, &node, &t).await;
    let (gone, kept) = if c.run.job_run_identifier == e.job_run_identifier {
        (e, other)
    } else {
        (other, e)
    };
    let r = expect_ok(
        s.remove_entry(&gone.job_run_identifier).await,
        "remove_entry",
    );
    assert_eq!(r.stopped_run, Some(c.run.id));
    expect_err(
        s.get_entry(&gone.job_run_identifier).await,
        ErrorKind::NotFound,
        "removed",
    );
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_eq!(run.status, RunStatus::Done);
    assert_eq!(run.result, Some(RunResult::Failed));
    assert_eq!(run.reason.as_deref(), Some("Removed"));
    assert!(run.ended_at.is_some());
    assert_eq!(
        expect_ok(s.get_entry(&kept.job_run_identifier).await, "other"),
        kept
    );
    let late = expect_ok(
        s.finalize(finalize_request(
            c.run.id,
            Outcome::failed(FailureKind::Error, "late"),
        ))
        .await,
        "late",
    );
    assert!(!late.won);
    assert_eq!(expect_ok(s.get_run(c.run.id).await, "run"), run);
    assert_eq!(counts(s).await, (1, 1));
}

/// Claims exactly one run of `t`.
async fn claim_one_of(
    s: &dyn JobStore,
    node: &bildad_core::NodeRef,
    t: &bildad_core::JobTemplate,
) -> bildad_core::ClaimedRun {
    let mut got = expect_ok(
        s.claim(claim_request(node, &[&t.job_type], 1)).await,
        "claim",
    );
    assert_eq!(got.len(), 1);
    got.remove(0)
}

/// Remove of an available entry just deletes it; no run is touched.
pub async fn remove_available_entry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 3).await;
    // One failed run in the history, entry back to AVAILABLE.
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Error, "e")),
    )
    .await;
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    let r = expect_ok(s.remove_entry(&e.job_run_identifier).await, "remove");
    assert_eq!(r.stopped_run, None);
    expect_err(
        s.get_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "removed",
    );
    assert_eq!(expect_ok(s.get_run(c.run.id).await, "run"), run);
    assert_eq!(counts(s).await, (0, 1));
}

/// An operator's stop and the job's own success race: exactly one ends the run, and
/// the entry matches the winner.
pub async fn stop_races_finalize(store: Arc<dyn JobStore>) {
    let t = template().create(&*store).await;
    let node = live_node(&*store, "conf-node").await;
    for _ in 0..10 {
        let e = enqueue_with_retries(&*store, &t, 3).await;
        let c = claim_one(&*store, &node, &t, &e.job_run_identifier).await;
        let (s1, s2) = (store.clone(), store.clone());
        let id = e.job_run_identifier.clone();
        let stop = tokio::spawn(async move { retry_transient(|| s1.stop_entry(&id)).await });
        let req = finalize_request(c.run.id, Outcome::succeeded(None));
        let done = tokio::spawn(async move { retry_transient(|| s2.finalize(req.clone())).await });
        let (stop, done) = (stop.await.expect("task"), done.await.expect("task"));
        let done = expect_ok(done, "finalize");
        let run = expect_ok(store.get_run(c.run.id).await, "run");
        match stop {
            Ok(r) => {
                assert!(!done.won, "both stop and finalize won");
                assert_eq!(r.run_id, c.run.id);
                assert_eq!(run.reason.as_deref(), Some("Stopped"));
                let entry = expect_ok(store.get_entry(&e.job_run_identifier).await, "entry");
                assert_eq!(entry.status, EntryStatus::Available);
                expect_ok(store.remove_entry(&e.job_run_identifier).await, "cleanup");
            }
            Err(x) => {
                assert!(
                    matches!(x.kind(), ErrorKind::NotFound | ErrorKind::Conflict),
                    "{x:?}"
                );
                assert!(done.won, "neither stop nor finalize won");
                assert_eq!(run.result, Some(RunResult::Succeeded));
                expect_err(
                    store.get_entry(&e.job_run_identifier).await,
                    ErrorKind::NotFound,
                    "deleted",
                );
            }
        }
    }
}

/// `mark_killed` appends ` (killed)` to a run ended by the system or an operator
/// (`Stopped`, `Timeout`, ...), once; a running run, a success, a job's own failure and
/// an unknown run are left alone.
pub async fn mark_killed_extends_only_hard_kill_reasons(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let reason = async |id| expect_ok(s.get_run(id).await, "run").reason;

    let stopped = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &stopped.job_run_identifier).await;
    assert!(!expect_ok(s.mark_killed(c.run.id).await, "mark running"));
    assert_eq!(reason(c.run.id).await, None, "a running run is left alone");
    expect_ok(s.stop_entry(&stopped.job_run_identifier).await, "stop");
    assert!(expect_ok(s.mark_killed(c.run.id).await, "mark stopped"));
    assert_eq!(reason(c.run.id).await.as_deref(), Some("Stopped (killed)"));
    assert!(!expect_ok(s.mark_killed(c.run.id).await, "mark twice"));
    assert_eq!(reason(c.run.id).await.as_deref(), Some("Stopped (killed)"));
    expect_ok(s.remove_entry(&stopped.job_run_identifier).await, "remove");

    let timed_out = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &timed_out.job_run_identifier).await;
    finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::standard(FailureKind::Timeout)),
    )
    .await;
    assert!(expect_ok(s.mark_killed(c.run.id).await, "mark timeout"));
    assert_eq!(reason(c.run.id).await.as_deref(), Some("Timeout (killed)"));

    let job_error = enqueue_with_retries(s, &t, 0).await;
    let c2 = claim_one(s, &node, &t, &job_error.job_run_identifier).await;
    finalize_and_win(
        s,
        finalize_request(c2.run.id, Outcome::failed(FailureKind::Error, "disk full")),
    )
    .await;
    assert!(!expect_ok(s.mark_killed(c2.run.id).await, "mark job error"));
    assert_eq!(reason(c2.run.id).await.as_deref(), Some("disk full"));

    let ok = enqueue_with_retries(s, &t, 0).await;
    let c3 = claim_one(s, &node, &t, &ok.job_run_identifier).await;
    finish_successfully(s, c3.run.id).await;
    assert!(!expect_ok(s.mark_killed(c3.run.id).await, "mark success"));
    assert_eq!(reason(c3.run.id).await, None);

    assert!(!expect_ok(
        s.mark_killed(c3.run.id + 1000).await,
        "mark unknown"
    ));
}
