//! `NodeRuntime`: one running node — identity, executor, engine, killer, optional ticker,
//! and graceful shutdown.

use crate::engine::Engine;
use crate::executor::{TokioExecutor, finalize_batch};
use crate::killer::JobKiller;
use bildad_core::{
    FailureKind, Finalize, JobRegistry, JobStore, NodeConfig, NodeRef, Outcome, StoreError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long [`NodeRuntime::shutdown`] waits, after the grace, for the runs it aborted
/// to be finalized and for the outcomes of finished jobs to be recorded.
pub const SHUTDOWN_FINALIZE_BOUND: Duration = Duration::from_secs(10);

/// A running node: engine, killer, optional ticker. Cheap to clone.
///
/// Dropping the last clone without [`NodeRuntime::shutdown`] stops the killer and the
/// ticker but not running jobs; their runs expire on other nodes once the heartbeat is
/// older than `node_dead_after`. Call `shutdown`.
#[derive(Clone)]
pub struct NodeRuntime {
    engine: Engine,
    inner: Arc<Inner>,
}

struct Inner {
    executor: TokioExecutor,
    killer: JobKiller,
    config: NodeConfig,
    /// Stops the ticker (first, at shutdown).
    stop_ticker: CancellationToken,
    /// Stops the killer (last, after the jobs had their grace).
    stop_killer: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop_ticker.cancel();
        self.stop_killer.cancel();
    }
}

impl std::fmt::Debug for NodeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRuntime")
            .field("node", self.engine.node())
            .field("executor", &self.inner.executor)
            .finish()
    }
}

impl NodeRuntime {
    /// Creates or updates the templates the registry declares
    /// ([`JobRegistry::ensure_templates`]), then its schedules
    /// ([`JobRegistry::ensure_schedules`]), registers the node (first heartbeat), starts
    /// the killer, the scheduler (unless `config.scheduler_interval` is `None`) and, when
    /// `config.engine_interval` is set, the ticker; when `config.wake_on_enqueue` is
    /// set, an engine pass also starts whenever the store reports an enqueue.
    ///
    /// The node gets a new instance id ([`NodeRef::new`] of `config.node_name`): runs it
    /// claims record it. `Invalid` when the configuration or a declared template is
    /// unusable; the store's error when writing the templates or the first heartbeat fails.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub async fn start(
        store: Arc<dyn JobStore>,
        registry: JobRegistry,
        config: NodeConfig,
    ) -> Result<Self, StoreError> {
        config.validate()?;
        let node = NodeRef::new(config.node_name.clone());
        let templates = registry.ensure_templates(&*store).await?;
        if !templates.created.is_empty() || !templates.updated.is_empty() {
            tracing::info!(
                created = ?templates.created,
                updated = ?templates.updated,
                "templates from code written"
            );
        }
        let schedules = registry.ensure_schedules(&*store).await?;
        if !schedules.created.is_empty() || !schedules.updated.is_empty() {
            tracing::info!(
                created = ?schedules.created,
                updated = ?schedules.updated,
                "schedules from code written"
            );
        }
        store.heartbeat(&node).await?;
        let (engine, executor) =
            Engine::with_tokio_executor(store.clone(), registry, config.clone(), node.clone());
        let killer = JobKiller::new(
            store,
            node.clone(),
            engine.executor().clone(),
            config.backoff,
        )
        .sharing(engine.reach());
        let inner = Arc::new(Inner {
            executor,
            killer: killer.clone(),
            config: config.clone(),
            stop_ticker: CancellationToken::new(),
            stop_killer: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            shut_down: AtomicBool::new(false),
        });
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(
            killer.run(config.killer_interval, inner.stop_killer.clone()),
        ));
        if let Some(every) = config.engine_interval.filter(|d| !d.is_zero()) {
            tasks.push(tokio::spawn(run_ticker(
                engine.clone(),
                every,
                inner.stop_ticker.clone(),
            )));
        }
        if let Some(every) = config.scheduler_interval.filter(|d| !d.is_zero()) {
            let scheduler = crate::Scheduler::new(engine.store().clone(), config.schedule_grace);
            tasks.push(tokio::spawn(
                scheduler.run(every, inner.stop_ticker.clone()),
            ));
        }
        if config.wake_on_enqueue {
            tasks.push(tokio::spawn(run_wake_on_enqueue(
                engine.clone(),
                inner.stop_ticker.clone(),
            )));
        }
        *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = tasks;
        tracing::info!(
            node = %node.instance_id,
            name = %node.name,
            "node started"
        );
        Ok(Self { engine, inner })
    }

    /// The node's engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// This node: its name and this start's instance id.
    pub fn node(&self) -> &NodeRef {
        self.engine.node()
    }

    /// The node's executor (its local running runs).
    pub fn executor(&self) -> &TokioExecutor {
        &self.inner.executor
    }

    /// The node's killer; it ticks on its own every `killer_interval`, and
    /// [`JobKiller::tick`] runs one tick now.
    pub fn killer(&self) -> &JobKiller {
        &self.inner.killer
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.config
    }

    /// Stops claiming, waits up to `grace` for running jobs, aborts and finalizes the
    /// rest (`Shutdown`, retried by the normal rule), waits for the outcomes of jobs that
    /// did finish to be recorded, and records the node's departure.
    ///
    /// Runs claimed but never started go back to their queue untouched (`NotStarted`).
    /// A job that returned before the grace ran out keeps its own outcome: it is never
    /// overwritten by `Shutdown`. The killer keeps ticking (heartbeat, timeouts) until
    /// the end. Calling it again does nothing. Store errors are logged: a run that could
    /// not be finalized (the wait is bounded by [`SHUTDOWN_FINALIZE_BOUND`]) expires on
    /// another node.
    pub async fn shutdown(&self, grace: Duration) {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let node = self.node().clone();
        tracing::info!(node = %node.instance_id, ?grace, "node shutting down");
        self.inner.stop_ticker.cancel();
        self.engine.close().await;
        let rest = self.inner.executor.shutdown_runs(grace).await;
        let store = self.engine.store();
        let (_, idle) = tokio::join!(
            self.finalize_shut_down(&rest),
            self.inner.executor.wait_idle(SHUTDOWN_FINALIZE_BOUND)
        );
        if !idle {
            tracing::error!(
                tasks = self.inner.executor.running_count(),
                "tasks still running or recording their outcome at shutdown; \
                 runs left RUNNING will expire"
            );
        }
        self.inner.stop_killer.cancel();
        let tasks =
            std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
        if let Err(e) = store.node_stopped(&node.instance_id).await {
            tracing::warn!(error = %e, "could not record the node's departure");
        }
        tracing::info!(node = %node.instance_id, "node stopped");
    }

    /// Finalizes as `Shutdown` the runs whose jobs shutdown aborted (with their queues),
    /// and counts those it ended.
    async fn finalize_shut_down(&self, rest: &[(bildad_core::RunId, String)]) {
        let store = self.engine.store();
        if !rest.is_empty() {
            let reqs = rest
                .iter()
                .map(|&(run_id, _)| Finalize {
                    run_id,
                    outcome: Outcome::standard(FailureKind::Shutdown),
                    backoff: self.inner.config.backoff,
                })
                .collect();
            // Bounded: a node that cannot reach its database must still exit; its runs
            // then expire on another node.
            let finalize = finalize_batch(&**store, reqs);
            match tokio::time::timeout(SHUTDOWN_FINALIZE_BOUND, finalize).await {
                Ok(results) => {
                    for ((run_id, queue), res) in rest.iter().zip(results) {
                        if res.as_ref().is_ok_and(|r| r.won) {
                            let outcome = Outcome::standard(FailureKind::Shutdown);
                            crate::metrics::run_finished(queue, &outcome);
                        }
                        tracing::warn!(run_id, result = ?res, "run ended by shutdown");
                    }
                }
                Err(_) => tracing::error!(
                    runs = rest.len(),
                    "could not finalize runs at shutdown; they will expire"
                ),
            }
        }
    }

    /// Simulates a crash, for tests and failure drills: the killer and the ticker stop,
    /// every job task vanishes without finalizing, and nothing is recorded. The runs
    /// stay `RUNNING` until another node's engine expires them (`node_dead_after`).
    pub fn crash(&self) {
        self.inner.shut_down.store(true, Ordering::SeqCst);
        self.inner.stop_ticker.cancel();
        self.inner.stop_killer.cancel();
        for t in self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            t.abort();
        }
        self.inner.executor.crash();
        // Later passes of this engine must not claim.
        self.engine.mark_closed();
    }
}

