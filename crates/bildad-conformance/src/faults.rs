//! `FaultStore`: the one fault-injecting `JobStore` of the tests. It wraps a real store,
//! delegates every call to it, and fails (or hangs) the calls a test names: standing
//! faults until healed, and one-shot faults that fail or hold one chosen call so that a
//! test reaches an interleaving on purpose instead of by timing.
//!
//! The delegation is written once, by the `fault_store!` macro below, from the list of the
//! trait's methods: a method added to `JobStore` is added to that list, and every test
//! that injects faults gets it.

use async_trait::async_trait;
use bildad_core::{
    Cancellation, ClaimRequest, ClaimedRun, EnqueueListener, EntryFilter, EntryStatus, Finalize,
    FinalizeResult, JobRun, JobStore, JobTemplate, NewEntry, NewTemplate, Node, NodeRef, Page,
    PageRequest, QueueEntry, QueueStats, RemoveResult, RunActivity, RunFilter, RunId, RunRef,
    StopResult, StoreError, StoreResult, TemplateFilter, TemplatePatch, Timestamp,
};
use bildad_core::{EvaluateSchedules, NewSchedule, Schedule, ScheduleEvaluation, SchedulePatch};
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

/// What a one-shot fault ([`FaultStore::once`]) does to the call it meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Once {
    /// Fails the call with `Unavailable` without reaching the store.
    Fail,
    /// Holds the call before it reaches the store, until [`Hold::release`].
    HoldBefore,
    /// Lets the call do its work, then holds its answer until [`Hold::release`].
    HoldAfter,
}

/// A call held by a one-shot fault.
#[derive(Debug, Clone, Default)]
pub struct Hold {
    entered: Cancellation,
    open: Cancellation,
}

impl Hold {
    /// Waits until the call is being held.
    pub async fn entered(&self) {
        self.entered.cancelled().await;
    }

    /// True once the call is being held.
    pub fn is_entered(&self) -> bool {
        self.entered.is_cancelled()
    }

    /// Lets the held call go on (also before it arrives: then it is not held).
    pub fn release(&self) {
        self.open.cancel();
    }

    async fn hold(&self) {
        self.entered.cancel();
        self.open.cancelled().await;
    }
}

struct OnceFault {
    call: Call,
    skip: usize,
    act: Once,
    hold: Hold,
}

#[derive(Default)]
struct Faults {
    every_call: Option<Fault>,
    calls: HashMap<Call, Fault>,
    once: Vec<OnceFault>,
    claimed_job_type: Option<String>,
    refused: Vec<(Call, String)>,
}

impl Faults {
    /// The standing fault of `call`, else the one-shot fault it meets (used up).
    fn meet(&mut self, call: Call) -> (Option<Fault>, Option<(Once, Hold)>) {
        if let Some(f) = self.every_call.or_else(|| self.calls.get(&call).copied()) {
            return (Some(f), None);
        }
        let Some(i) = self.once.iter().position(|f| f.call == call) else {
            return (None, None);
        };
        if self.once[i].skip > 0 {
            self.once[i].skip -= 1;
            return (None, None);
        }
        let f = self.once.remove(i);
        (None, Some((f.act, f.hold)))
    }
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

    /// Ends [`FaultStore::fail_every_call`] (the end of an outage); the faults set for
    /// particular calls stay.
    pub fn stop_failing_every_call(&self) {
        self.faults().every_call = None;
    }

    /// From now on the calls in `calls` meet `fault` (the others go through).
    pub fn fail(&self, calls: &[Call], fault: Fault) {
        let mut faults = self.faults();
        for call in calls {
            faults.calls.insert(*call, fault);
        }
    }

    /// The call of kind `call` that comes after `skip` others of its kind meets `act`,
    /// once. Returns the [`Hold`] that a held call waits on.
    pub fn once(&self, call: Call, skip: usize, act: Once) -> Hold {
        let hold = Hold::default();
        self.faults().once.push(OnceFault {
            call,
            skip,
            act,
            hold: hold.clone(),
        });
        hold
    }

    /// Clears every fault (standing, one-shot, claimed job type): all calls go through
    /// again. The record of refused calls is kept.
    pub fn heal(&self) {
        let mut faults = self.faults();
        let refused = std::mem::take(&mut faults.refused);
        *faults = Faults {
            refused,
            ..Faults::default()
        };
    }

