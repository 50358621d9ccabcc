//! `JobKiller`: one per node. Every tick it heartbeats, kills this node's runs past
//! their timeout, and aborts local tasks whose run was ended elsewhere (SPEC §1, §2.5).

use crate::executor::finalize_batch;
use crate::pacing::Reach;
use bildad_core::{
    Backoff, FailureKind, Finalize, JobExecutor, JobStore, NodeRef, Outcome, StoreError,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What one killer tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KillReport {
    /// Runs of this node ended `FAILED`/`Timeout` by this tick.
    pub timed_out: u64,
    /// Local tasks aborted because their run was ended elsewhere (stopped, removed,
    /// expired).
    pub aborted: u64,
}

/// The killer of one node.
///
/// A node kills only the runs it owns (`run.node` = its instance id). Killing is
/// finalize first, abort second: the killer's `FAILED`/`Timeout` goes through the
/// conditional finalize, and only when it wins is the local task aborted — so a job
/// that completes at the same moment ends with exactly one outcome. A timed-out run
/// that has no local task (its task vanished) is finalized all the same.
#[derive(Clone)]
pub struct JobKiller {
    store: Arc<dyn JobStore>,
    node: NodeRef,
    executor: Arc<dyn JobExecutor>,
    backoff: Backoff,
    /// The node's view of its access to the database, fed by the killer's heartbeats.
    reach: Option<Arc<Reach>>,
}

impl std::fmt::Debug for JobKiller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobKiller")
            .field("node", &self.node)
            .finish()
    }
}

impl JobKiller {
    /// The killer of `node`, aborting tasks of `executor`; timed-out runs are retried
    /// after `backoff`.
    pub fn new(
        store: Arc<dyn JobStore>,
        node: NodeRef,
        executor: Arc<dyn JobExecutor>,
        backoff: Backoff,
    ) -> Self {
        Self {
            store,
            node,
            executor,
            backoff,
            reach: None,
        }
    }

    /// Feeds this killer's heartbeats into `reach` (the engine's), so that the engine
    /// holds expiry back after an outage even when no pass ran during it.
    pub(crate) fn sharing(mut self, reach: Arc<Reach>) -> Self {
        self.reach = Some(reach);
        self
    }

    /// One tick: heartbeat, kill timed-out runs, abort tasks ended elsewhere.
    ///
    /// Every step is tried even when an earlier one fails; the first error is returned.
    pub async fn tick(&self) -> Result<KillReport, StoreError> {
        let mut report = KillReport::default();
        let mut first_err = None;
        let at = Instant::now();
        let beat = self.store.heartbeat(&self.node).await;
        if let Some(reach) = &self.reach {
            reach.heartbeat(at, &beat);
        }
        if let Err(e) = beat {
            first_err.get_or_insert(e);
        }
        match self.kill_timed_out().await {
            Ok(n) => report.timed_out = n,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        match self.abort_ended_elsewhere().await {
            Ok(n) => report.aborted = n,
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
        crate::metrics::killer_tick(report.timed_out);
        match first_err {
            Some(e) => {
                crate::metrics::store_error("killer_tick", &e);
                Err(e)
            }
            None => Ok(report),
        }
    }

    async fn kill_timed_out(&self) -> Result<u64, StoreError> {
        let refs = self.store.runs_to_kill(&self.node.instance_id).await?;
        if refs.is_empty() {
            return Ok(0);
        }
        let reqs = refs
            .iter()
            .map(|r| Finalize {
                run_id: r.run_id,
                outcome: Outcome::standard(FailureKind::Timeout),
                backoff: self.backoff,
            })
            .collect();
        let results = finalize_batch(&*self.store, reqs).await;
        let mut killed = 0;
        let mut first_err = None;
        for (r, res) in refs.iter().zip(results) {
            match res {
                Ok(res) if res.won => {
                    killed += 1;
                    crate::metrics::ref_failed(r, FailureKind::Timeout);
                    let had_task = self.executor.abort(r.run_id);
                    tracing::warn!(
                        identifier = %r.job_run_identifier,
                        retry = r.retry,
                        run_id = r.run_id,
                        node = %r.node,
                        entry = ?res.entry,
                        had_task,
                        "run timed out; killed"
                    );
                }
                // Someone else ended it first; their outcome stands.
                Ok(_) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) if killed == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "some timed-out runs could not be killed");
                Ok(killed)
            }
            None => Ok(killed),
        }
    }

    async fn abort_ended_elsewhere(&self) -> Result<u64, StoreError> {
        let local = self.executor.running();
        if local.is_empty() {
            return Ok(0);
        }
        let ended = self.store.runs_finalized(&local).await?;
        let mut aborted = 0;
        for run_id in ended {
            if self.executor.abort(run_id) {
                aborted += 1;
                tracing::info!(run_id, "run was ended elsewhere; aborted its local task");
            }
        }
        Ok(aborted)
    }

    /// Ticks every `interval` until `stop` is cancelled. A failing tick is logged and
    /// the next tick runs. The first tick comes one interval after the call (the node
    /// heartbeats when it starts).
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
        let first = tokio::time::Instant::now() + interval;
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let tick = tokio::select! {
                () = stop.cancelled() => return,
                t = self.tick() => t,
            };
            if let Err(e) = tick {
                tracing::warn!(node = %self.node.instance_id, error = %e, "killer tick failed");
            }
        }
    }
}
