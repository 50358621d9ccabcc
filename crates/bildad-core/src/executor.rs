//! `JobExecutor`: where claimed runs execute. The runtime's `TokioExecutor` is the default.

use crate::ClaimedRun;
use crate::job::Job;
use crate::model::RunId;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Runs jobs of claimed runs on this node and keeps the registry of local running runs,
/// so that the killer can abort them.
///
/// An executor finalizes every run it started (success, error, panic) through the
/// store's conditional finalize; an aborted run is finalized by whoever aborted it. A run
/// handed to [`JobExecutor::spawn`] after [`JobExecutor::shutdown`] began is never
/// started: the executor finalizes it `NotStarted` (its entry goes back untouched).
///
/// Once a run's job has returned, its outcome is the run's: it is no longer listed by
/// [`JobExecutor::running`], cannot be aborted, and is not returned by `shutdown`.
#[async_trait]
pub trait JobExecutor: Send + Sync + 'static {
    /// Starts `job` for `run` in the background and returns at once.
    fn spawn(&self, run: ClaimedRun, job: Arc<dyn Job>);

    /// Aborts the local job of `run` (cooperatively, at its next `.await`). Returns true
    /// only when this call aborted it (the caller then finalizes the run); false when no
    /// job of `run` is running here: none at all, one already aborted, or one that has
    /// returned (its own outcome is being recorded).
    fn abort(&self, run: RunId) -> bool;

    /// The runs whose jobs are running here now: started, not yet returned, not aborted.
    /// An aborted task may still hold its slot (see [`JobExecutor::free_slots`]) without
    /// being listed.
    fn running(&self) -> Vec<RunId>;

    /// How many more jobs this node may run now: `max_concurrent_jobs` minus the slots
    /// taken; 0 once shutdown began. A slot is taken by a job running and by an aborted
    /// task that has not ended yet (so more than [`JobExecutor::running`] lists). A job
    /// that has returned frees its slot while its outcome waits to be recorded, as long
    /// as no more than `max_concurrent_jobs` outcomes wait; each one beyond holds a slot,
    /// so a slow database slows the claims instead of piling up outcomes.
    fn free_slots(&self) -> usize;

    /// Stops accepting work, waits up to `grace` for running jobs, then aborts those
    /// still running and returns the ids of the runs this call really aborted (the
    /// caller finalizes them as `Shutdown`). Jobs that had already returned are neither
    /// aborted nor returned: their own outcomes are recorded. Runs handed to `spawn`
    /// from now on are not started and end `NotStarted`, not `Shutdown`.
    async fn shutdown(&self, grace: Duration) -> Vec<RunId>;
}
