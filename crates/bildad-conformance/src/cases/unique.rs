//! Unique jobs (SPEC §8): an enqueue with `unique_for_seconds: N` writes nothing when an
//! entry of the same template with an equal context was enqueued in the last N seconds
//! (queued, running or finished), and answers with that entry's identifier. Racing
//! enqueues create exactly one entry.

use crate::support::*;
use bildad_core::{
    ErrorKind, JobStore, MAX_UNIQUE_FOR_SECONDS, NewEntry, QueueEntry, StoreError, StoreResult,
};
use serde_json::{Value, json};
use std::sync::Arc;

/// A unique entry of `code` with `context`, for `seconds`.
fn unique_entry(code: &str, context: Value, seconds: i32) -> NewEntry {
    NewEntry::new(code, context).unique_for_seconds(seconds)
}

/// Asserts that `r` is a duplicate of entry `index` of the request, naming `existing`.
#[track_caller]
fn assert_duplicate<T: std::fmt::Debug>(r: StoreResult<T>, index: usize, existing: &str) {
    match r {
        Err(StoreError::Duplicate {
            index: i,
            job_run_identifier,
        }) => {
            assert_eq!(i, index, "the duplicate's place in the request");
            assert_eq!(job_run_identifier, existing, "the existing entry");
        }
        other => panic!("expected a duplicate of {existing:?}, got {other:?}"),
    }
}

/// Within the window, an equal context (whatever its key order) is a duplicate naming
/// the first entry, and nothing is written; another context or another template is not.
pub async fn unique_duplicate_within_window_writes_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let other = template().create(s).await;
    let first = enqueue(s, unique_entry(&t.code, json!({"a": 1, "b": 2}), 3600)).await;
    let same: Value = serde_json::from_str(r#"{"b": 2, "a": 1}"#).unwrap();
    let r = s.enqueue(unique_entry(&t.code, same, 3600)).await;
    assert_duplicate(r, 0, &first.job_run_identifier);
    assert_eq!(counts(s).await, (1, 0), "the duplicate wrote nothing");

    enqueue(s, unique_entry(&t.code, json!({"a": 2, "b": 2}), 3600)).await;
    enqueue(s, unique_entry(&other.code, json!({"a": 1, "b": 2}), 3600)).await;
    // An enqueue that does not ask for uniqueness is never a duplicate.
    enqueue(s, NewEntry::new(t.code.clone(), json!({"a": 1, "b": 2}))).await;
    assert_eq!(counts(s).await, (4, 0));
}

/// A finished job still counts within the window: its key outlives its entry.
pub async fn unique_finished_job_still_counts(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue(s, unique_entry(&t.code, json!({"n": 1}), 3600)).await;
    let id = &e.job_run_identifier;
    let c = claim_one(s, &node, &t, id).await;
    let r = s
        .enqueue(unique_entry(&t.code, json!({"n": 1}), 3600))
        .await;
    assert_duplicate(r, 0, id);
    finish_successfully(s, c.run.id).await;
    expect_err(s.get_entry(id).await, ErrorKind::NotFound, "finished entry");
    let r = s
        .enqueue(unique_entry(&t.code, json!({"n": 1}), 3600))
        .await;
    assert_duplicate(r, 0, id);
    assert_eq!(counts(s).await, (0, 1));
}

/// Once the window (of the new enqueue) has passed, a new entry is created and takes
/// the key over; a longer window still sees the first.
pub async fn unique_after_the_window_creates_a_new_entry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let first = enqueue(s, unique_entry(&t.code, json!({"n": 1}), 1)).await;
    wait_past(s, first.inserted_at + chrono::Duration::seconds(1)).await;
    let r = s
        .enqueue(unique_entry(&t.code, json!({"n": 1}), 3600))
        .await;
    assert_duplicate(r, 0, &first.job_run_identifier);
    let second = enqueue(s, unique_entry(&t.code, json!({"n": 1}), 1)).await;
    assert_ne!(second.job_run_identifier, first.job_run_identifier);
    let r = s.enqueue(unique_entry(&t.code, json!({"n": 1}), 1)).await;
    assert_duplicate(r, 0, &second.job_run_identifier);
    assert_eq!(counts(s).await, (2, 0));
}

