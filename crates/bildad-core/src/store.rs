//! `JobStore`: the storage contract every backend implements.

use crate::error::StoreResult;
use crate::model::{
    EntryFilter, EntryStatus, JobRun, JobTemplate, Node, NodeRef, Page, PageRequest, QueueEntry,
    QueueStats, RunActivity, RunFilter, RunId, TemplateFilter, Timestamp,
};
use crate::schedule::{
    EvaluateSchedules, NewSchedule, Schedule, ScheduleEvaluation, SchedulePatch,
};
use crate::{
    ClaimRequest, ClaimedRun, Finalize, FinalizeResult, NewEntry, NewTemplate, RemoveResult,
    RunRef, StopResult, TemplatePatch,
};
use async_trait::async_trait;
use std::time::Duration;

/// The storage contract: everything the engine, the killer, the HTTP API and a
/// dashboard need. Used as `Arc<dyn JobStore>` across crate boundaries.
///
/// Every method either does all it says or, returning an error, changes nothing.
/// Every timestamp comes from the store's clock (the database's `now()`), never from
/// the caller's (SPEC §2.8).
///
/// # Who calls what
///
/// One trait, implemented in full by every store (no default bodies: a store answers
/// each method itself, and a wrapper delegates each one). Its callers are of two kinds
/// (docs/ARCHITECTURE.md, "One storage contract"):
///
/// - **An application** — and, on its behalf, the HTTP API, the dashboard and the CLI:
///   the templates ([`create_template`](JobStore::create_template) …
///   [`list_templates`](JobStore::list_templates)), the queue
///   ([`enqueue`](JobStore::enqueue), [`enqueue_many`](JobStore::enqueue_many),
///   [`get_entry`](JobStore::get_entry), [`entry_position`](JobStore::entry_position),
///   [`list_entries`](JobStore::list_entries),
///   [`list_entries_where`](JobStore::list_entries_where)), the operator's actions
///   ([`stop_entry`](JobStore::stop_entry), [`remove_entry`](JobStore::remove_entry)),
///   the history ([`get_run`](JobStore::get_run), [`list_runs`](JobStore::list_runs),
///   [`run_activity`](JobStore::run_activity), [`prune_runs`](JobStore::prune_runs)),
///   [`list_nodes`](JobStore::list_nodes), [`stats`](JobStore::stats), and the health
///   checks [`ping`](JobStore::ping) and [`now`](JobStore::now).
/// - **The engine and the killer** (`bildad-runtime`), never an application: the
///   methods marked *Engine and killer only* — [`claim`](JobStore::claim),
///   [`finalize`](JobStore::finalize), [`finalize_many`](JobStore::finalize_many),
///   [`runs_to_kill`](JobStore::runs_to_kill), [`runs_to_expire`](JobStore::runs_to_expire),
///   [`runs_finalized`](JobStore::runs_finalized), [`mark_killed`](JobStore::mark_killed),
///   [`heartbeat`](JobStore::heartbeat),
///   [`node_stopped`](JobStore::node_stopped) and
///   [`listen_for_enqueues`](JobStore::listen_for_enqueues). They take, end and look
///   for run leases and record a node's liveness; an application that called them would
///   race its own nodes. (The engine also reads templates and enqueues, as an
///   application does.)
///
/// The conformance suite in `bildad-conformance` checks an implementation against
/// every rule of SPEC §2 that lives in the store; a custom store runs it with one line.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    // --- health ---------------------------------------------------------------

    /// Succeeds when the database answers. `Unavailable` otherwise.
    async fn ping(&self) -> StoreResult<()>;

    /// The database clock.
    async fn now(&self) -> StoreResult<Timestamp>;

    // --- templates ------------------------------------------------------------

    /// Creates a template. `Invalid` (every violation, the schema's included) or
    /// `Conflict` (duplicate code).
    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate>;

    /// The template with `code`. `NotFound` otherwise.
    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate>;

    /// Applies the present fields of `patch` and bumps `updated_at`. `NotFound`, `Invalid`.
    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate>;

    /// Deletes a template. `NotFound`; `Conflict` while queue entries use it (runs keep
    /// their template code as history and do not block).
    async fn delete_template(&self, code: &str) -> StoreResult<()>;

    /// Templates by `display_order`, then `code`.
    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>>;

    // --- queue ----------------------------------------------------------------

    /// Enqueues one entry (SPEC §2.1): the template exists and is active, the context
    /// satisfies its schema (`Invalid` naming every violation), the identifier is new —
    /// not used by an entry nor by any run in the history (`Conflict`, the existing entry
    /// untouched).
    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry>;

    /// Enqueues many entries in one round trip, all or nothing. Violations point at
    /// `/<index>/...`.
    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>>;

    /// The entry with this identifier. `NotFound`.
    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry>;

    /// The entry's place in the run order among `AVAILABLE` entries (1 = next to run),
    /// or `None` while it is running. `NotFound`.
    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>>;

    /// Entries in run order (`priority`, `inserted_at`, `id`), optionally of one status.
    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>>;

    /// Entries in run order, narrowed by `filter` (status and template), with the total
    /// of matching entries (the dashboard's queue page).
    async fn list_entries_where(
        &self,
        filter: EntryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>>;

    /// Deletes the entry; a running run ends `FAILED`/`Removed` (SPEC §2.7). `NotFound`.
    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult>;

    /// Ends the current run `FAILED`/`Stopped` and returns the entry to `AVAILABLE`
    /// now (SPEC §2.7). `NotFound`; `Conflict` when the entry is not running.
    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult>;

    // --- claim and finalize: engine and killer only ----------------------------

    /// Atomically claims up to `limit` available entries (`run_at <= now`, job type in
    /// `job_types`), in run order, and creates their runs (SPEC §2.2–2.3). Two claims at
    /// once never take the same entry.
    ///
    /// *Engine and killer only.*
    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>>;

    /// The one conditional step that ends a run (SPEC §2.4). Exactly one finalize of a
    /// run wins; a loser returns `won: false` and changes nothing.
    ///
    /// *Engine and killer only.*
    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult>;

    /// Many finalizes in one round trip; each is decided as by [`JobStore::finalize`]
    /// (a loser changes nothing and does not stop the others). Results are in the order
    /// of `reqs`.
    ///
    /// *Engine and killer only.*
    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>>;

    /// Runs of node instance `node` still `RUNNING` past `timeout_at` (SPEC §2.5).
    ///
    /// *Engine and killer only.*
    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>>;

    /// Runs still `RUNNING` past `expires_at`, or whose node's last heartbeat is older
    /// than `node_dead_after` (or that stopped cleanly) (SPEC §2.6).
    ///
    /// *Engine and killer only.*
    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>>;

    /// Of `runs`, those that are no longer `RUNNING` (finalized elsewhere, or pruned).
    ///
    /// *Engine and killer only.*
    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>>;

    /// Records that the process of run `run` was killed (`SIGKILL`) after the run ended:
    /// a run `FAILED` with a reason of [`crate::HARD_KILL_REASONS`] (`Timeout`,
    /// `Stopped`, ...) gets [`crate::KILLED_SUFFIX`] appended (`Timeout (killed)`). True
    /// when it changed the run; any other run (running, succeeded, failed with a job's
    /// own reason, already marked, unknown) is left alone and gives false.
    ///
    /// *Engine and killer only.*
    async fn mark_killed(&self, run: RunId) -> StoreResult<bool>;

    // --- history --------------------------------------------------------------

    /// One run. `NotFound`.
    async fn get_run(&self, id: RunId) -> StoreResult<JobRun>;

    /// Runs, newest first (`started_at` descending, then `id` descending).
    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>>;

    /// `DONE` runs that **started** at or after `since`, counted by result and by the
    /// `bucket` of time in which they ended (bucket 0 starts at `since`): the dashboard's
    /// overview. `complete` is false when the store stopped counting early (see
    /// [`RunActivity::complete`]).
    async fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity>;

    /// Deletes `DONE` runs that ended before `older_than`; returns how many.
    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64>;

    // --- nodes ----------------------------------------------------------------

    /// Records that `node` is alive now (creating its row on first call).
    ///
    /// *Engine and killer only.*
    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()>;

    /// Records that node instance `instance_id` shut down cleanly.
    ///
    /// *Engine and killer only.*
    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()>;

    /// Known node instances, latest heartbeat first.
    async fn list_nodes(&self) -> StoreResult<Vec<Node>>;

    /// Queue and history counts.
    async fn stats(&self) -> StoreResult<QueueStats>;

    // --- wake-ups: engine only ----------------------------------------------------

    /// Subscribes to wake-ups on enqueue, for stores that can push them: PostgreSQL
    /// (LISTEN/NOTIFY, from every node on the database), SQLite and `MemoryStore` (in
    /// process, [`LocalEnqueueSignal`]). `Ok(None)`: this store cannot push; the node
    /// polls instead (a custom store without push says so explicitly).
    ///
    /// The runtime uses it when `NodeConfig::wake_on_enqueue` is set, to start an engine
    /// pass the moment an entry is enqueued anywhere instead of at the next cron request
    /// or tick. A wake-up is a hint: the claim that follows decides what runs.
    ///
    /// *Engine and killer only.*
    async fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>>;

    // --- metrics ----------------------------------------------------------------

    /// Per queue, in queue-name order, its entries available now, scheduled for later and
    /// running, and the age of its oldest available entry, all at one instant of the
    /// database clock (the cluster's gauges, docs/OBSERVABILITY.md). One grouped query:
    /// a scrape of the metrics endpoint costs no more. Queues with no entry are absent.
    async fn queue_depths(&self) -> StoreResult<Vec<crate::depth::QueueDepth>>;

    // --- schedules (SPEC §9) ----------------------------------------------------

    /// Saves a schedule whose first fire time is the first after now. `Invalid` (name,
    /// cron, time zone, options; the template must exist and be active and the context
    /// satisfy its schema, as for an enqueue) or `Conflict` (the name is taken).
    async fn create_schedule(&self, new: NewSchedule) -> StoreResult<Schedule>;

    /// The schedule named `name`. `NotFound`.
    async fn get_schedule(&self, name: &str) -> StoreResult<Schedule>;

    /// Schedules by name.
    async fn list_schedules(&self, page: PageRequest) -> StoreResult<Page<Schedule>>;

    /// Applies the present fields of `patch`, checked as by
    /// [`create_schedule`](JobStore::create_schedule); a new cron or time zone, or an
    /// activation, moves `next_fire_at` to the first fire time after now. `NotFound`,
    /// `Invalid`.
    async fn update_schedule(&self, name: &str, patch: SchedulePatch) -> StoreResult<Schedule>;

    /// Deletes a schedule (its entries and runs stay). `NotFound`.
    async fn delete_schedule(&self, name: &str) -> StoreResult<()>;

    /// Enqueues the due fire times of active schedules (SPEC §9), reading only the due
    /// ones. Per schedule, in one transaction: the advance of `last_fire_at` and
    /// `next_fire_at`, guarded by the `next_fire_at` it read (compare-and-set), and the
    /// entries `schedule:<name>:<fire time>`. Of evaluations racing on any number of
    /// nodes, exactly one wins each fire time; the others change nothing (`lost`).
    /// The fire times are planned by [`crate::firing::Firing::plan`].
    ///
    /// *Engine and killer only* (the scheduler of every node).
    async fn evaluate_schedules(&self, req: EvaluateSchedules) -> StoreResult<ScheduleEvaluation>;

    /// **Tests only**: moves the schedule's clock so that its next fire time is the
    /// first after `from` (a past or future instant), as if it had been saved then.
    /// With [`EvaluateSchedules::at`] it lets a test walk through any day without
    /// waiting. `NotFound`.
    async fn rewind_schedule(&self, name: &str, from: Timestamp) -> StoreResult<Schedule>;

    // --- queues (SPEC §8) ---------------------------------------------------------

    /// Every queue that has settings or entries (waiting or running), by name, with its
    /// settings and counts.
    async fn list_queues(&self) -> StoreResult<Vec<crate::QueueInfo>>;

    /// One queue. `Invalid` name; `NotFound` when it has neither settings nor entries.
    async fn get_queue(&self, name: &str) -> StoreResult<crate::QueueInfo>;

    /// Applies `patch` to the queue's settings (creating them), for every node at once:
    /// the next claim anywhere obeys them. `Invalid` (changes nothing).
    async fn update_queue(
        &self,
        name: &str,
        patch: crate::QueuePatch,
    ) -> StoreResult<crate::QueueInfo>;
}

