//! An entry that runs again (a retry, a stop, a run that never started) is the same
//! entry: SPEC §2.4, §2.7 and §2 rule 11 (a store that moves a running entry into its run
//! re-inserts it, and must give it back its id and its place in line).

use crate::support::*;
use bildad_core::{EntryStatus, FailureKind, JobStore, NewEntry, Outcome, QueueEntry};
use serde_json::json;
use std::sync::Arc;

/// How a claimed run of the first of two entries ends, and whether it runs again.
async fn ends_then_runs_first_again(store: Arc<dyn JobStore>, end: &str) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let first = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({"k": 1})).max_retries(3),
    )
    .await;
    let c = claim_one(s, &node, &t, &first.job_run_identifier).await;
    let running = expect_ok(s.get_entry(&first.job_run_identifier).await, "running");
    assert_eq!(running.status, EntryStatus::Running);
    assert_eq!(running.id, first.id, "a running entry keeps its id");
    assert_eq!(running.inserted_at, first.inserted_at);
    assert_eq!(running.run_at, first.run_at);
    // Enqueued while the first runs: behind it in line once it is back.
    let second = enqueue(s, NewEntry::new(t.code.clone(), json!({"k": 2}))).await;
    match end {
        "retry" => {
            finalize_and_win(
                s,
                finalize_request(c.run.id, Outcome::failed(FailureKind::Error, "again")),
            )
            .await;
        }
        "stop" => {
            expect_ok(s.stop_entry(&first.job_run_identifier).await, "stop");
        }
        _ => {
            finalize_and_win(
                s,
                finalize_request(c.run.id, Outcome::standard(FailureKind::NotStarted)),
            )
            .await;
        }
    }
    let back: QueueEntry = expect_ok(s.get_entry(&first.job_run_identifier).await, "back");
    assert_eq!(back.status, EntryStatus::Available, "{end}");
    assert_eq!(back.id, first.id, "{end}: the same entry id");
    assert_eq!(
        back.inserted_at, first.inserted_at,
        "{end}: the same place in line"
    );
    assert_eq!(back.context, first.context, "{end}");
    assert_eq!(back.template, first.template, "{end}");
    assert_eq!(back.priority, first.priority, "{end}");
    assert_eq!(back.max_retries, first.max_retries, "{end}");
    assert_eq!(back.timeout_seconds, first.timeout_seconds, "{end}");
    assert_eq!(back.attempts, 1, "{end}");
    assert_eq!(back.current_run_id, None, "{end}");
    assert_eq!(
        expect_ok(
            s.entry_position(&first.job_run_identifier).await,
            "position"
        ),
        Some(1),
        "{end}"
    );
    let order: Vec<String> = all_entries(s, None)
        .await
        .into_iter()
        .map(|e| e.job_run_identifier)
        .collect();
    assert_eq!(
        order,
        [
            first.job_run_identifier.clone(),
            second.job_run_identifier.clone()
        ],
        "{end}"
    );
    let again = claim_one_of_two(s, &node, &t.job_type).await;
    assert_eq!(
        again, first.job_run_identifier,
        "{end}: it runs first again"
    );
}

/// Claims one entry (limit 1) and returns its identifier.
async fn claim_one_of_two(s: &dyn JobStore, node: &bildad_core::NodeRef, job_type: &str) -> String {
    let got = expect_ok(s.claim(claim_request(node, &[job_type], 1)).await, "claim");
    assert_eq!(got.len(), 1, "{got:#?}");
    got[0].run.job_run_identifier.clone()
}

/// A retried entry is the same entry: id, `inserted_at` (its place in line), context,
/// fields; entries enqueued while it ran stay behind it.
pub async fn retried_entry_keeps_its_id_and_place_in_line(store: Arc<dyn JobStore>) {
    ends_then_runs_first_again(store, "retry").await;
}

/// A stopped entry is the same entry, and keeps its place in line.
pub async fn stopped_entry_keeps_its_id_and_place_in_line(store: Arc<dyn JobStore>) {
    ends_then_runs_first_again(store, "stop").await;
}

/// An entry whose run never started is the same entry, and keeps its place in line.
pub async fn not_started_entry_keeps_its_id_and_place_in_line(store: Arc<dyn JobStore>) {
    ends_then_runs_first_again(store, "not started").await;
}