/// Runs the engine every `every` until stopped. A failing pass is logged.
async fn run_ticker(engine: Engine, every: Duration, stop: CancellationToken) {
    crate::scheduler::repeat(every, stop, || {
        let engine = engine.clone();
        async move {
            match engine.run_once().await {
                Ok(r) if r != crate::EngineReport::default() => {
                    tracing::debug!(report = ?r, "engine pass");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "engine pass failed"),
            }
        }
    })
    .await;
}

/// First and largest pause before subscribing again after the store's listener was lost.
const RESUBSCRIBE_FIRST: Duration = Duration::from_millis(100);
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// Runs the engine until idle whenever the store reports an enqueue, until stopped.
/// Wake-ups that arrive during a pass are coalesced into one more pass. When the
/// store's listener is lost it subscribes again (with backoff) and runs a pass, for the
/// enqueues that came in between. A store that cannot push wake-ups is logged once.
async fn run_wake_on_enqueue(engine: Engine, stop: CancellationToken) {
    let mut pause = RESUBSCRIBE_FIRST;
    loop {
        let listener = tokio::select! {
            () = stop.cancelled() => return,
            l = engine.store().listen_for_enqueues() => l,
        };
        let mut listener = match listener {
            Ok(Some(l)) => l,
            Ok(None) => {
                tracing::warn!(
                    "wake_on_enqueue is set, but this store cannot push wake-ups: \
                     the engine runs on cron requests and the ticker only"
                );
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for enqueues; retrying");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RESUBSCRIBE_MAX);
                continue;
            }
        };
        pause = RESUBSCRIBE_FIRST;
        tracing::debug!("listening for enqueues");
        // Entries enqueued before the subscription started get no wake-up.
        let mut woken = true;
        while woken {
            match engine.run_until_idle().await {
                Ok(r) if r != crate::EngineReport::default() => {
                    tracing::debug!(report = ?r, "engine pass on enqueue");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "engine pass on enqueue failed"),
            }
            woken = tokio::select! {
                () = stop.cancelled() => return,
                w = listener.wait() => w,
            };
        }
        tracing::warn!("lost the store's enqueue listener; subscribing again");
    }
}
