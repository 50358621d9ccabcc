//! The engine: one pass = heartbeat, expire dead runs, then claim and start available
//! entries on this node (SPEC §1, §2.2–2.6).

mod start;

use crate::executor::TokioExecutor;
use crate::pacing::{Reach, Throttle};
use bildad_core::{
    ClaimRequest, ClaimedRun, FailureKind, Finalize, JobExecutor, JobRegistry, JobStore, NewEntry,
    NodeConfig, NodeRef, Outcome, QueueEntry, RunId, SchemaCache, StoreError,
};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// Successes and failures of one half of an engine pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Runs started (or expired) without error.
    pub ok_count: u64,
    /// Runs that could not be started (or expired).
    pub error_count: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.ok_count += other.ok_count;
        self.error_count += other.error_count;
    }
}

/// The report of one engine pass (SPEC §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngineReport {
    /// Claimed and started on this node. A run claimed but failed at start (invalid
    /// context, unknown job type) is an error.
    pub start: Counts,
    /// Expired runs (of any node). A run this pass could not finalize is an error; a run
    /// that another node ended first is not counted.
    pub expire: Counts,
}

/// The engine of one node. Cheap to clone.
///
/// Passes of one engine (ticker, HTTP trigger, library calls) are serialised, so that
/// they never claim more than the node's free slots between them.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn JobStore>,
    node: NodeRef,
    shared: Arc<Shared>,
}

struct Shared {
    registry: JobRegistry,
    job_types: Vec<String>,
    config: NodeConfig,
    executor: Arc<dyn JobExecutor>,
    slot_freed: Option<Arc<Notify>>,
    schemas: SchemaCache,
    pass: tokio::sync::Mutex<()>,
    closed: AtomicBool,
    throttle: Throttle,
    reach: Arc<Reach>,
    queues: crate::queues::LocalQueues,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.node)
            .field("job_types", &self.shared.job_types)
            .finish()
    }
}

impl Engine {
    /// An engine for `node` that starts jobs of `registry` on `executor`.
    ///
    /// `config` supplies the batch size, the expiry grace, `node_dead_after` and the
    /// retry backoff. Most users get an engine from [`crate::NodeRuntime::start`] instead.
    pub fn new(
        store: Arc<dyn JobStore>,
        registry: JobRegistry,
        config: NodeConfig,
        node: NodeRef,
        executor: Arc<dyn JobExecutor>,
    ) -> Self {
        Self::build(store, registry, config, node, executor, None)
    }

