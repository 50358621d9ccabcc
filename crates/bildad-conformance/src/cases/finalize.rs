//! Finish (SPEC §2.4): the one conditional step that ends a run.

use crate::support::*;
use bildad_core::{
    Backoff, EntryFate, EntryStatus, ErrorKind, FailureKind, Finalize, JobRun, JobStore,
    MAX_REASON_BYTES, NewEntry, Outcome, QueueEntry, RunResult, RunStatus,
};
use serde_json::json;
use std::sync::Arc;

/// Checks a finished run: `DONE`, the result, the reason, `ended_at` in the window.
#[track_caller]
fn assert_done(run: &JobRun, result: RunResult, reason: Option<&str>) {
    assert_eq!(run.status, RunStatus::Done, "{run:?}");
    assert_eq!(run.result, Some(result), "{run:?}");
    assert_eq!(run.reason.as_deref(), reason, "{run:?}");
    let ended = run.ended_at.expect("ended_at set");
    assert!(ended >= run.started_at, "{run:?}");
}

/// Success deletes the entry; the run is `DONE`/`SUCCEEDED` with the output.
pub async fn finalize_success_deletes_entry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 3).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let output = json!({"sent": 3, "ids": ["a", "b"]});
    let before = now(s).await;
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::succeeded(Some(output.clone()))),
    )
    .await;
    let after = now(s).await;
    assert_eq!(r.entry, EntryFate::Deleted);
    expect_err(
        s.get_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "entry deleted",
    );
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_done(&run, RunResult::Succeeded, None);
    assert_eq!(run.output, Some(output));
    assert_between(run.ended_at.unwrap(), before, after, "ended_at");
    assert_eq!(run.started_at, c.run.started_at);
    assert_eq!(run.context, c.run.context);

    // A success without output.
    let e2 = enqueue_with_retries(s, &t, 3).await;
    let c2 = claim_one(s, &node, &t, &e2.job_run_identifier).await;
    finish_successfully(s, c2.run.id).await;
    assert_eq!(expect_ok(s.get_run(c2.run.id).await, "run").output, None);
    assert_eq!(counts(s).await, (0, 2));
}

/// A failure with retries left requeues the entry at `now + backoff(retry, run_id)`.
pub async fn finalize_failure_requeues_with_backoff(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 2).await;
    let backoff = Backoff::from_secs(60);
    for retry in 0..2 {
        let c = claim_one_ignoring_run_at(s, &node, &t, &e.job_run_identifier).await;
        assert_eq!(c.run.retry, retry);
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
        let delay = chrono::Duration::from_std(backoff.delay(retry, c.run.id)).unwrap();
        let EntryFate::Requeued { run_at } = r.entry else {
            panic!("expected a requeue, got {r:?}");
        };
        assert_between(run_at, before + delay, after + delay, "requeued run_at");
        let run = expect_ok(s.get_run(c.run.id).await, "run");
        assert_done(&run, RunResult::Failed, Some("smtp down"));
        assert_close(
            run_at,
            run.ended_at.unwrap() + delay,
            chrono::Duration::milliseconds(1500),
            "run_at = ended_at + Backoff::delay(retry, run_id)",
        );
        let entry = expect_ok(s.get_entry(&e.job_run_identifier).await, "entry");
        assert_eq!(entry.status, EntryStatus::Available);
        assert_eq!(entry.current_run_id, None);
        assert_eq!(entry.run_at, run_at);
        assert_eq!(entry.attempts, retry + 1);
        // Backing off: not claimable, counted as scheduled.
        assert!(
            expect_ok(
                s.claim(claim_request(&node, &[&t.job_type], 10)).await,
                "claim"
            )
            .is_empty()
        );
        assert_eq!(expect_ok(s.stats().await, "stats").scheduled, 1);
    }
}

