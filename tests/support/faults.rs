//! `FaultyStore`: a `JobStore` that delegates to another and injects faults on demand
//! (an unavailable database for finalizes, a claim that reports another job type).

use async_trait::async_trait;
use bildad_core::{
    ClaimRequest, ClaimedRun, EntryStatus, Finalize, FinalizeResult, JobRun, JobStore, JobTemplate,
    NewEntry, NewTemplate, Node, NodeRef, Page, PageRequest, QueueEntry, QueueStats, RemoveResult,
    RunFilter, RunId, RunRef, StopResult, StoreError, StoreResult, TemplateFilter, TemplatePatch,
    Timestamp,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Delegates every call to `inner`, except where a fault is switched on.
pub struct FaultyStore {
    inner: Arc<dyn JobStore>,
    /// While true, `finalize` and `finalize_many` fail with `Unavailable`.
    pub finalize_unavailable: AtomicBool,
    /// Finalize calls refused while unavailable.
    pub refused_finalizes: AtomicU64,
    /// When set, claimed runs report this job type (as if the template changed under
    /// the claim).
    pub claim_job_type: Mutex<Option<String>>,
}

impl FaultyStore {
    /// A pass-through wrapper of `inner`.
    pub fn new(inner: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            finalize_unavailable: AtomicBool::new(false),
            refused_finalizes: AtomicU64::new(0),
            claim_job_type: Mutex::new(None),
        })
    }

    fn check_finalize(&self) -> StoreResult<()> {
        if self.finalize_unavailable.load(Ordering::SeqCst) {
            self.refused_finalizes.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Unavailable("injected outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl JobStore for FaultyStore {
    async fn ping(&self) -> StoreResult<()> {
        self.inner.ping().await
    }
    async fn now(&self) -> StoreResult<Timestamp> {
        self.inner.now().await
    }
    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate> {
        self.inner.create_template(new).await
    }
    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate> {
        self.inner.get_template(code).await
    }
    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate> {
        self.inner.update_template(code, patch).await
    }
    async fn delete_template(&self, code: &str) -> StoreResult<()> {
        self.inner.delete_template(code).await
    }
    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>> {
        self.inner.list_templates(filter, page).await
    }
    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry> {
        self.inner.enqueue(new).await
    }
    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>> {
        self.inner.enqueue_many(new).await
    }
    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry> {
        self.inner.get_entry(identifier).await
    }
    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>> {
        self.inner.entry_position(identifier).await
    }
    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        self.inner.list_entries(status, page).await
    }
    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult> {
        self.inner.remove_entry(identifier).await
    }
    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult> {
        self.inner.stop_entry(identifier).await
    }
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
        let mut claimed = self.inner.claim(req).await?;
        let rename = self
            .claim_job_type
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(job_type) = rename {
            for c in &mut claimed {
                c.run.job_type = job_type.clone();
            }
        }
        Ok(claimed)
    }
    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult> {
        self.check_finalize()?;
        self.inner.finalize(req).await
    }
    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>> {
        self.check_finalize()?;
        self.inner.finalize_many(reqs).await
    }
    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>> {
        self.inner.runs_to_kill(node).await
    }
    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>> {
        self.inner.runs_to_expire(node_dead_after).await
    }
    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
        self.inner.runs_finalized(runs).await
    }
    async fn get_run(&self, id: RunId) -> StoreResult<JobRun> {
        self.inner.get_run(id).await
    }
    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>> {
        self.inner.list_runs(filter, page).await
    }
    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64> {
        self.inner.prune_runs(older_than).await
    }
    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()> {
        self.inner.heartbeat(node).await
    }
    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()> {
        self.inner.node_stopped(instance_id).await
    }
    async fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        self.inner.list_nodes().await
    }
    async fn stats(&self) -> StoreResult<QueueStats> {
        self.inner.stats().await
    }
}