/// Eight enqueues of the same unique job at once create exactly one entry; every other
/// one is a duplicate naming it. Repeated, to give the race many chances.
pub async fn unique_racing_enqueues_create_one_entry(store: Arc<dyn JobStore>) {
    let t = template().create(&*store).await;
    for round in 0..10 {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (store, code) = (store.clone(), t.code.clone());
            tasks.push(tokio::spawn(async move {
                let new = unique_entry(&code, json!({"round": round}), 3600);
                retry_transient(|| store.enqueue(new.clone())).await
            }));
        }
        let mut won: Vec<QueueEntry> = Vec::new();
        let mut duplicates = Vec::new();
        for r in futures::future::join_all(tasks).await {
            match r.expect("task") {
                Ok(e) => won.push(e),
                Err(StoreError::Duplicate {
                    job_run_identifier, ..
                }) => duplicates.push(job_run_identifier),
                Err(e) => panic!("a racing unique enqueue failed: {e:?}"),
            }
        }
        assert_eq!(
            won.len(),
            1,
            "round {round}: exactly one enqueue wins: {won:?}"
        );
        assert!(
            duplicates.iter().all(|d| d == &won[0].job_run_identifier),
            "round {round}: every loser names the winner: {duplicates:?}"
        );
    }
    assert_eq!(counts(&*store).await, (10, 0));
}

/// A batch is all or nothing: a duplicate in it writes nothing (not even its fresh
/// unique entries' keys), and names its index; two entries of one batch with the same
/// key conflict.
pub async fn unique_batch_with_a_duplicate_writes_nothing(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let held = enqueue(s, unique_entry(&t.code, json!({"n": 0}), 3600)).await;
    let r = s
        .enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({"plain": true})),
            unique_entry(&t.code, json!({"n": 1}), 3600),
            unique_entry(&t.code, json!({"n": 0}), 3600),
        ])
        .await;
    assert_duplicate(r, 2, &held.job_run_identifier);
    assert_eq!(counts(s).await, (1, 0), "the batch wrote nothing");
    // The fresh key of the failed batch was not kept.
    enqueue(s, unique_entry(&t.code, json!({"n": 1}), 3600)).await;

    let e = expect_err(
        s.enqueue_many(vec![
            unique_entry(&t.code, json!({"n": 5}), 3600),
            unique_entry(&t.code, json!({"n": 5}), 60),
        ])
        .await,
        ErrorKind::Conflict,
        "the same unique job twice in one batch",
    );
    assert!(e.to_string().contains("entries 0 and 1"), "{e}");
    let got = expect_ok(
        s.enqueue_many(vec![
            unique_entry(&t.code, json!({"n": 5}), 3600),
            unique_entry(&t.code, json!({"n": 6}), 3600),
        ])
        .await,
        "a batch of fresh unique jobs",
    );
    assert_eq!(got.len(), 2);
    assert_eq!(counts(s).await, (4, 0));
}

/// An enqueue that fails for another reason (its identifier is taken) takes no key.
pub async fn unique_failed_enqueue_takes_no_key(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let taken = enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await;
    let new = unique_entry(&t.code, json!({"n": 1}), 3600).identifier(&taken.job_run_identifier);
    expect_err(
        s.enqueue(new).await,
        ErrorKind::Conflict,
        "taken identifier",
    );
    enqueue(s, unique_entry(&t.code, json!({"n": 1}), 3600)).await;
    assert_eq!(counts(s).await, (2, 0));
}

/// `unique_for_seconds` outside `1..=366 days` is invalid and writes nothing.
pub async fn unique_for_seconds_out_of_range_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    for seconds in [0, -5, MAX_UNIQUE_FOR_SECONDS + 1] {
        let e = expect_err(
            s.enqueue(unique_entry(&t.code, json!({}), seconds)).await,
            ErrorKind::Invalid,
            "window out of range",
        );
        assert_pointers(&e, &["/unique_for_seconds"]);
    }
    let e = expect_err(
        s.enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({})),
            unique_entry(&t.code, json!({}), 0),
        ])
        .await,
        ErrorKind::Invalid,
        "window out of range in a batch",
    );
    assert_pointers(&e, &["/1/unique_for_seconds"]);
    enqueue(s, unique_entry(&t.code, json!({}), MAX_UNIQUE_FOR_SECONDS)).await;
    assert_eq!(counts(s).await, (1, 0));
}

/// Pruning the history forgets the unique keys whose own window has passed: a longer
/// window no longer sees them.
pub async fn prune_removes_expired_unique_keys(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let first = enqueue(s, unique_entry(&t.code, json!({"n": 1}), 1)).await;
    let fresh = enqueue(s, unique_entry(&t.code, json!({"n": 2}), 3600)).await;
    wait_past(s, first.inserted_at + chrono::Duration::seconds(1)).await;
    let r = s
        .enqueue(unique_entry(&t.code, json!({"n": 1}), 3600))
        .await;
    assert_duplicate(r, 0, &first.job_run_identifier);
    expect_ok(s.prune_runs(now(s).await).await, "prune");
    enqueue(s, unique_entry(&t.code, json!({"n": 1}), 3600)).await;
    // A key within its own window is kept.
    let r = s
        .enqueue(unique_entry(&t.code, json!({"n": 2}), 3600))
        .await;
    assert_duplicate(r, 0, &fresh.job_run_identifier);
}