/// A failure of the last allowed attempt deletes the entry.
pub async fn finalize_failure_exhausted_deletes(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 1).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Panic, "p")),
    )
    .await;
    assert!(matches!(r.entry, EntryFate::Requeued { .. }), "{r:?}");
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(c.run.retry, 1);
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Timeout, "Timeout")),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted);
    expect_err(
        s.get_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "deleted",
    );
    assert_done(
        &expect_ok(s.get_run(c.run.id).await, "run"),
        RunResult::Failed,
        Some("Timeout"),
    );
}

/// `max_retries = 0`: the first failure deletes the entry.
pub async fn finalize_zero_retries_deletes(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(c.max_retries, 0);
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::failed(FailureKind::Error, "once")),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted);
    expect_err(
        s.get_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "deleted",
    );
    assert_eq!(counts(s).await, (0, 1));
}

/// Claim and fail until exhausted: runs with retry `0..=max_retries`, all `FAILED`.
pub async fn finalize_retry_chain_until_exhausted(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 4).await;
    let kinds = [
        FailureKind::Error,
        FailureKind::Panic,
        FailureKind::Timeout,
        FailureKind::Expired,
        FailureKind::Shutdown,
    ];
    for (retry, kind) in kinds.iter().enumerate() {
        let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
        assert_eq!(c.run.retry, retry as i32);
        let r = finalize_and_win(s, finalize_request(c.run.id, Outcome::standard(*kind))).await;
        if retry < 4 {
            assert!(matches!(r.entry, EntryFate::Requeued { .. }), "{r:?}");
        } else {
            assert_eq!(r.entry, EntryFate::Deleted);
        }
    }
    expect_err(
        s.get_entry(&e.job_run_identifier).await,
        ErrorKind::NotFound,
        "exhausted",
    );
    let filter = bildad_core::RunFilter {
        identifier: Some(e.job_run_identifier.clone()),
        ..Default::default()
    };
    let runs = all_runs(s, filter).await;
    let mut retries: Vec<_> = runs.iter().map(|r| r.retry).collect();
    retries.sort();
    assert_eq!(retries, [0, 1, 2, 3, 4]);
    assert!(
        runs.iter()
            .all(|r| r.status == RunStatus::Done && r.result == Some(RunResult::Failed))
    );
    let st = expect_ok(s.stats().await, "stats");
    assert_eq!(
        (st.failed, st.succeeded, st.available, st.running),
        (5, 0, 0, 0)
    );
}

/// `Stopped` requeues at once, whatever the retries (even with none left).
pub async fn finalize_stopped_requeues_at_once(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let before = now(s).await;
    let r = finalize_and_win(
        s,
        Finalize {
            run_id: c.run.id,
            outcome: Outcome::standard(FailureKind::Stopped),
            backoff: Backoff::from_secs(300),
        },
    )
    .await;
    let after = now(s).await;
    let EntryFate::Requeued { run_at } = r.entry else {
        panic!("expected a requeue, got {r:?}");
    };
    assert_between(run_at, before, after, "requeued now");
    let entry = expect_ok(s.get_entry(&e.job_run_identifier).await, "entry");
    assert_eq!(entry.status, EntryStatus::Available);
    assert_eq!(entry.current_run_id, None);
    assert_done(
        &expect_ok(s.get_run(c.run.id).await, "run"),
        RunResult::Failed,
        Some("Stopped"),
    );
    let c2 = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(c2.run.retry, 1);
}

/// `Invalid`, `Permanent` and `Removed` delete the entry even with retries left.
pub async fn finalize_delete_kinds(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    for kind in [
        FailureKind::Invalid,
        FailureKind::Permanent,
        FailureKind::Removed,
    ] {
        let e = enqueue_with_retries(s, &t, 5).await;
        let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
        let r = finalize_and_win(
            s,
            finalize_request(c.run.id, Outcome::failed(kind, "no retry")),
        )
        .await;
        assert_eq!(r.entry, EntryFate::Deleted, "{kind:?}");
        expect_err(
            s.get_entry(&e.job_run_identifier).await,
            ErrorKind::NotFound,
            "deleted",
        );
        assert_done(
            &expect_ok(s.get_run(c.run.id).await, "run"),
            RunResult::Failed,
            Some("no retry"),
        );
    }
    assert_eq!(counts(s).await, (0, 3));
}