    /// What the refused calls of kind `call` were about, in order (the node instance of
    /// a heartbeat, the code of a template, the identifier of an entry; empty text for
    /// calls about nothing in particular).
    pub fn refused(&self, call: Call) -> Vec<String> {
        let faults = self.faults();
        let about = faults.refused.iter().filter(|(c, _)| *c == call);
        about.map(|(_, subject)| subject.clone()).collect()
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

    /// Applies the fault `call` meets: `Err` for a failure, waits for a hold before, and
    /// returns the hold to wait on after the store answered.
    async fn gate(&self, call: Call, subject: String) -> StoreResult<Option<Hold>> {
        let (standing, once) = self.faults().meet(call);
        if standing.is_some() || matches!(once, Some((Once::Fail, _))) {
            self.injected.fetch_add(1, Ordering::SeqCst);
            self.faults().refused.push((call, subject));
        }
        match (standing, once) {
            (Some(Fault::Unavailable), _) => Err(StoreError::Unavailable(
                "connection refused (injected fault)".into(),
            )),
            (Some(Fault::Hang), _) => std::future::pending().await,
            (Some(Fault::Broken), _) => Err(StoreError::Database(
                "relation \"secret_table\" does not exist".into(),
            )),
            (None, Some((Once::Fail, _))) => Err(StoreError::Unavailable(
                "connection refused (injected fault)".into(),
            )),
            (None, Some((Once::HoldBefore, hold))) => {
                hold.hold().await;
                Ok(None)
            }
            (None, Some((Once::HoldAfter, hold))) => Ok(Some(hold)),
            (None, None) => Ok(None),
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
/// methods: each call passes the gate (`about` names what a refused call was about),
/// goes to the inner store, waits on a hold after, and with `then f` passes its answer
/// through `self.f`.
macro_rules! fault_store {
    ($( $call:ident => fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty
        $(, about $about:expr)? $(, then $post:ident)?; )+) => {
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
                    let about = [String::new() $(, $about.to_string())?].concat();
                    let after = self.gate(Call::$call, about).await?;
                    let answer = self.inner.$name($($arg),*).await;
                    if let Some(hold) = after {
                        hold.hold().await;
                    }
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
    GetTemplate => fn get_template(&self, code: &str) -> StoreResult<JobTemplate>, about code;
    UpdateTemplate => fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate>, about code;
    DeleteTemplate => fn delete_template(&self, code: &str) -> StoreResult<()>, about code;
    ListTemplates => fn list_templates(&self, filter: TemplateFilter, page: PageRequest) -> StoreResult<Page<JobTemplate>>;
    Enqueue => fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry>;
    EnqueueMany => fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>>;
    GetEntry => fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry>, about identifier;
    EntryPosition => fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>>, about identifier;
    ListEntries => fn list_entries(&self, status: Option<EntryStatus>, page: PageRequest) -> StoreResult<Page<QueueEntry>>;
    ListEntriesWhere => fn list_entries_where(&self, filter: EntryFilter, page: PageRequest) -> StoreResult<Page<QueueEntry>>;
    RemoveEntry => fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult>, about identifier;
    StopEntry => fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult>, about identifier;
    Claim => fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>>, about req.node.instance_id, then rename_claimed;
    Finalize => fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult>, about req.run_id;
    FinalizeMany => fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>>;
    RunsToKill => fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>>, about node;
    RunsToExpire => fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>>;
    RunsFinalized => fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>>;
    MarkKilled => fn mark_killed(&self, run: RunId) -> StoreResult<bool>, about run;
    GetRun => fn get_run(&self, id: RunId) -> StoreResult<JobRun>, about id;
    ListRuns => fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>>;
    RunActivity => fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity>;
    PruneRuns => fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64>;
    Heartbeat => fn heartbeat(&self, node: &NodeRef) -> StoreResult<()>, about node.instance_id;
    NodeStopped => fn node_stopped(&self, instance_id: &str) -> StoreResult<()>, about instance_id;
    ListNodes => fn list_nodes(&self) -> StoreResult<Vec<Node>>;
    Stats => fn stats(&self) -> StoreResult<QueueStats>;
    ListenForEnqueues => fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>>;
    QueueDepths => fn queue_depths(&self) -> StoreResult<Vec<bildad_core::QueueDepth>>;
    CreateSchedule => fn create_schedule(&self, new: NewSchedule) -> StoreResult<Schedule>;
    GetSchedule => fn get_schedule(&self, name: &str) -> StoreResult<Schedule>, about name;
    ListSchedules => fn list_schedules(&self, page: PageRequest) -> StoreResult<Page<Schedule>>;
    UpdateSchedule => fn update_schedule(&self, name: &str, patch: SchedulePatch) -> StoreResult<Schedule>, about name;
    DeleteSchedule => fn delete_schedule(&self, name: &str) -> StoreResult<()>, about name;
    EvaluateSchedules => fn evaluate_schedules(&self, req: EvaluateSchedules) -> StoreResult<ScheduleEvaluation>;
    RewindSchedule => fn rewind_schedule(&self, name: &str, from: Timestamp) -> StoreResult<Schedule>, about name;
    ListQueues => fn list_queues(&self) -> StoreResult<Vec<bildad_core::QueueInfo>>;
    GetQueue => fn get_queue(&self, name: &str) -> StoreResult<bildad_core::QueueInfo>, about name;
    UpdateQueue => fn update_queue(&self, name: &str, patch: bildad_core::QueuePatch) -> StoreResult<bildad_core::QueueInfo>, about name;
}

impl Call {
    /// Both ways a run is finalized: [`Call::Finalize`] and [`Call::FinalizeMany`].
    pub const FINALIZES: &[Call] = &[Call::Finalize, Call::FinalizeMany];
}

#[cfg(test)]
mod tests {
    use super::*;
    use bildad_core::{MemoryStore, NodeRef, Outcome};

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
            store.stop_failing_every_call();
            store.ping().await.expect("the outage is over");
            assert!(
                store.finalize_many(vec![]).await.is_err(),
                "finalizes still fail"
            );
            store.heal();
            store.ping().await.expect("healed");
            assert_eq!(store.injected(), 4);
        });
    }

    #[test]
    fn a_one_shot_fault_meets_one_call_after_the_skipped_ones() {
        run(async {
            let store = FaultStore::new(Arc::new(MemoryStore::new()));
            store.once(Call::Ping, 1, Once::Fail);
            store.ping().await.expect("skipped");
            assert!(store.ping().await.unwrap_err().is_transient());
            store.ping().await.expect("used up");
            assert_eq!(store.refused(Call::Ping), vec![String::new()]);
        });
    }

    #[test]
    fn a_held_call_waits_for_its_release() {
        run(async {
            let store = FaultStore::new(Arc::new(MemoryStore::new()));
            let before = store.once(Call::Heartbeat, 0, Once::HoldBefore);
            let node = NodeRef::new("held");
            let held = {
                let (store, node) = (store.clone(), node.clone());
                tokio::spawn(async move { store.heartbeat(&node).await })
            };
            before.entered().await;
            assert!(store.list_nodes().await.unwrap().is_empty(), "held before");
            before.release();
            held.await.unwrap().expect("released");
            assert_eq!(store.list_nodes().await.unwrap().len(), 1);

            let after = store.once(Call::Heartbeat, 0, Once::HoldAfter);
            let other = NodeRef::new("held-after");
            let held = {
                let (store, other) = (store.clone(), other.clone());
                tokio::spawn(async move { store.heartbeat(&other).await })
            };
            after.entered().await;
            assert_eq!(
                store.list_nodes().await.unwrap().len(),
                2,
                "done, answer held"
            );
            assert!(!held.is_finished());
            after.release();
            held.await.unwrap().expect("released");
        });
    }

    #[test]
    fn refused_calls_say_what_they_were_about() {
        run(async {
            let store = FaultStore::new(Arc::new(MemoryStore::new()));
            store.fail_every_call(Fault::Unavailable);
            let node = NodeRef::new("down");
            store.heartbeat(&node).await.unwrap_err();
            store.heal();
            store.heartbeat(&node).await.expect("healed");
            assert_eq!(store.refused(Call::Heartbeat), vec![node.instance_id]);
        });
    }
}
