//! `MemoryStore`: a `JobStore` in process memory, for users' unit tests.
//!
//! It follows every rule of the contract (the conformance suite runs against it), with
//! one lock serialising all calls and the process clock standing in for the database's.
//! It is not durable and not shared between processes: never a production store.

mod claim;
mod depth;
mod enqueue;
mod queues;
mod schedules;
mod state;
mod unique;

use crate::error::{StoreError, StoreResult, Violation};
use crate::model::{
    EntryFilter, EntryStatus, JobRun, JobTemplate, Node, NodeRef, Page, PageRequest, QueueEntry,
    QueueStats, RunActivity, RunFilter, RunId, RunResult, RunStatus, TemplateFilter, Timestamp,
};
use crate::schedule::{
    EvaluateSchedules, NewSchedule, Schedule, ScheduleEvaluation, SchedulePatch,
};
use crate::store::{EnqueueListener, JobStore, LocalEnqueueSignal};
use crate::validation::SchemaCache;
use crate::{
    ClaimRequest, ClaimedRun, Finalize, FinalizeResult, NewEntry, NewTemplate, Outcome,
    RemoveResult, RunRef, StopResult, TemplatePatch,
};
use async_trait::async_trait;
use state::{State, paginate, run_order};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A `JobStore` in memory. Cheap to create: one per test.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    schemas: SchemaCache,
    enqueued: LocalEnqueueSignal,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent state (every method mutates
        // only after all checks), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks one entry against the rules of SPEC §2.1 and builds it (without an id).
    fn prepare(
        &self,
        st: &State,
        new: &NewEntry,
        prefix: &str,
        v: &mut Vec<Violation>,
    ) -> Option<(JobTemplate, String)> {
        let t = self
            .schemas
            .check_entry(st.template_by_code(&new.template), new, prefix, v)?;
        let identifier = new
            .job_run_identifier
            .clone()
            .unwrap_or_else(crate::new_identifier);
        Some((t.clone(), identifier))
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn now(&self) -> StoreResult<Timestamp> {
        Ok(self.lock().now())
    }

    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate> {
        new.validate()?;
        let mut st = self.lock();
        if st.template_by_code(&new.code).is_some() {
            return Err(StoreError::Conflict(format!(
                "a template with code {:?} exists",
                new.code
            )));
        }
        let (id, now) = (st.id(), st.now());
        let t = JobTemplate {
            id,
            code: new.code,
            name: new.name,
            job_type: new.job_type,
            active: new.active,
            display_order: new.display_order,
            default_timeout_seconds: new.default_timeout_seconds,
            default_max_retries: new.default_max_retries,
            context_schema: new.context_schema,
            inserted_at: now,
            updated_at: now,
            queue: new.queue,
        };
        st.templates.insert(id, t.clone());
        Ok(t)
    }

    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate> {
        self.lock()
            .template_by_code(code)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("template {code:?}")))
    }

    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate> {
        patch.validate()?;
        let mut st = self.lock();
        let id = st
            .template_by_code(code)
            .map(|t| t.id)
            .ok_or_else(|| StoreError::NotFound(format!("template {code:?}")))?;
        let now = st.now();
        let t = st.templates.get_mut(&id).expect("template exists");
        if let Some(x) = patch.name {
            t.name = x;
        }
        if let Some(x) = patch.job_type {
            t.job_type = x;
        }
        if let Some(x) = patch.context_schema {
            t.context_schema = x;
        }
        if let Some(x) = patch.active {
            t.active = x;
        }
        if let Some(x) = patch.display_order {
            t.display_order = x;
        }
        if let Some(x) = patch.default_timeout_seconds {
            t.default_timeout_seconds = x;
        }
        if let Some(x) = patch.default_max_retries {
            t.default_max_retries = x;
        }
        if let Some(x) = patch.queue {
            t.queue = x;
        }
        t.updated_at = now;
        Ok(t.clone())
    }

    async fn delete_template(&self, code: &str) -> StoreResult<()> {
        let mut st = self.lock();
        let id = st
            .template_by_code(code)
            .map(|t| t.id)
            .ok_or_else(|| StoreError::NotFound(format!("template {code:?}")))?;
        if st.entries.values().any(|e| e.template == code) {
            return Err(StoreError::Conflict(format!(
                "template {code:?} has queue entries; remove them first"
            )));
        }
        st.templates.remove(&id);
        Ok(())
    }

    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>> {
        let st = self.lock();
        let mut all: Vec<_> = st
            .templates
            .values()
            .filter(|t| match filter {
                TemplateFilter::Active => t.active,
                TemplateFilter::Inactive => !t.active,
                TemplateFilter::All => true,
            })
            .cloned()
            .collect();
        all.sort_by(|a, b| (a.display_order, &a.code).cmp(&(b.display_order, &b.code)));
        Ok(paginate(all, page))
    }

    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry> {
        let mut out = self
            .enqueue_many(vec![new])
            .await
            .map_err(StoreError::for_single_entry)?;
        Ok(out.remove(0))
    }

    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>> {
        let out = self.insert_entries(&mut self.lock(), new)?;
        self.enqueued.notify();
        Ok(out)
    }

    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry> {
        let st = self.lock();
        st.entry_id_by_identifier(identifier)
            .map(|id| st.entries[&id].clone())
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {identifier:?}")))
    }

    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>> {
        let st = self.lock();
        let id = st
            .entry_id_by_identifier(identifier)
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {identifier:?}")))?;
        let me = &st.entries[&id];
        if me.status != EntryStatus::Available {
            return Ok(None);
        }
        let ahead = st
            .entries
            .values()
            .filter(|e| e.status == EntryStatus::Available && run_order(e) < run_order(me))
            .count() as u64;
        Ok(Some(ahead + 1))
    }

    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        let st = self.lock();
        let mut all: Vec<_> = st
            .entries
            .values()
            .filter(|e| status.is_none_or(|s| e.status == s))
            .cloned()
            .collect();
        all.sort_by_key(run_order);
        Ok(paginate(all, page))
    }

    async fn list_entries_where(
        &self,
        filter: EntryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        let st = self.lock();
        let mut all: Vec<_> = st
            .entries
            .values()
            .filter(|e| {
                filter.status.is_none_or(|s| e.status == s)
                    && filter.template.as_ref().is_none_or(|t| &e.template == t)
                    && filter.queue.as_ref().is_none_or(|q| &e.queue == q)
            })
            .cloned()
            .collect();
        all.sort_by_key(run_order);
        Ok(paginate(all, page))
    }

    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult> {
        let mut st = self.lock();
        let id = st
            .entry_id_by_identifier(identifier)
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {identifier:?}")))?;
        match st.entries[&id].current_run_id {
            Some(run_id) => {
                st.finalize(&Finalize {
                    run_id,
                    outcome: Outcome::standard(crate::FailureKind::Removed),
                    backoff: crate::Backoff::immediate(),
                });
                st.entries.remove(&id);
                st.uncounted_runs.remove(&id);
                Ok(RemoveResult {
                    stopped_run: Some(run_id),
                })
            }
            None => {
                st.entries.remove(&id);
                st.uncounted_runs.remove(&id);
                Ok(RemoveResult { stopped_run: None })
            }
        }
    }

    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult> {
        let mut st = self.lock();
        let id = st
            .entry_id_by_identifier(identifier)
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {identifier:?}")))?;
        let Some(run_id) = st.entries[&id].current_run_id else {
            return Err(StoreError::Conflict(format!(
                "queue entry {identifier:?} is not running"
            )));
        };
        st.finalize(&Finalize {
            run_id,
            outcome: Outcome::standard(crate::FailureKind::Stopped),
            backoff: crate::Backoff::immediate(),
        });
        Ok(StopResult {
            run_id,
            node: st.runs[&run_id].node.clone(),
        })
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
        Ok(self.lock().claim(&req))
    }

    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult> {
        Ok(self.lock().finalize(&req))
    }

    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>> {
        let mut st = self.lock();
        Ok(reqs.iter().map(|r| st.finalize(r)).collect())
    }

    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>> {
        let mut st = self.lock();
        let now = st.now();
        Ok(st
            .runs
            .values()
            .filter(|r| r.status == RunStatus::Running && r.node == node && r.timeout_at < now)
            .map(State::run_ref)
            .collect())
    }

    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>> {
        let mut st = self.lock();
        let now = st.now();
        let dead_before = now - chrono::Duration::from_std(node_dead_after).unwrap_or_default();
        let dead = |n: &str| {
            st.nodes
                .get(n)
                .is_some_and(|n| n.stopped_at.is_some() || n.last_heartbeat_at < dead_before)
        };
        Ok(st
            .runs
            .values()
            .filter(|r| r.status == RunStatus::Running && (r.expires_at < now || dead(&r.node)))
            .map(State::run_ref)
            .collect())
    }

    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
        let st = self.lock();
        Ok(runs
            .iter()
            .copied()
            .filter(|id| {
                st.runs
                    .get(id)
                    .is_none_or(|r| r.status != RunStatus::Running)
            })
            .collect())
    }

    async fn mark_killed(&self, run: RunId) -> StoreResult<bool> {
        let mut st = self.lock();
        let Some(r) = st.runs.get_mut(&run) else {
            return Ok(false);
        };
        let marked = (r.status == RunStatus::Done && r.result == Some(RunResult::Failed))
            .then(|| r.reason.as_deref().and_then(crate::killed_reason))
            .flatten();
        Ok(match marked {
            Some(reason) => {
                r.reason = Some(reason);
                true
            }
            None => false,
        })
    }

    async fn get_run(&self, id: RunId) -> StoreResult<JobRun> {
        self.lock()
            .runs
            .get(&id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound(format!("run {id}")))
    }

    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>> {
        let st = self.lock();
        let mut all: Vec<_> = st
            .runs
            .values()
            .filter(|r| {
                filter
                    .identifier
                    .as_ref()
                    .is_none_or(|i| &r.job_run_identifier == i)
                    && filter.status.is_none_or(|s| r.status == s)
                    && filter.result.is_none_or(|x| r.result == Some(x))
                    && filter.template.as_ref().is_none_or(|t| &r.template == t)
                    && filter
                        .node
                        .as_ref()
                        .is_none_or(|n| &r.node == n || &r.node_name == n)
                    && filter.queue.as_ref().is_none_or(|q| &r.queue == q)
            })
            .cloned()
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse((r.started_at, r.id)));
        Ok(paginate(all, page))
    }

    async fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity> {
        let st = self.lock();
        let mut activity = RunActivity {
            complete: true,
            ..RunActivity::default()
        };
        for r in st.runs.values().filter(|r| r.started_at >= since) {
            if let (RunStatus::Done, Some(result), Some(ended)) = (r.status, r.result, r.ended_at) {
                activity.record(result, ended - since, bucket);
            }
        }
        Ok(activity)
    }

    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64> {
        let mut st = self.lock();
        let now = st.now();
        st.prune_unique_keys(now);
        let before = st.runs.len();
        st.runs.retain(|_, r| {
            !(r.status == RunStatus::Done && r.ended_at.is_some_and(|t| t < older_than))
        });
        Ok((before - st.runs.len()) as u64)
    }

    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()> {
        let mut st = self.lock();
        let now = st.now();
        st.nodes
            .entry(node.instance_id.clone())
            .and_modify(|n| n.last_heartbeat_at = now)
            .or_insert_with(|| Node {
                instance_id: node.instance_id.clone(),
                name: node.name.clone(),
                started_at: now,
                last_heartbeat_at: now,
                stopped_at: None,
            });
        Ok(())
    }

    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()> {
        let mut st = self.lock();
        let now = st.now();
        if let Some(n) = st.nodes.get_mut(instance_id) {
            n.stopped_at = Some(now);
        }
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        let st = self.lock();
        let mut all: Vec<_> = st.nodes.values().cloned().collect();
        all.sort_by_key(|n| std::cmp::Reverse(n.last_heartbeat_at));
        Ok(all)
    }

    async fn create_schedule(&self, new: NewSchedule) -> StoreResult<Schedule> {
        self.schedule_create(new)
    }

    async fn get_schedule(&self, name: &str) -> StoreResult<Schedule> {
        self.schedule_get(name)
    }

    async fn list_schedules(&self, page: PageRequest) -> StoreResult<Page<Schedule>> {
        Ok(self.schedule_list(page))
    }

    async fn update_schedule(&self, name: &str, patch: SchedulePatch) -> StoreResult<Schedule> {
        self.schedule_update(name, patch)
    }

    async fn delete_schedule(&self, name: &str) -> StoreResult<()> {
        self.schedule_delete(name)
    }

    async fn evaluate_schedules(&self, req: EvaluateSchedules) -> StoreResult<ScheduleEvaluation> {
        self.schedule_evaluate(req)
    }

    async fn rewind_schedule(&self, name: &str, from: Timestamp) -> StoreResult<Schedule> {
        self.schedule_rewind(name, from)
    }

    async fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
        Ok(Some(self.enqueued.listener()))
    }

    async fn list_queues(&self) -> StoreResult<Vec<crate::QueueInfo>> {
        let mut st = self.lock();
        let now = st.now();
        Ok(st.list_queues(now))
    }

    async fn get_queue(&self, name: &str) -> StoreResult<crate::QueueInfo> {
        let mut st = self.lock();
        let now = st.now();
        st.get_queue(name, now)
    }

    async fn update_queue(
        &self,
        name: &str,
        p: crate::QueuePatch,
    ) -> StoreResult<crate::QueueInfo> {
        let mut st = self.lock();
        let now = st.now();
        st.update_queue(name, &p, now)
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        let mut st = self.lock();
        let now = st.now();
        let mut s = QueueStats {
            templates: st.templates.len() as u64,
            ..QueueStats::default()
        };
        for e in st.entries.values() {
            match e.status {
                EntryStatus::Running => s.running += 1,
                EntryStatus::Available if e.run_at <= now => s.available += 1,
                EntryStatus::Available => s.scheduled += 1,
            }
        }
        for r in st.runs.values() {
            match r.result {
                Some(RunResult::Succeeded) => s.succeeded += 1,
                Some(RunResult::Failed) => s.failed += 1,
                None => {}
            }
        }
        Ok(s)
    }

    async fn queue_depths(&self) -> StoreResult<Vec<crate::QueueDepth>> {
        Ok(self.lock().queue_depths())
    }
}