/// The stored reason is capped at 4 KiB on a char boundary, by the store itself.
pub async fn finalize_reason_capped(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    for long in ["é".repeat(5000), "x".repeat(10_000)] {
        let e = enqueue_with_retries(s, &t, 0).await;
        let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
        // Built by hand: Outcome::failed would cap before the store sees it.
        let outcome = Outcome::Failed {
            kind: FailureKind::Error,
            reason: long.clone(),
        };
        finalize_and_win(s, finalize_request(c.run.id, outcome)).await;
        let reason = expect_ok(s.get_run(c.run.id).await, "run")
            .reason
            .expect("reason");
        assert!(
            reason.len() <= MAX_REASON_BYTES && reason.len() >= MAX_REASON_BYTES - 3,
            "reason of {} bytes",
            reason.len()
        );
        assert!(long.starts_with(&reason));
    }
}

/// Eight finalizes of one run at once: exactly one wins; the losers change nothing, and
/// a later finalize changes nothing either.
pub async fn finalize_race_exactly_one_wins(store: Arc<dyn JobStore>) {
    let t = template().create(&*store).await;
    let node = live_node(&*store, "conf-node").await;
    for round in 0..5 {
        let e = enqueue_with_retries(&*store, &t, 3).await;
        let c = claim_one(&*store, &node, &t, &e.job_run_identifier).await;
        let outcomes = [
            Outcome::succeeded(Some(json!({"by": 0}))),
            Outcome::failed(FailureKind::Error, "error 1"),
            Outcome::standard(FailureKind::Timeout),
            Outcome::standard(FailureKind::Expired),
            Outcome::standard(FailureKind::Stopped),
            Outcome::standard(FailureKind::Removed),
            Outcome::succeeded(Some(json!({"by": 6}))),
            Outcome::failed(FailureKind::Panic, "panic 7"),
        ];
        let mut tasks = Vec::new();
        for (i, outcome) in outcomes.iter().enumerate() {
            let store = store.clone();
            let req = finalize_request(c.run.id, outcome.clone());
            tasks.push(tokio::spawn(async move {
                (i, retry_transient(|| store.finalize(req.clone())).await)
            }));
        }
        let mut winners = Vec::new();
        for r in futures::future::join_all(tasks).await {
            let (i, res) = r.expect("task");
            let res = expect_ok(res, "finalize");
            assert_eq!(res.run_id, c.run.id);
            if res.won {
                winners.push((i, res));
            } else {
                assert_eq!(res.entry, EntryFate::Untouched, "a loser touches nothing");
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one winner: {winners:?}"
        );
        let (i, res) = &winners[0];
        let run = expect_ok(store.get_run(c.run.id).await, "run");
        let entry = store.get_entry(&e.job_run_identifier).await;
        match &outcomes[*i] {
            Outcome::Succeeded { output } => {
                assert_done(&run, RunResult::Succeeded, None);
                assert_eq!(&run.output, output);
                assert_eq!(res.entry, EntryFate::Deleted);
                expect_err(entry, ErrorKind::NotFound, "deleted by the winner");
            }
            Outcome::Failed { kind, reason } => {
                assert_done(&run, RunResult::Failed, Some(reason));
                assert_eq!(run.output, None);
                if *kind == FailureKind::Removed {
                    assert_eq!(res.entry, EntryFate::Deleted);
                    expect_err(entry, ErrorKind::NotFound, "deleted by the winner");
                } else {
                    let entry = expect_ok(entry, "requeued by the winner");
                    assert_eq!(entry.status, EntryStatus::Available);
                    assert_eq!(entry.current_run_id, None);
                    assert_eq!(
                        res.entry,
                        EntryFate::Requeued {
                            run_at: entry.run_at
                        }
                    );
                }
            }
        }
        // A late finalize of every kind changes nothing.
        let entry_before = store.get_entry(&e.job_run_identifier).await.ok();
        for outcome in outcomes {
            let r = expect_ok(
                store.finalize(finalize_request(c.run.id, outcome)).await,
                "late finalize",
            );
            assert!(!r.won);
            assert_eq!(r.entry, EntryFate::Untouched);
        }
        assert_eq!(expect_ok(store.get_run(c.run.id).await, "run"), run);
        assert_eq!(
            store.get_entry(&e.job_run_identifier).await.ok(),
            entry_before
        );
        if entry_before.is_some() {
            expect_ok(store.remove_entry(&e.job_run_identifier).await, "cleanup");
        }
    }
}

/// A job that succeeds after the killer recorded `Timeout` neither deletes nor
/// resurrects its entry, even once the entry runs again.
pub async fn finalize_late_success_after_timeout_changes_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 2).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::standard(FailureKind::Timeout)),
    )
    .await;
    assert!(matches!(r.entry, EntryFate::Requeued { .. }));
    let requeued: QueueEntry = expect_ok(s.get_entry(&e.job_run_identifier).await, "entry");
    let timed_out = expect_ok(s.get_run(c.run.id).await, "run");
    assert_done(&timed_out, RunResult::Failed, Some("Timeout"));

    let late = expect_ok(
        s.finalize(finalize_request(
            c.run.id,
            Outcome::succeeded(Some(json!(1))),
        ))
        .await,
        "late",
    );
    assert!(!late.won);
    assert_eq!(late.entry, EntryFate::Untouched);
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "entry"),
        requeued
    );
    assert_eq!(expect_ok(s.get_run(c.run.id).await, "run"), timed_out);

    // The retry runs; the old run's late success still touches neither the entry nor
    // the new run.
    let c2 = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let running = expect_ok(s.get_entry(&e.job_run_identifier).await, "entry");
    let late = expect_ok(
        s.finalize(finalize_request(c.run.id, Outcome::succeeded(None)))
            .await,
        "late",
    );
    assert!(!late.won);
    let late = expect_ok(
        s.finalize(finalize_request(
            c.run.id,
            Outcome::standard(FailureKind::Removed),
        ))
        .await,
        "late",
    );
    assert!(!late.won);
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "entry"),
        running
    );
    assert_eq!(expect_ok(s.get_run(c2.run.id).await, "new run"), c2.run);
    assert_eq!(expect_ok(s.get_run(c.run.id).await, "old run"), timed_out);
}

