//! `FaultStore`: the one fault-injecting `JobStore` of the tests. It wraps a real store,
//! delegates every call to it, and fails (or hangs) the calls a test names.
//!
//! The delegation is written once, by the `fault_store!` macro below, from the list of the
//! trait's methods: a method added to `JobStore` is added to that list, and every test
//! that injects faults gets it.

use async_trait::async_trait;
use bildad_core::{
    ClaimRequest, ClaimedRun, EnqueueListener, EntryFilter, EntryStatus, Finalize, FinalizeResult,
    JobRun, JobStore, JobTemplate, NewEntry, NewTemplate, Node, NodeRef, Page, PageRequest,
    QueueEntry, QueueStats, RemoveResult, RunActivity, RunFilter, RunId, RunRef, StopResult,
    StoreError, StoreResult, TemplateFilter, TemplatePatch, Timestamp,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What a faulty call does instead of reaching the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Fails with `Unavailable`, as when the database cannot be reached (transient).
    Unavailable,
    /// Never answers, as a hung connection.
    Hang,
    /// Fails with a permanent `Database` error whose text names a table (the text must
    /// never reach an API client).
    Broken,
}

#[derive(Default)]
struct Faults {
    every_call: Option<Fault>,
    calls: HashMap<Call, Fault>,
    claimed_job_type: Option<String>,
}

/// Wraps a store; every call goes through to it unless a fault is set for that call.
pub struct FaultStore {
    inner: Arc<dyn JobStore>,
    faults: Mutex<Faults>,
    injected: AtomicU64,
}

impl FaultStore {
    /// A pass-through wrapper of `inner` (no fault set).
    pub fn new(inner: Arc<dyn JobStore>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            faults: Mutex::default(),
            injected: AtomicU64::new(0),
        })
    }

    /// From now on every call meets `fault`.
    pub fn fail_every_call(&self, fault: Fault) {
        self.faults().every_call = Some(fault);
    }

    /// From now on the calls in `calls` meet `fault` (the others go through).
    pub fn fail(&self, calls: &[Call], fault: Fault) {
        let mut faults = self.faults();
        for call in calls {
            faults.calls.insert(*call, fault);
        }
    }

    /// Clears every fault: all calls go through again.
    pub fn heal(&self) {
        *self.faults() = Faults::default();
    }

    /// From now on the runs a claim returns report `job_type` (as if the template's job
    /// type changed under the claim); `None` stops it.
    pub fn claims_report_job_type(&self, job_type: Option<&str>) {
        self.faults().claimed_job_type = job_type.map(str::to_string);
    }

    /// How many calls met a fault so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn gate(&self, call: Call) -> StoreResult<()> {
        let fault = {
            let faults = self.faults();
            faults
                .every_call
                .or_else(|| faults.calls.get(&call).copied())
        };
        let Some(fault) = fault else {
            return Ok(());
        };
        self.injected.fetch_add(1, Ordering::SeqCst);
        match fault {
            Fault::Unavailable => Err(StoreError::Unavailable(
                "connection refused (injected fault)".into(),
            )),
            Fault::Hang => std::future::pending().await,
            Fault::Broken => Err(StoreError::Database(
                "relation \"secret_table\" does not exist".into(),
            )),
        }
    }

    fn rename_claimed(
        &self,
        claimed: StoreResult<Vec<ClaimedRun>>,
    ) -> StoreResult<Vec<ClaimedRun>> {
        let mut claimed = claimed?;
        if let Some(job_type) = self.faults().claimed_job_type.clone() {
            for c in &mut claimed {
                c.run.job_type = job_type.clone();
            }
        }
        Ok(claimed)
    }
}

impl std::fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultStore")
            .field("injected", &self.injected())
            .finish_non_exhaustive()
    }
}

