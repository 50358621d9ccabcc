//! Fixtures and assertions shared by the cases.

use bildad_core::{
    ClaimRequest, ClaimedRun, EntryStatus, ErrorKind, Finalize, FinalizeResult, JobRun, JobStore,
    JobTemplate, NewEntry, NewTemplate, NodeRef, Outcome, PageRequest, QueueEntry, RunFilter,
    StoreError, StoreResult, Timestamp,
};
use serde_json::{Value, json};
use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How far apart two readings of the store clock may be and still count as "now"
/// (stores may keep timestamps at millisecond or coarser precision).
pub(crate) const CLOCK_TOLERANCE: chrono::Duration = chrono::Duration::seconds(2);

/// The longest a poll for something that depends on time passing may take.
pub(crate) const POLL_DEADLINE: Duration = Duration::from_secs(15);

pub(crate) use crate::fixtures::{template, unique};

/// A schema that accepts any object.
pub(crate) fn any_object() -> Value {
    json!({"type": "object"})
}

/// Creates a template and checks the echo.
pub(crate) async fn create_template(store: &dyn JobStore, new: NewTemplate) -> JobTemplate {
    let t = expect_ok(store.create_template(new.clone()).await, "create_template");
    assert_eq!(t.code, new.code);
    t
}

/// Enqueues `new`, which must succeed.
pub(crate) async fn enqueue(store: &dyn JobStore, new: NewEntry) -> QueueEntry {
    expect_ok(store.enqueue(new).await, "enqueue")
}

/// Enqueues an entry of `t` with context `{}` and `max_retries`.
pub(crate) async fn enqueue_with_retries(
    store: &dyn JobStore,
    t: &JobTemplate,
    max_retries: i32,
) -> QueueEntry {
    enqueue(
        store,
        NewEntry::new(t.code.clone(), json!({})).max_retries(max_retries),
    )
    .await
}

/// A node with a fresh instance id, heartbeated once (so no case depends on how a store
/// treats runs of a node it has never heard of).
pub(crate) async fn live_node(store: &dyn JobStore, name: &str) -> NodeRef {
    let node = NodeRef::new(name);
    expect_ok(store.heartbeat(&node).await, "heartbeat");
    node
}

/// A claim of up to `limit` entries of `job_types`, with a 600 s expiry grace.
pub(crate) fn claim_request(node: &NodeRef, job_types: &[&str], limit: u32) -> ClaimRequest {
    ClaimRequest {
        node: node.clone(),
        job_types: job_types.iter().map(|s| s.to_string()).collect(),
        limit,
        expiry_grace: Duration::from_secs(600),
        only_identifier: None,
        queues: None,
        queue_caps: Default::default(),
    }
}

/// Claims and expects exactly one run, of `identifier`.
pub(crate) async fn claim_one(
    store: &dyn JobStore,
    node: &NodeRef,
    t: &JobTemplate,
    identifier: &str,
) -> ClaimedRun {
    let mut got = expect_ok(
        store.claim(claim_request(node, &[&t.job_type], 10)).await,
        "claim",
    );
    assert_eq!(got.len(), 1, "expected one claimed run, got {got:#?}");
    let c = got.remove(0);
    assert_eq!(c.run.job_run_identifier, identifier);
    c
}