/// `finalize_many` decides each finalize as `finalize` would, results in order.
pub async fn finalize_many_in_order(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let news: Vec<_> = (0..3)
        .map(|i| NewEntry::new(t.code.clone(), json!({"i": i})).max_retries(1))
        .collect();
    expect_ok(s.enqueue_many(news).await, "enqueue_many");
    let claimed = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 10)).await,
        "claim",
    );
    assert_eq!(claimed.len(), 3);
    let (a, b, c) = (claimed[0].run.id, claimed[1].run.id, claimed[2].run.id);
    let res = expect_ok(
        s.finalize_many(vec![
            finalize_request(b, Outcome::failed(FailureKind::Error, "e")),
            finalize_request(a, Outcome::succeeded(None)),
            finalize_request(b, Outcome::succeeded(None)),
            finalize_request(c, Outcome::standard(FailureKind::Removed)),
        ])
        .await,
        "finalize_many",
    );
    let got: Vec<_> = res.iter().map(|r| (r.run_id, r.won)).collect();
    assert_eq!(got, [(b, true), (a, true), (b, false), (c, true)]);
    assert!(matches!(res[0].entry, EntryFate::Requeued { .. }));
    assert_eq!(res[1].entry, EntryFate::Deleted);
    assert_eq!(res[2].entry, EntryFate::Untouched);
    assert_eq!(res[3].entry, EntryFate::Deleted);
    assert_eq!(
        expect_ok(s.get_run(b).await, "b").result,
        Some(RunResult::Failed)
    );
    assert_eq!(counts(s).await, (1, 3));
}
