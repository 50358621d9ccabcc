//! `TokioExecutor`: every job in its own tokio task, every outcome finalized through the
//! store's conditional finalize.

use async_trait::async_trait;
use bildad_core::{
    Backoff, Cancellation, ClaimedRun, FailureKind, Finalize, FinalizeResult, Job, JobContext,
    JobExecutor, JobStore, NodeRef, Outcome, RunId, StoreError,
};
use futures::FutureExt;
use std::any::Any;
use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::AbortHandle;
use tracing::Instrument;

/// The most finalizes sent to the store in one round trip.
const FINALIZE_BATCH: usize = 500;
/// First and largest pause between finalize attempts while the store is unavailable.
pub(crate) const RETRY_FIRST: Duration = Duration::from_millis(100);
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);

/// Runs each claimed job in its own tokio task on this node.
///
/// - `Ok(output)` ends the run `SUCCEEDED` with the output; `Err(e)` ends it `FAILED`
///   with the error's message and its kind ([`bildad_core::JobError::kind`]: `Error`,
///   `Permanent`, `Snoozed` or `Cancelled`); a panic ends it `FAILED` with the panic message
///   (`FailureKind::Panic`) and the node lives on.
/// - Outcomes are finalized through the store's conditional finalize, batched: every
///   outcome that is ready while a round trip is in flight goes in the next one. While
///   the store is `Unavailable` the finalize is retried with backoff (100 ms doubling to
///   5 s, for as long as it takes), so a job that finished during an outage records its
///   outcome once the database is back — unless someone else ended the run meanwhile,
///   in which case the late outcome loses and changes nothing.
/// - A local registry of running runs (run id → abort handle and [`Cancellation`]) lets
///   the killer and the engine abort a task. Aborting is cooperative: it sets the job's
///   cancellation flag, and tokio drops the task at its next `.await`. The run keeps its
///   slot until its task has really ended (a blocking or CPU-bound job runs on until it
///   yields), so `max_concurrent_jobs` holds even then.
/// - A slot frees when the job returns, not when its outcome is recorded (as River's
///   completer does): up to `max_concurrent_jobs` outcomes may wait for the finalizer
///   without holding a slot, and beyond that each waiting outcome holds one, so a slow
///   database slows the claims instead of piling up outcomes. `max_concurrent_jobs` is
///   the number of jobs executing at once.
/// - Once a job has returned, its outcome is the run's: the run can no longer be aborted
///   (the killer and shutdown leave it alone), and its outcome, queued for the batch
///   finalizer, is recorded unless someone else ended the run first.
///
/// Must be created inside a tokio runtime (it spawns its finalizer task there).
#[derive(Clone)]
pub struct TokioExecutor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for TokioExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioExecutor")
            .field("node", &self.inner.node.instance_id)
            .field("max_concurrent_jobs", &self.inner.max)
            .field("running", &self.inner.lock().runs.len())
            .finish()
    }
}

struct Inner {
    node: NodeRef,
    backoff: Backoff,
    max: usize,
    rt: tokio::runtime::Handle,
    running: Mutex<Registry>,
    closed: AtomicBool,
    slot_freed: Arc<Notify>,
    finalizer: mpsc::UnboundedSender<PendingFinalize>,
    finalizer_task: AbortHandle,
    store: Arc<dyn JobStore>,
}

/// The local runs, and how many of them are [`LocalState::Finishing`].
#[derive(Default)]
struct Registry {
    runs: HashMap<RunId, LocalRun>,
    finishing: usize,
}

impl Registry {
    /// The slots taken: every task that is not finishing, and the finishing ones beyond
    /// the `max` outcomes that may wait without a slot.
    fn slots_taken(&self, max: usize) -> usize {
        (self.runs.len() - self.finishing) + self.finishing.saturating_sub(max)
    }
}

