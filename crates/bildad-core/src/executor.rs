//! `JobExecutor`: where claimed runs execute. The runtime's `TokioExecutor` is the default.

use crate::input::ClaimedRun;
use crate::job::Job;
use crate::model::RunId;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Runs jobs of claimed runs on this node and keeps the registry of local running runs,
/// so that the killer can abort them.
///
/// An executor finalizes every run it started (success, error, panic) through the
/// store's conditional finalize; an aborted run is finalized by whoever aborted it.
#[async_trait]
pub trait JobExecutor: Send + Sync + 'static {
    /// Starts `job` for `run` in the background and returns at once.
    fn spawn(&self, run: ClaimedRun, job: Arc<dyn Job>);

    /// Aborts the local task of `run` (cooperatively, at its next `.await`). Returns
    /// false when no such task runs here.
    fn abort(&self, run: RunId) -> bool;

    /// The runs whose tasks run here now.
    fn running(&self) -> Vec<RunId>;

    /// How many more jobs this node may run now (`max_concurrent_jobs` minus running).
    fn free_slots(&self) -> usize;

    /// Stops accepting work, waits up to `grace` for running jobs, then aborts the rest
    /// and returns their run ids (the caller finalizes them as `Shutdown`).
    async fn shutdown(&self, grace: Duration) -> Vec<RunId>;
}
