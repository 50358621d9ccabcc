//! A store that can be taken down (every call `Unavailable`) or made to hang.

use async_trait::async_trait;
use bildad_core::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Wraps a store; `set(Mode)` changes how every later call behaves.
pub(crate) struct FlakyStore {
    inner: Arc<dyn JobStore>,
    mode: AtomicU8,
}

/// How calls behave.
#[derive(Clone, Copy)]
#[repr(u8)]
pub(crate) enum Mode {
    Up = 0,
    Down = 1,
    Hang = 2,
    Broken = 3,
}

impl FlakyStore {
    pub(crate) fn new(inner: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            mode: AtomicU8::new(0),
        })
    }

    pub(crate) fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    async fn gate(&self) -> StoreResult<()> {
        match self.mode.load(Ordering::SeqCst) {
            0 => Ok(()),
            1 => Err(StoreError::Unavailable("connection refused (test)".into())),
            2 => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }
            _ => Err(StoreError::Database(
                "relation \"secret_table\" does not exist".into(),
            )),
        }
    }
}

macro_rules! delegate {
    ($( fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty; )+) => {
        #[async_trait]
        impl JobStore for FlakyStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.gate().await?;
                    self.inner.$name($($arg),*).await
                }
            )+
        }
    };
}

delegate! {
    fn ping(&self) -> StoreResult<()>;
    fn now(&self) -> StoreResult<Timestamp>;
    fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate>;
    fn get_template(&self, code: &str) -> StoreResult<JobTemplate>;
    fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate>;
    fn delete_template(&self, code: &str) -> StoreResult<()>;
    fn list_templates(&self, filter: TemplateFilter, page: PageRequest) -> StoreResult<Page<JobTemplate>>;
    fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry>;
    fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>>;
    fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry>;
    fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>>;
    fn list_entries(&self, status: Option<EntryStatus>, page: PageRequest) -> StoreResult<Page<QueueEntry>>;
    fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult>;
    fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult>;
    fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>>;
    fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult>;
    fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>>;
    fn runs_to_expire(&self, node_dead_after: std::time::Duration) -> StoreResult<Vec<RunRef>>;
    fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>>;
    fn get_run(&self, id: RunId) -> StoreResult<JobRun>;
    fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>>;
    fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64>;
    fn heartbeat(&self, node: &NodeRef) -> StoreResult<()>;
    fn node_stopped(&self, instance_id: &str) -> StoreResult<()>;
    fn list_nodes(&self) -> StoreResult<Vec<Node>>;
    fn stats(&self) -> StoreResult<QueueStats>;
}