struct LocalRun {
    abort: AbortHandle,
    cancel: Cancellation,
    state: LocalState,
    /// The job ends by itself once cancelled ([`Job::ends_on_cancel`]): it is not
    /// dropped, its slot frees when it returns.
    ends_on_cancel: bool,
    /// The run's queue (the metrics label of the run's end when shutdown aborts it).
    queue: String,
}

/// Where a local run stands. Changed only under the registry's lock, so that an abort
/// and the job's return cannot both win.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LocalState {
    /// The job runs; it may be aborted.
    Running,
    /// The job returned; its outcome is being recorded. Not abortable.
    Finishing,
    /// Aborted (whoever aborted it finalizes the run); the task has not ended yet, so
    /// it still holds its slot.
    Aborted,
}

struct PendingFinalize {
    req: Finalize,
    reply: oneshot::Sender<Result<FinalizeResult, StoreError>>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // The registry is consistent after any panic (each change is made whole under
        // the lock).
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets `run` (its task has ended), freeing its slot if it held one.
    fn release(&self, run: RunId) {
        let mut reg = self.lock();
        if let Some(local) = reg.runs.remove(&run) {
            if local.state == LocalState::Finishing {
                reg.finishing -= 1;
            }
            drop(reg);
            self.slot_freed.notify_waiters();
        }
    }

    /// The runs of `reg` whose jobs are still running (not returned, not aborted).
    fn running_ids(reg: &Registry) -> Vec<RunId> {
        reg.runs
            .iter()
            .filter(|(_, l)| l.state == LocalState::Running)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Aborts `run` if its job is still running: true when this call aborted it.
    fn abort_running(reg: &mut Registry, run: RunId) -> bool {
        match reg.runs.get_mut(&run) {
            Some(local) if local.state == LocalState::Running => {
                local.state = LocalState::Aborted;
                local.cancel.cancel();
                if !local.ends_on_cancel {
                    local.abort.abort();
                }
                true
            }
            _ => false,
        }
    }

    /// The job of `run` returned: true when its outcome is to be recorded (the run was
    /// not aborted meanwhile; its aborter finalizes it then). Its slot frees now unless
    /// `max` outcomes already wait (see [`Registry::slots_taken`]).
    fn job_returned(&self, run: RunId) -> bool {
        let mut reg = self.lock();
        match reg.runs.get_mut(&run) {
            Some(local) if local.state == LocalState::Running => {
                local.state = LocalState::Finishing;
                reg.finishing += 1;
                let freed = reg.finishing <= self.max;
                drop(reg);
                if freed {
                    self.slot_freed.notify_waiters();
                }
                true
            }
            _ => false,
        }
    }

    /// [`JobExecutor::free_slots`]: `max` less the slots taken; none once closed.
    fn free_slots(&self) -> usize {
        if self.closed.load(Ordering::SeqCst) {
            return 0;
        }
        self.max.saturating_sub(self.lock().slots_taken(self.max))
    }

    /// Queues `req` for the finalizer task and waits for its result.
    async fn finalize(&self, req: Finalize) -> Result<FinalizeResult, StoreError> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::error::SendError(p)) = self.finalizer.send(PendingFinalize { req, reply })
        {
            // The finalizer is gone (the node crashed on purpose): finalize directly.
            return finalize_one(&*self.store, p.req).await;
        }
        rx.await
            .unwrap_or_else(|_| Err(StoreError::Unavailable("the finalizer stopped".into())))
    }
}

/// Frees the run's slot however its task ends: completion, abort, or panic. Dropped
/// with the task's future, so only once the task has really ended.
struct SlotGuard {
    inner: Arc<Inner>,
    run: RunId,
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.inner.release(self.run);
    }
}

