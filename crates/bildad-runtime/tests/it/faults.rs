//! `Faults`: a `JobStore` over another one that can be switched off (every call
//! `Unavailable`, as in a database outage) and can hold or fail one chosen call, so that
//! a test reaches an interleaving on purpose instead of by timing.

use async_trait::async_trait;
use bildad_core::{
    Cancellation, ClaimRequest, ClaimedRun, EnqueueListener, EntryFilter, EntryStatus, Finalize,
    FinalizeResult, JobRun, JobStore, JobTemplate, NewEntry, NewTemplate, Node, NodeRef, Page,
    PageRequest, QueueEntry, QueueStats, RemoveResult, RunActivity, RunFilter, RunId, RunRef,
    StopResult, StoreError, StoreResult, TemplateFilter, TemplatePatch, Timestamp,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The calls a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Claim,
    FinalizeMany,
    GetTemplate,
    Heartbeat,
    Other,
}

/// What a fault does to its call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Waits for the gate before the call reaches the store.
    HoldBefore,
    /// Lets the call do its work, then waits for the gate before answering.
    HoldAfter,
    /// Fails the call as `Unavailable` without reaching the store.
    Fail,
}

/// A held call: `entered` is set once it is held; it goes on once `open` is set.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gate {
    pub(crate) entered: Cancellation,
    pub(crate) open: Cancellation,
}

struct Fault {
    op: Op,
    /// How many matching calls go by untouched first.
    skip: usize,
    act: Act,
    gate: Gate,
}

pub(crate) struct Faults {
    inner: Arc<dyn JobStore>,
    down: AtomicBool,
    /// The nodes whose heartbeat was refused while down.
    refused_heartbeats: Mutex<Vec<String>>,
    faults: Mutex<Vec<Fault>>,
}

impl Faults {
    pub(crate) fn new(inner: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            down: AtomicBool::new(false),
            refused_heartbeats: Mutex::default(),
            faults: Mutex::new(Vec::new()),
        })
    }

    /// Starts (true) or ends (false) an outage: every call fails `Unavailable`.
    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// True once a heartbeat of `instance_id` was refused by an outage.
    pub(crate) fn refused_heartbeat(&self, instance_id: &str) -> bool {
        self.refused_heartbeats
            .lock()
            .unwrap()
            .iter()
            .any(|n| n == instance_id)
    }

    /// Applies `act` to the call of `op` after `skip` others went by (once).
    pub(crate) fn inject(&self, op: Op, skip: usize, act: Act) -> Gate {
        let gate = Gate::default();
        self.faults.lock().unwrap().push(Fault {
            op,
            skip,
            act,
            gate: gate.clone(),
        });
        gate
    }

    /// The fault this call of `op` meets, if any (it is used up).
    fn meet(&self, op: Op) -> Option<(Act, Gate)> {
        let mut faults = self.faults.lock().unwrap();
        let i = faults.iter().position(|f| f.op == op)?;
        if faults[i].skip > 0 {
            faults[i].skip -= 1;
            return None;
        }
        let f = faults.remove(i);
        Some((f.act, f.gate))
    }

    async fn call<T>(&self, op: Op, work: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected outage".into()));
        }
        let fault = self.meet(op);
        let hold = |gate: Gate| async move {
            gate.entered.cancel();
            gate.open.cancelled().await;
        };
        match fault {
            Some((Act::Fail, _)) => Err(StoreError::Unavailable("injected failure".into())),
            Some((Act::HoldBefore, gate)) => {
                hold(gate).await;
                work.await
            }
            Some((Act::HoldAfter, gate)) => {
                let out = work.await;
                hold(gate).await;
                out
            }
            None => work.await,
        }
    }
}

#[async_trait]
impl JobStore for Faults {
    async fn ping(&self) -> StoreResult<()> {
        self.call(Op::Other, self.inner.ping()).await
    }
    async fn now(&self) -> StoreResult<Timestamp> {
        self.call(Op::Other, self.inner.now()).await
    }
    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate> {
        self.call(Op::Other, self.inner.create_template(new)).await
    }
    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate> {
        self.call(Op::GetTemplate, self.inner.get_template(code))
            .await
    }
    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate> {
        self.call(Op::Other, self.inner.update_template(code, patch))
            .await
    }
    async fn delete_template(&self, code: &str) -> StoreResult<()> {
        self.call(Op::Other, self.inner.delete_template(code)).await
    }
    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>> {
        self.call(Op::Other, self.inner.list_templates(filter, page))
            .await
    }
    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry> {
        self.call(Op::Other, self.inner.enqueue(new)).await
    }
    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>> {
        self.call(Op::Other, self.inner.enqueue_many(new)).await
    }
    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry> {
        self.call(Op::Other, self.inner.get_entry(identifier)).await
    }
    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>> {
        self.call(Op::Other, self.inner.entry_position(identifier))
            .await
    }
    async fn list_entries_where(
        &self,
        filter: EntryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        self.call(Op::Other, self.inner.list_entries_where(filter, page))
            .await
    }
    async fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity> {
        self.call(Op::Other, self.inner.run_activity(since, bucket))
            .await
    }
    async fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
        self.call(Op::Other, self.inner.listen_for_enqueues()).await
    }
    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        self.call(Op::Other, self.inner.list_entries(status, page))
            .await
    }
    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult> {
        self.call(Op::Other, self.inner.remove_entry(identifier))
            .await
    }
    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult> {
        self.call(Op::Other, self.inner.stop_entry(identifier))
            .await
    }
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
        self.call(Op::Claim, self.inner.claim(req)).await
    }
    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult> {
        self.call(Op::Other, self.inner.finalize(req)).await
    }
    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>> {
        self.call(Op::FinalizeMany, self.inner.finalize_many(reqs))
            .await
    }
    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>> {
        self.call(Op::Other, self.inner.runs_to_kill(node)).await
    }
    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>> {
        self.call(Op::Other, self.inner.runs_to_expire(node_dead_after))
            .await
    }
    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
        self.call(Op::Other, self.inner.runs_finalized(runs)).await
    }
    async fn get_run(&self, id: RunId) -> StoreResult<JobRun> {
        self.call(Op::Other, self.inner.get_run(id)).await
    }
    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>> {
        self.call(Op::Other, self.inner.list_runs(filter, page))
            .await
    }
    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64> {
        self.call(Op::Other, self.inner.prune_runs(older_than))
            .await
    }
    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()> {
        if self.down.load(Ordering::SeqCst) {
            let mut refused = self.refused_heartbeats.lock().unwrap();
            refused.push(node.instance_id.clone());
        }
        self.call(Op::Heartbeat, self.inner.heartbeat(node)).await
    }
    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()> {
        self.call(Op::Other, self.inner.node_stopped(instance_id))
            .await
    }
    async fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        self.call(Op::Other, self.inner.list_nodes()).await
    }
    async fn stats(&self) -> StoreResult<QueueStats> {
        self.call(Op::Other, self.inner.stats()).await
    }
}