/// Claims the entry with `only_identifier` (which ignores `run_at`).
pub(crate) async fn claim_one_ignoring_run_at(
    s: &dyn JobStore,
    node: &NodeRef,
    t: &JobTemplate,
    identifier: &str,
) -> ClaimedRun {
    let mut req = claim_request(node, &[&t.job_type], 10);
    req.only_identifier = Some(identifier.to_string());
    let mut got = expect_ok(s.claim(req).await, "claim only_identifier");
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

/// A finalize of `run_id` with `outcome` and an immediate backoff.
pub(crate) fn finalize_request(run_id: i64, outcome: Outcome) -> Finalize {
    Finalize {
        run_id,
        outcome,
        backoff: bildad_core::Backoff::immediate(),
    }
}

/// Finalizes, which must succeed and win.
pub(crate) async fn finalize_and_win(store: &dyn JobStore, req: Finalize) -> FinalizeResult {
    let run_id = req.run_id;
    let r = expect_ok(store.finalize(req).await, "finalize");
    assert_eq!(r.run_id, run_id);
    assert!(r.won, "finalize of run {run_id} should win: {r:?}");
    r
}

/// Finalizes `run_id` as succeeded without output, which must win.
pub(crate) async fn finish_successfully(store: &dyn JobStore, run_id: i64) -> FinalizeResult {
    finalize_and_win(store, finalize_request(run_id, Outcome::succeeded(None))).await
}

/// Unwraps a store result, naming the call on failure.
#[track_caller]
pub(crate) fn expect_ok<T>(r: StoreResult<T>, what: &str) -> T {
    match r {
        Ok(x) => x,
        Err(e) => panic!("{what} failed: {e:?}"),
    }
}

/// Expects an error of `kind` and returns it.
#[track_caller]
pub(crate) fn expect_err<T: Debug>(r: StoreResult<T>, kind: ErrorKind, what: &str) -> StoreError {
    match r {
        Ok(x) => panic!("{what}: expected {kind:?}, got Ok({x:?})"),
        Err(e) => {
            assert_eq!(e.kind(), kind, "{what}: expected {kind:?}, got {e:?}");
            e
        }
    }
}

/// The pointers of an `Invalid` error.
pub(crate) fn pointers(e: &StoreError) -> Vec<String> {
    e.violations().iter().map(|v| v.pointer.clone()).collect()
}

/// Asserts that every pointer in `want` is among the error's violations (exactly, or as
/// a prefix when it ends in `/`).
#[track_caller]
pub(crate) fn assert_pointers(e: &StoreError, want: &[&str]) {
    let got = pointers(e);
    for w in want {
        let found = got.iter().any(|g| g == w);
        assert!(found, "violation at {w} missing in {got:?} ({e})");
    }
}

/// A page request that must be valid.
pub(crate) fn page(page: u32, limit: u32) -> PageRequest {
    PageRequest::new(page, limit).expect("valid page request")
}

/// Every entry, optionally of one status, in the store's run order.
pub(crate) async fn all_entries(
    store: &dyn JobStore,
    status: Option<EntryStatus>,
) -> Vec<QueueEntry> {
    let mut out = Vec::new();
    for p in 0.. {
        let pg = expect_ok(
            store.list_entries(status, page(p, 500)).await,
            "list_entries",
        );
        let n = pg.items.len();
        out.extend(pg.items);
        if n < 500 {
            assert_eq!(pg.total, out.len() as u64, "list_entries total");
            break;
        }
    }
    out
}

/// Every run matching `filter`, newest first.
pub(crate) async fn all_runs(store: &dyn JobStore, filter: RunFilter) -> Vec<JobRun> {
    let mut out = Vec::new();
    for p in 0.. {
        let pg = expect_ok(
            store.list_runs(filter.clone(), page(p, 500)).await,
            "list_runs",
        );
        let n = pg.items.len();
        out.extend(pg.items);
        if n < 500 {
            assert_eq!(pg.total, out.len() as u64, "list_runs total");
            break;
        }
    }
    out
}

/// The store clock.
pub(crate) async fn now(store: &dyn JobStore) -> Timestamp {
    expect_ok(store.now().await, "now")
}

/// Asserts `before - tolerance <= t <= after + tolerance`.
#[track_caller]
pub(crate) fn assert_between(t: Timestamp, before: Timestamp, after: Timestamp, what: &str) {
    assert!(
        t >= before - CLOCK_TOLERANCE && t <= after + CLOCK_TOLERANCE,
        "{what}: {t} is not between {before} and {after}"
    );
}

/// Asserts `|a - b| <= tolerance`.
#[track_caller]
pub(crate) fn assert_close(a: Timestamp, b: Timestamp, tolerance: chrono::Duration, what: &str) {
    let d = (a - b).abs();
    assert!(d <= tolerance, "{what}: {a} and {b} differ by {d}");
}

/// Polls `f` until it returns `Some`, failing after [`POLL_DEADLINE`]. For conditions
/// that need store time to pass; never a synchronisation point between tasks.
pub(crate) async fn poll<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(x) = f().await {
            return x;
        }
        assert!(
            start.elapsed() < POLL_DEADLINE,
            "timed out after {POLL_DEADLINE:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the store clock is strictly past `t`.
pub(crate) async fn wait_past(store: &dyn JobStore, t: Timestamp) {
    poll("the store clock to pass a timestamp", || async move {
        (now(store).await > t).then_some(())
    })
    .await
}

/// Retries a call while it fails with a transient error (`Unavailable`), for calls made
/// under heavy contention; any other result is returned.
pub(crate) async fn retry_transient<T, F, Fut>(mut f: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let start = Instant::now();
    loop {
        match f().await {
            Err(e) if e.is_transient() && start.elapsed() < POLL_DEADLINE => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            other => return other,
        }
    }
}

/// The number of entries and runs in the store.
pub(crate) async fn counts(store: &dyn JobStore) -> (u64, u64) {
    let e = expect_ok(store.list_entries(None, page(0, 1)).await, "list_entries").total;
    let r = expect_ok(
        store.list_runs(RunFilter::default(), page(0, 1)).await,
        "list_runs",
    )
    .total;
    (e, r)
}