impl TokioExecutor {
    /// An executor for `node` running at most `max_concurrent_jobs` jobs at once; failed
    /// runs are retried after `backoff`.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new(
        store: Arc<dyn JobStore>,
        node: NodeRef,
        backoff: Backoff,
        max_concurrent_jobs: usize,
    ) -> Self {
        let rt = tokio::runtime::Handle::current();
        let (tx, rx) = mpsc::unbounded_channel();
        let finalizer_task = rt.spawn(run_finalizer(store.clone(), rx)).abort_handle();
        Self {
            inner: Arc::new(Inner {
                node,
                backoff,
                max: max_concurrent_jobs,
                rt,
                running: Mutex::new(Registry::default()),
                closed: AtomicBool::new(false),
                slot_freed: Arc::new(Notify::new()),
                finalizer: tx,
                finalizer_task,
                store,
            }),
        }
    }

    /// Woken (`notify_waiters`) every time a slot frees up.
    pub fn slot_freed(&self) -> Arc<Notify> {
        self.inner.slot_freed.clone()
    }

    /// How many tasks this executor has now: jobs running, outcomes being recorded, and
    /// aborted tasks that have not ended yet (each of them ends with its task).
    pub fn running_count(&self) -> usize {
        self.inner.lock().runs.len()
    }

    /// Waits until every task of this executor has ended (jobs done, outcomes recorded,
    /// aborted tasks gone), for at most `bound`. True when they all ended.
    pub async fn wait_idle(&self, bound: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let freed = self.inner.slot_freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.inner.lock().runs.is_empty() {
                return true;
            }
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return self.inner.lock().runs.is_empty();
            }
        }
    }

    /// [`JobExecutor::shutdown`], with each aborted run's queue: stops accepting work,
    /// waits up to `grace` for running jobs, then aborts those still running and returns
    /// them (the caller finalizes them, and counts their end under their queue).
    pub async fn shutdown_runs(&self, grace: Duration) -> Vec<(RunId, String)> {
        self.inner.closed.store(true, Ordering::SeqCst);
        if self.wait_idle(grace).await {
            return Vec::new();
        }
        let mut reg = self.inner.lock();
        let mut aborted = Vec::new();
        for id in Inner::running_ids(&reg) {
            if Inner::abort_running(&mut reg, id) {
                aborted.extend(reg.runs.get(&id).map(|l| (id, l.queue.clone())));
            }
        }
        aborted
    }

    /// Simulates a crash: aborts every task and the finalizer without finalizing
    /// anything, so the runs stay `RUNNING` until another node's engine expires them.
    /// For tests and failure drills; a real node calls `NodeRuntime::shutdown`.
    pub fn crash(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.finalizer_task.abort();
        let all: Vec<_> = {
            let mut reg = self.inner.lock();
            reg.finishing = 0;
            reg.runs.drain().collect()
        };
        for (_, local) in all {
            local.abort.abort();
        }
        self.inner.slot_freed.notify_waiters();
    }
}

#[async_trait]
impl JobExecutor for TokioExecutor {
    fn spawn(&self, claimed: ClaimedRun, job: Arc<dyn Job>) {
        let inner = self.inner.clone();
        let queue = crate::metrics::queue_of(&claimed.run);
        let span = crate::trace::run_span(&claimed, &queue, &inner.node.instance_id);
        let run = claimed.run;
        if inner.closed.load(Ordering::SeqCst) {
            // Claimed while the node was shutting down: the job never ran, so the entry
            // goes back untouched.
            let req = Finalize {
                run_id: run.id,
                outcome: Outcome::standard(FailureKind::NotStarted),
                backoff: inner.backoff,
            };
            self.inner.rt.spawn(
                async move {
                    let result = inner.finalize(req).await;
                    crate::metrics::failed_if_won(&run, FailureKind::NotStarted, &result);
                    tracing::warn!(?result, "run claimed during shutdown; not started");
                }
                .instrument(span),
            );
            return;
        }
        crate::metrics::run_started(&run, claimed.entry_run_at);
        let cancel = Cancellation::new();
        let ends_on_cancel = job.ends_on_cancel();
        let run_id = run.id;
        let ctx = JobContext {
            context: run.context,
            job_run_identifier: run.job_run_identifier,
            retry: run.retry,
            max_retries: claimed.max_retries,
            run_id,
            template: run.template,
            cancellation: cancel.clone(),
        };
        // Hold the lock across the spawn, so the task's guard cannot remove the entry
        // before it is inserted.
        let mut reg = self.inner.lock();
        let guard = SlotGuard {
            inner: inner.clone(),
            run: run_id,
        };
        let task = inner
            .rt
            .spawn(execute(inner.clone(), guard, job, ctx, queue.clone()).instrument(span));
        reg.runs.insert(
            run_id,
            LocalRun {
                abort: task.abort_handle(),
                cancel,
                state: LocalState::Running,
                ends_on_cancel,
                queue,
            },
        );
    }