    /// An engine with its own [`TokioExecutor`] of `config.max_concurrent_jobs` slots.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn with_tokio_executor(
        store: Arc<dyn JobStore>,
        registry: JobRegistry,
        config: NodeConfig,
        node: NodeRef,
    ) -> (Self, TokioExecutor) {
        let executor = TokioExecutor::new(
            store.clone(),
            node.clone(),
            config.backoff,
            config.max_concurrent_jobs as usize,
        );
        let signal = executor.slot_freed();
        let engine = Self::build(
            store,
            registry,
            config,
            node,
            Arc::new(executor.clone()),
            Some(signal),
        );
        (engine, executor)
    }

    fn build(
        store: Arc<dyn JobStore>,
        registry: JobRegistry,
        config: NodeConfig,
        node: NodeRef,
        executor: Arc<dyn JobExecutor>,
        slot_freed: Option<Arc<Notify>>,
    ) -> Self {
        let registry = crate::isolation::wrap(registry, &store);
        Self {
            store,
            node,
            shared: Arc::new(Shared {
                throttle: Throttle::new(&config),
                reach: Arc::new(Reach::new(&config)),
                queues: crate::queues::LocalQueues::new(&config),
                job_types: registry.job_types(),
                registry,
                config,
                executor,
                slot_freed,
                schemas: SchemaCache::new(),
                pass: tokio::sync::Mutex::new(()),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The store this engine uses.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// This node.
    pub fn node(&self) -> &NodeRef {
        &self.node
    }

    /// The executor that runs this engine's jobs.
    pub fn executor(&self) -> &Arc<dyn JobExecutor> {
        &self.shared.executor
    }

    /// The configuration this engine runs with.
    pub fn config(&self) -> &NodeConfig {
        &self.shared.config
    }

    /// This node's view of its access to the database (shared with its killer).
    pub(crate) fn reach(&self) -> Arc<Reach> {
        self.shared.reach.clone()
    }

    /// True once [`Engine::close`] was called: passes do nothing.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Stops the engine: later passes do nothing, and this waits for a pass in flight.
    pub async fn close(&self) {
        self.mark_closed();
        drop(self.shared.pass.lock().await);
    }

    pub(crate) fn mark_closed(&self) {
        self.shared.closed.store(true, Ordering::SeqCst);
    }

    /// One pass: heartbeat, expire, then claim up to `min(batch_size, free slots)` and
    /// start them. The heartbeat and the expiry check are skipped when this engine did
    /// them very recently (see [`crate::EXPIRY_CHECK_EVERY`]), so that frequent passes cost a
    /// claim and little else.
    ///
    /// Errors when the heartbeat or the expiry query fails (the database is likely
    /// unreachable); once claimed, a run's problems are counted, not returned.
    pub async fn run_once(&self) -> Result<EngineReport, StoreError> {
        if self.is_closed() {
            return Ok(EngineReport::default());
        }
        crate::metrics::engine_pass(&**self.executor(), async {
            self.heartbeat_if_due().await?;
            let expire = self.expire_if_due().await?;
            let (start, _, _) = self.start_batch(None).await?;
            Ok(EngineReport { start, expire })
        })
        .await
    }

    /// Like [`Engine::run_once`], but keeps claiming while work is available: when the
    /// node has no free slot it waits for one, and it returns once a claim finds fewer
    /// entries than it asked for (the queue is drained for now) or the engine closes.
    /// For throughput: a node started this way keeps every slot busy.
    pub async fn run_until_idle(&self) -> Result<EngineReport, StoreError> {
        if self.is_closed() {
            return Ok(EngineReport::default());
        }
        crate::metrics::engine_pass(&**self.executor(), self.drain()).await
    }

    async fn drain(&self) -> Result<EngineReport, StoreError> {
        self.heartbeat_if_due().await?;
        let mut report = EngineReport {
            expire: self.expire_if_due().await?,
            ..EngineReport::default()
        };
        // Claim batch k+1 while batch k starts: the start (context checks, spawning) is
        // CPU work that overlaps the next claim's round trip. Runs claimed and not yet
        // started count against the free slots. The pass lock is held for as long as
        // claimed runs wait to start: an overlapping pass (a trigger, the ticker) cannot
        // claim their slots, and `close` waits until every run a pass claimed was started
        // or handed back (`NotStarted`). It is let go between batches only when nothing
        // waits to start.
        let mut pending: Vec<ClaimedRun> = Vec::new();
        let mut pass = None;
        let mut drained = false;
        loop {
            if pass.is_none() {
                pass = Some(self.shared.pass.lock().await);
            }
            if self.is_closed() || drained {
                if !pending.is_empty() {
                    report
                        .start
                        .add(self.start_runs(std::mem::take(&mut pending)).await);
                }
                break;
            }
            // Free slots are counted under the pass lock, as every pass does.
            let free = self
                .shared
                .executor
                .free_slots()
                .saturating_sub(pending.len());
            if free == 0 && pending.is_empty() {
                pass = None;
                self.wait_for_slot().await;
                continue;
            }
            let limit = free.min(self.shared.config.batch_size as usize);
            let starting = std::mem::take(&mut pending);
            let (claimed, counts) = tokio::join!(
                async {
                    if limit == 0 {
                        Ok(Vec::new())
                    } else {
                        self.claim_runs(limit, None).await
                    }
                },
                self.start_runs(starting)
            );
            report.start.add(counts);
            pending = claimed?;
            if pending.is_empty() {
                pass = None;
            }
            if limit > 0 && pending.len() < limit {
                drained = true;
            }
        }
        Ok(report)
    }

    /// Writes the heartbeat unless this engine wrote it less than a quarter of
    /// `min(killer_interval, node_dead_after)` ago (the killer writes it as well).
    async fn heartbeat_if_due(&self) -> Result<(), StoreError> {
        let t = &self.shared.throttle;
        if Throttle::due(&t.last_heartbeat, t.heartbeat_every) {
            let at = Instant::now();
            let result = self.store.heartbeat(&self.node).await;
            self.shared.reach.heartbeat(at, &result);
            result?;
            Throttle::mark(&t.last_heartbeat, at);
        }
        Ok(())
    }

    /// Looks for runs to expire unless this engine looked less than
    /// `min(EXPIRY_CHECK_EVERY, node_dead_after / 4, expiry_grace / 4)` ago: a run
    /// expires at most that much later than it could (SPEC §2.6 is coarse-grained by
    /// nature). A pass that skips the check reports no expiry.
    ///
    /// Nothing expires while this node could not reach the database, nor until
    /// `node_dead_after` has passed since it reached it again: live nodes' heartbeats
    /// are as old as the outage then, and their finished jobs' outcomes not yet recorded.
    async fn expire_if_due(&self) -> Result<Counts, StoreError> {
        let t = &self.shared.throttle;
        if !Throttle::due(&t.last_expiry, t.expiry_every) || !self.shared.reach.may_expire() {
            return Ok(Counts::default());
        }
        let at = Instant::now();
        let counts = self.expire().await?;
        Throttle::mark(&t.last_expiry, at);
        Ok(counts)
    }

    async fn wait_for_slot(&self) {
        // A lost wake-up costs at most the poll interval.
        let poll = Duration::from_millis(20);
        match &self.shared.slot_freed {
            Some(n) => {
                let freed = n.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if self.shared.executor.free_slots() == 0 {
                    let _ = tokio::time::timeout(poll, freed).await;
                }
            }
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }

    /// Enqueues one entry.
    pub async fn enqueue(&self, entry: NewEntry) -> Result<QueueEntry, StoreError> {
        self.store.enqueue(entry).await
    }

    /// Enqueues, then runs one engine pass.
    pub async fn enqueue_and_trigger(
        &self,
        entry: NewEntry,
    ) -> Result<(QueueEntry, EngineReport), StoreError> {
        let entry = self.enqueue(entry).await?;
        let report = self.run_once().await?;
        Ok((entry, report))
    }

    /// Enqueues and starts this entry now on this node, ahead of priority and `run_at`.
    ///
    /// Returns the new run's id, or `None` when this node cannot start it now (no free
    /// slot, job type not registered here, engine closed): the entry then waits in the
    /// queue like any other. A run that fails its start check is still returned.
    pub async fn enqueue_and_run(
        &self,
        entry: NewEntry,
    ) -> Result<(QueueEntry, Option<RunId>), StoreError> {
        let entry = self.enqueue(entry).await?;
        let (_, _, _, runs) = self
            .start_batch_inner(Some(entry.job_run_identifier.clone()))
            .await?;
        Ok((entry, runs.first().copied()))
    }

    /// Expires runs past `expires_at` or on dead nodes (SPEC §2.6).
    async fn expire(&self) -> Result<Counts, StoreError> {
        let refs = self
            .store
            .runs_to_expire(self.shared.config.node_dead_after)
            .await?;
        let mut counts = Counts::default();
        if refs.is_empty() {
            return Ok(counts);
        }
        let reqs = refs
            .iter()
            .map(|r| Finalize {
                run_id: r.run_id,
                outcome: Outcome::standard(FailureKind::Expired),
                backoff: self.shared.config.backoff,
            })
            .collect();
        match self.store.finalize_many(reqs).await {
            Ok(results) => {
                for (r, res) in refs.iter().zip(results) {
                    if !res.won {
                        continue;
                    }
                    counts.ok_count += 1;
                    crate::metrics::ref_failed(r, FailureKind::Expired);
                    tracing::warn!(
                        identifier = %r.job_run_identifier,
                        retry = r.retry,
                        run_id = r.run_id,
                        node = %r.node,
                        entry = ?res.entry,
                        "run expired"
                    );
                    if r.node == self.node.instance_id {
                        self.shared.executor.abort(r.run_id);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, runs = refs.len(), "could not expire runs");
                counts.error_count += refs.len() as u64;
            }
        }
        Ok(counts)
    }

    /// Claims and starts one batch. Returns the counts, how many were claimed and how
    /// many were asked for.
    async fn start_batch(
        &self,
        only: Option<String>,
    ) -> Result<(Counts, usize, usize), StoreError> {
        let (counts, claimed, asked, _) = self.start_batch_inner(only).await?;
        Ok((counts, claimed, asked))
    }

    async fn start_batch_inner(
        &self,
        only: Option<String>,
    ) -> Result<(Counts, usize, usize, Vec<RunId>), StoreError> {
        let _pass = self.shared.pass.lock().await;
        let free = self.shared.executor.free_slots();
        let limit = if only.is_some() {
            free.min(1)
        } else {
            free.min(self.shared.config.batch_size as usize)
        };
        let claimed = self.claim_runs(limit, only).await?;
        let n = claimed.len();
        let ids = claimed.iter().map(|c| c.run.id).collect();
        let counts = self.start_runs(claimed).await;
        Ok((counts, n, limit, ids))
    }

    /// Claims up to `limit` runs for this node (none when closed, or when this node
    /// registered no job type). The caller holds the pass lock.
    async fn claim_runs(
        &self,
        limit: usize,
        only: Option<String>,
    ) -> Result<Vec<ClaimedRun>, StoreError> {
        if limit == 0 || self.is_closed() || self.shared.job_types.is_empty() {
            return Ok(Vec::new());
        }
        let running = self.shared.executor.running();
        let (queues, queue_caps) = self.shared.queues.claim_fields(&running);
        let claimed = self
            .store
            .claim(ClaimRequest {
                node: self.node.clone(),
                job_types: self.shared.job_types.clone(),
                limit: limit as u32,
                expiry_grace: self.shared.config.expiry_grace,
                only_identifier: only,
                queues,
                queue_caps,
            })
            .await;
        if let Ok(runs) = &claimed {
            self.shared.queues.claimed(runs);
        }
        if claimed.as_ref().is_err_and(StoreError::is_transient) {
            self.shared.reach.failed();
        }
        crate::metrics::claimed(claimed.as_ref().map_or(0, Vec::len));
        claimed
    }
}