/// Wake-ups a store pushes when entries are enqueued (see
/// [`JobStore::listen_for_enqueues`]).
#[async_trait]
pub trait EnqueueListener: Send {
    /// Waits until entries were enqueued since the previous call returned (several
    /// enqueues may give one wake-up) and returns `true`; returns `false` once the
    /// listener is gone (its connection was lost): subscribe again, and expect that
    /// enqueues in between gave no wake-up.
    async fn wait(&mut self) -> bool;
}

/// In-process wake-ups on enqueue, for stores whose enqueues all go through one instance
/// (`MemoryStore`; `SqliteStore`, the single embedded node): the store calls
/// [`LocalEnqueueSignal::notify`] after an enqueue commits and hands out
/// [`LocalEnqueueSignal::listener`]s. Clones share one signal.
#[derive(Debug, Clone, Default)]
pub struct LocalEnqueueSignal {
    inner: std::sync::Arc<LocalSignalInner>,
}

#[derive(Debug, Default)]
struct LocalSignalInner {
    seq: std::sync::atomic::AtomicU64,
    event: event_listener::Event,
}

impl LocalEnqueueSignal {
    /// Wakes every listener (entries were enqueued).
    pub fn notify(&self) {
        self.inner
            .seq
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    /// A listener that wakes for enqueues notified after this call.
    pub fn listener(&self) -> Box<dyn EnqueueListener> {
        Box::new(LocalListener {
            seen: self.inner.seq.load(std::sync::atomic::Ordering::SeqCst),
            signal: self.clone(),
        })
    }
}

struct LocalListener {
    signal: LocalEnqueueSignal,
    seen: u64,
}

#[async_trait]
impl EnqueueListener for LocalListener {
    async fn wait(&mut self) -> bool {
        loop {
            let listener = self.signal.inner.event.listen();
            let now = self
                .signal
                .inner
                .seq
                .load(std::sync::atomic::Ordering::SeqCst);
            if now != self.seen {
                self.seen = now;
                return true;
            }
            listener.await;
        }
    }
}