    /// Aborts the run's job if it is still running. False when no job of that run runs
    /// here: none at all, one already aborted, or one that has returned (its outcome is
    /// being recorded). The slot stays taken until the task has really ended.
    fn abort(&self, run: RunId) -> bool {
        Inner::abort_running(&mut self.inner.lock(), run)
    }

    /// The runs whose jobs are running here (not yet returned, not aborted).
    fn running(&self) -> Vec<RunId> {
        Inner::running_ids(&self.inner.lock())
    }

    fn free_slots(&self) -> usize {
        self.inner.free_slots()
    }

    /// Stops accepting work, waits up to `grace` for running jobs, then aborts those
    /// still running and returns their run ids (the caller finalizes them). A job that
    /// has returned is not aborted and not returned: its own outcome, already queued,
    /// is the run's ([`TokioExecutor::wait_idle`] waits for it to be recorded).
    async fn shutdown(&self, grace: Duration) -> Vec<RunId> {
        self.shutdown_runs(grace)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }
}

/// One job: run it, catch a panic, finalize the outcome, log one line.
async fn execute(
    inner: Arc<Inner>,
    guard: SlotGuard,
    job: Arc<dyn Job>,
    ctx: JobContext,
    queue: String,
) {
    let run_id = ctx.run_id;
    let started = std::time::Instant::now();
    let result = AssertUnwindSafe(job.run(ctx)).catch_unwind().await;
    let ran = started.elapsed();
    if !inner.job_returned(run_id) {
        // Aborted as it returned: whoever aborted it finalizes the run.
        return;
    }
    let outcome = match result {
        Ok(Ok(output)) => Outcome::succeeded(output),
        Ok(Err(e)) => Outcome::failed(e.kind(), e.message()),
        Err(panic) => Outcome::failed(FailureKind::Panic, panic_message(panic.as_ref())),
    };
    crate::metrics::run_duration(&queue, &outcome, ran);
    let log = outcome.clone();
    let req = Finalize {
        run_id,
        outcome,
        backoff: inner.backoff,
    };
    let result = inner.finalize(req).await;
    drop(guard);
    if result.as_ref().is_ok_and(|r| r.won) {
        crate::metrics::run_finished(&queue, &log);
    }
    match (log, result) {
        (_, Ok(r)) if !r.won => tracing::info!(
            "job finished after its run was ended elsewhere; its outcome changes nothing"
        ),
        (Outcome::Succeeded { .. }, Ok(r)) => tracing::info!(entry = ?r.entry, "job succeeded"),
        (Outcome::Failed { kind, reason }, Ok(r)) => {
            tracing::warn!(?kind, %reason, entry = ?r.entry, "job failed")
        }
        (outcome, Err(e)) => tracing::error!(
            ?outcome,
            error = %e,
            "could not record the job's outcome; the run will time out or expire"
        ),
    }
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        format!("panic: {s}")
    } else if let Some(s) = payload.downcast_ref::<String>() {
        format!("panic: {s}")
    } else {
        String::from("panic (no message)")
    }
}

/// Collects finalizes and sends them to the store in batches, one round trip at a time.
async fn run_finalizer(store: Arc<dyn JobStore>, mut rx: mpsc::UnboundedReceiver<PendingFinalize>) {
    let mut batch = Vec::with_capacity(FINALIZE_BATCH);
    while rx.recv_many(&mut batch, FINALIZE_BATCH).await > 0 {
        let (reqs, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.req, p.reply)).unzip();
        let results = finalize_batch(&*store, reqs).await;
        for (reply, result) in replies.into_iter().zip(results) {
            let _ = reply.send(result);
        }
    }
}