/// Writes [`Call`] and `impl JobStore for FaultStore` from one list of the trait's
/// methods: each call passes the gate, then goes to the inner store (and, with
/// `then f`, its answer through `self.f`).
macro_rules! fault_store {
    ($( $call:ident => fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty $(, then $post:ident)?; )+) => {
        /// A method of `JobStore`, to name the calls a fault applies to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Call {
            $(
                #[doc = concat!("`JobStore::", stringify!($name), "`.")]
                $call,
            )+
        }

        #[async_trait]
        impl JobStore for FaultStore {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> $ret {
                    self.gate(Call::$call).await?;
                    let answer = self.inner.$name($($arg),*).await;
                    $( let answer = self.$post(answer); )?
                    answer
                }
            )+
        }
    };
}

fault_store! {
    Ping => fn ping(&self) -> StoreResult<()>;
    Now => fn now(&self) -> StoreResult<Timestamp>;
    CreateTemplate => fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate>;
    GetTemplate => fn get_template(&self, code: &str) -> StoreResult<JobTemplate>;
    UpdateTemplate => fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate>;
    DeleteTemplate => fn delete_template(&self, code: &str) -> StoreResult<()>;
    ListTemplates => fn list_templates(&self, filter: TemplateFilter, page: PageRequest) -> StoreResult<Page<JobTemplate>>;
    Enqueue => fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry>;
    EnqueueMany => fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>>;
    GetEntry => fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry>;
    EntryPosition => fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>>;
    ListEntries => fn list_entries(&self, status: Option<EntryStatus>, page: PageRequest) -> StoreResult<Page<QueueEntry>>;
    ListEntriesWhere => fn list_entries_where(&self, filter: EntryFilter, page: PageRequest) -> StoreResult<Page<QueueEntry>>;
    RemoveEntry => fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult>;
    StopEntry => fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult>;
    Claim => fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>>, then rename_claimed;
    Finalize => fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult>;
    FinalizeMany => fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>>;
    RunsToKill => fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>>;
    RunsToExpire => fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>>;
    RunsFinalized => fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>>;
    GetRun => fn get_run(&self, id: RunId) -> StoreResult<JobRun>;
    ListRuns => fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>>;
    RunActivity => fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity>;
    PruneRuns => fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64>;
    Heartbeat => fn heartbeat(&self, node: &NodeRef) -> StoreResult<()>;
    NodeStopped => fn node_stopped(&self, instance_id: &str) -> StoreResult<()>;
    ListNodes => fn list_nodes(&self) -> StoreResult<Vec<Node>>;
    Stats => fn stats(&self) -> StoreResult<QueueStats>;
    ListenForEnqueues => fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>>;
}

impl Call {
    /// Both ways a run is finalized: [`Call::Finalize`] and [`Call::FinalizeMany`].
    pub const FINALIZES: &[Call] = &[Call::Finalize, Call::FinalizeMany];
}

#[cfg(test)]
mod tests {
    use super::*;
    use bildad_core::{MemoryStore, Outcome};

    fn run(f: impl std::future::Future<Output = ()>) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f);
    }

    #[test]
    fn a_fault_applies_to_the_calls_named_until_healed() {
        run(async {
            let store = FaultStore::new(Arc::new(MemoryStore::new()));
            store.fail(Call::FINALIZES, Fault::Unavailable);
            let finalize = Finalize {
                run_id: 1,
                outcome: Outcome::succeeded(None),
                backoff: bildad_core::Backoff::immediate(),
            };
            let e = store.finalize(finalize.clone()).await.unwrap_err();
            assert!(e.is_transient(), "{e:?}");
            let e = store.finalize_many(vec![finalize]).await.unwrap_err();
            assert!(e.is_transient(), "{e:?}");
            store.ping().await.expect("other calls go through");
            assert_eq!(store.injected(), 2);
            store.fail_every_call(Fault::Broken);
            assert!(!store.ping().await.unwrap_err().is_transient());
            store.heal();
            store.ping().await.expect("healed");
            assert_eq!(store.injected(), 3);
        });
    }
}
