//! This node's metrics, through the [`metrics`] facade (docs/OBSERVABILITY.md lists every
//! one with its labels). Nothing is recorded until the application, or `bildad serve`
//! (through `bildad-http`'s Prometheus endpoint), installs a recorder: without one every
//! call here is a no-op.
//!
//! The engine, the killer and the executor call the small functions of this module at
//! their few points of interest; the names, the labels and the mapping of a run's end to
//! its labels live here only. The cluster's gauges (queue depths) are not here: they come
//! from the database (`JobStore::queue_depths`), read by the metrics endpoint.

use bildad_core::{FailureKind, FinalizeResult, JobExecutor, JobRun, Outcome, RunRef, StoreError};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use std::future::Future;
use std::time::Duration;

/// Counter: runs this node started, by `queue`.
pub const RUNS_STARTED: &str = "bildad_runs_started_total";
/// Counter: runs this node ended, by `queue`, `result` and `reason` (see [`reason_kind`]).
pub const RUNS_FINISHED: &str = "bildad_runs_finished_total";
/// Histogram (seconds): how long a job ran on this node, by `queue` and `result`.
pub const RUN_DURATION: &str = "bildad_run_duration_seconds";
/// Histogram (seconds): from an entry's `run_at` to its run's start, by `queue`.
pub const PICKUP_LATENCY: &str = "bildad_pickup_latency_seconds";
/// Counter: engine passes on this node.
pub const ENGINE_PASSES: &str = "bildad_engine_passes_total";
/// Counter: runs this node's engine claimed.
pub const ENGINE_CLAIMS: &str = "bildad_engine_claimed_total";
/// Counter: this node's killer ticks.
pub const KILLER_TICKS: &str = "bildad_killer_ticks_total";
/// Counter: runs this node's killer ended past their timeout.
pub const KILLER_KILLS: &str = "bildad_killer_kills_total";
/// Gauge: jobs running on this node.
pub const NODE_RUNNING: &str = "bildad_node_running_jobs";
/// Gauge: this node's free slots.
pub const NODE_FREE_SLOTS: &str = "bildad_node_free_slots";
/// Counter: store calls of this node's engine, killer and finalizer that failed, by
/// `operation` and `kind` (`not_found`, `conflict`, `invalid`, `unavailable`, `database`).
pub const STORE_ERRORS: &str = "bildad_store_errors_total";

/// The buckets (seconds) of the duration histograms: 5 ms to 1 hour.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Gives the installed recorder every metric's help text. Call it once after installing
/// a recorder of your own (`bildad-http` calls it when it installs its own).
pub fn describe() {
    describe_counter!(RUNS_STARTED, "Runs this node started.");
    describe_counter!(RUNS_FINISHED, "Runs this node ended, by result and reason.");
    describe_histogram!(
        RUN_DURATION,
        metrics::Unit::Seconds,
        "How long jobs ran on this node."
    );
    describe_histogram!(
        PICKUP_LATENCY,
        metrics::Unit::Seconds,
        "From an entry's run_at to its run's start."
    );
    describe_counter!(ENGINE_PASSES, "Engine passes on this node.");
    describe_counter!(ENGINE_CLAIMS, "Runs this node's engine claimed.");
    describe_counter!(KILLER_TICKS, "Killer ticks on this node.");
    describe_counter!(
        KILLER_KILLS,
        "Runs this node's killer ended past their timeout."
    );
    describe_gauge!(NODE_RUNNING, "Jobs running on this node.");
    describe_gauge!(NODE_FREE_SLOTS, "Free job slots on this node.");
    describe_counter!(
        STORE_ERRORS,
        "Failed store calls, by operation and error kind."
    );
}

/// The `reason` label of a failed run's kind. The one place a kind gets its label.
pub fn reason_kind(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::Error => "error",
        FailureKind::Panic => "panic",
        FailureKind::Timeout => "timeout",
        FailureKind::Expired => "expired",
        FailureKind::Shutdown => "shutdown",
        FailureKind::Stopped => "stopped",
        FailureKind::Removed => "removed",
        FailureKind::Invalid => "invalid",
        FailureKind::Permanent => "permanent",
        FailureKind::NotStarted => "not_started",
        FailureKind::Snoozed(_) => "snoozed",
        FailureKind::Cancelled => "cancelled",
    }
}