/// `finalize_many`, retried while the store is unavailable. Any other error falls back
/// to finalizing one by one, so one bad request cannot fail the others.
pub(crate) async fn finalize_batch(
    store: &dyn JobStore,
    reqs: Vec<Finalize>,
) -> Vec<Result<FinalizeResult, StoreError>> {
    let mut pause = RETRY_FIRST;
    loop {
        let result = store.finalize_many(reqs.clone()).await;
        if let Err(e) = &result {
            crate::metrics::store_error("finalize", e);
        }
        match result {
            Ok(results) => return results.into_iter().map(Ok).collect(),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, runs = reqs.len(), "finalize failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            Err(e) if reqs.len() == 1 => return vec![Err(e)],
            Err(e) => {
                tracing::warn!(error = %e, "batched finalize failed; finalizing one by one");
                let mut out = Vec::with_capacity(reqs.len());
                for req in reqs {
                    out.push(finalize_one(store, req).await);
                }
                return out;
            }
        }
    }
}

/// One finalize, retried while the store is unavailable.
pub(crate) async fn finalize_one(
    store: &dyn JobStore,
    req: Finalize,
) -> Result<FinalizeResult, StoreError> {
    let mut pause = RETRY_FIRST;
    loop {
        let result = store.finalize(req.clone()).await;
        if let Err(e) = &result {
            crate::metrics::store_error("finalize", e);
        }
        match result {
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, run_id = req.run_id, "finalize failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bildad_core::{ClaimRequest, JobError, MemoryStore, NewEntry, NewTemplate};
    use serde_json::{Value, json};

    /// A job that ends by itself once cancelled, as an isolated job does: it reports the
    /// cancellation, then returns when the test lets it (its child "reaped").
    struct EndsOnCancel {
        saw_cancel: mpsc::UnboundedSender<()>,
        reaped: Arc<Notify>,
    }

    #[async_trait]
    impl Job for EndsOnCancel {
        async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
            ctx.cancellation.cancelled().await;
            let _ = self.saw_cancel.send(());
            self.reaped.notified().await;
            Err(JobError::msg("killed"))
        }

        fn ends_on_cancel(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_job_that_ends_on_cancel_is_not_dropped_and_keeps_its_slot_until_it_returns() {
        let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
        let schema = json!({"type": "object"});
        store
            .create_template(NewTemplate::new("t", "t", "t.job", schema))
            .await
            .unwrap();
        store.enqueue(NewEntry::new("t", json!({}))).await.unwrap();
        let node = NodeRef::new("n");
        store.heartbeat(&node).await.unwrap();
        let claimed = store
            .claim(ClaimRequest {
                node: node.clone(),
                job_types: vec!["t.job".into()],
                limit: 1,
                expiry_grace: Duration::from_secs(60),
                only_identifier: None,
                queues: None,
                queue_caps: Default::default(),
            })
            .await
            .unwrap()
            .remove(0);
        let run = claimed.run.id;
        let executor = TokioExecutor::new(store, node, Backoff::immediate(), 1);
        let (tx, mut saw_cancel) = mpsc::unbounded_channel();
        let reaped = Arc::new(Notify::new());
        let job = EndsOnCancel {
            saw_cancel: tx,
            reaped: reaped.clone(),
        };
        executor.spawn(claimed, Arc::new(job));

        assert!(executor.abort(run));
        // Not dropped: the job itself sees the cancellation and goes on.
        saw_cancel
            .recv()
            .await
            .expect("the job saw its cancellation");
        assert!(executor.running().is_empty());
        assert_eq!(
            executor.running_count(),
            1,
            "the slot is held until it returns"
        );
        assert_eq!(executor.free_slots(), 0);
        reaped.notify_one();
        assert!(executor.wait_idle(Duration::from_secs(30)).await);
        assert_eq!(executor.free_slots(), 1);
    }
}