/// The queue label of a run.
pub(crate) fn queue_of(run: &JobRun) -> String {
    run.queue.clone()
}

/// The queue label of a run known by reference.
pub(crate) fn queue_of_ref(run: &RunRef) -> String {
    run.queue.clone()
}

/// A run started on this node: counted, with its pickup latency (`entry_run_at` is its
/// [`bildad_core::ClaimedRun::entry_run_at`]).
pub(crate) fn run_started(run: &JobRun, entry_run_at: bildad_core::Timestamp) {
    let queue = queue_of(run);
    let latency = (run.started_at - entry_run_at).to_std().unwrap_or_default();
    counter!(RUNS_STARTED, "queue" => queue.clone()).increment(1);
    histogram!(PICKUP_LATENCY, "queue" => queue).record(latency.as_secs_f64());
}

/// This node ended a run with `outcome` (its finalize won).
pub fn run_finished(queue: &str, outcome: &Outcome) {
    let (result, reason) = match outcome {
        Outcome::Succeeded { .. } => ("succeeded", "success"),
        Outcome::Failed { kind, .. } => ("failed", reason_kind(*kind)),
    };
    counter!(
        RUNS_FINISHED,
        "queue" => queue.to_string(),
        "result" => result,
        "reason" => reason
    )
    .increment(1);
}

/// A job returned on this node after running for `ran`.
pub(crate) fn run_duration(queue: &str, outcome: &Outcome, ran: Duration) {
    let result = match outcome {
        Outcome::Succeeded { .. } => "succeeded",
        Outcome::Failed { .. } => "failed",
    };
    histogram!(RUN_DURATION, "queue" => queue.to_string(), "result" => result)
        .record(ran.as_secs_f64());
}

/// Runs the engine pass `pass`, counting it (and its error) and updating this node's
/// slot gauges after it.
pub(crate) async fn engine_pass<T>(
    executor: &dyn JobExecutor,
    pass: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let result = pass.await;
    counter!(ENGINE_PASSES).increment(1);
    if let Err(e) = &result {
        store_error("engine_pass", e);
    }
    node_slots(executor);
    result
}

/// Run `run` failed with `kind` and was finalized with `result`: counted when it won.
pub(crate) fn failed_if_won(
    run: &JobRun,
    kind: FailureKind,
    result: &Result<FinalizeResult, StoreError>,
) {
    if result.as_ref().is_ok_and(|r| r.won) {
        run_finished(&queue_of(run), &Outcome::standard(kind));
    }
}

/// An operator's request to this node ended a run of `queue` (`Stopped`, `Removed`).
pub fn run_ended_by_operator(queue: &str, kind: FailureKind) {
    run_finished(queue, &Outcome::standard(kind));
}

/// This node ended run `run` (its finalize won) as failed with `kind`.
pub(crate) fn ref_failed(run: &RunRef, kind: FailureKind) {
    run_finished(&queue_of_ref(run), &Outcome::standard(kind));
}

/// The engine claimed `n` runs.
pub(crate) fn claimed(n: usize) {
    counter!(ENGINE_CLAIMS).increment(n as u64);
}

/// A killer tick ended, having killed `kills` runs.
pub(crate) fn killer_tick(kills: u64) {
    counter!(KILLER_TICKS).increment(1);
    counter!(KILLER_KILLS).increment(kills);
}

/// This node's running jobs and free slots, as `executor` counts them now.
pub fn node_slots(executor: &dyn JobExecutor) {
    gauge!(NODE_RUNNING).set(executor.running().len() as f64);
    gauge!(NODE_FREE_SLOTS).set(executor.free_slots() as f64);
}

/// A store call of this node failed.
pub(crate) fn store_error(operation: &'static str, e: &StoreError) {
    let kind = match e.kind() {
        bildad_core::ErrorKind::NotFound => "not_found",
        bildad_core::ErrorKind::Conflict => "conflict",
        bildad_core::ErrorKind::Invalid => "invalid",
        bildad_core::ErrorKind::Unavailable => "unavailable",
        bildad_core::ErrorKind::Database => "database",
        _ => "other",
    };
    counter!(STORE_ERRORS, "operation" => operation, "kind" => kind).increment(1);
}
