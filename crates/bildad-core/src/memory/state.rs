//! `MemoryStore`'s state behind its one lock, and the steps that more than one call
//! takes on it: ids, the clock, lookups, and the one conditional finalize.

use crate::fate::{EntryAction, RetryState, entry_action};
use crate::model::{
    EntryId, EntryStatus, JobRun, JobTemplate, Node, Page, PageRequest, QueueEntry, RunId,
    RunStatus, Timestamp,
};
use crate::{EntryFate, Finalize, FinalizeResult, RunRef};
use chrono::Utc;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Default)]
pub(super) struct State {
    pub(super) next_id: i64,
    pub(super) last_now: Option<Timestamp>,
    pub(super) templates: BTreeMap<i64, JobTemplate>,
    pub(super) entries: BTreeMap<EntryId, QueueEntry>,
    pub(super) runs: BTreeMap<RunId, JobRun>,
    pub(super) nodes: HashMap<String, Node>,
    /// Per entry, its runs that do not count against `max_retries` (see
    /// [`RetryState::uncounted_runs`]); absent for none.
    pub(super) uncounted_runs: HashMap<EntryId, i32>,
    /// Queue settings by name (SPEC §8); a queue without them has the defaults.
    pub(super) queues: BTreeMap<String, crate::queues::QueueSettings>,
    /// Unique keys by key (see `unique.rs`).
    pub(super) unique_keys: HashMap<String, super::unique::UniqueKey>,
    /// Per entry, the trace context it was enqueued with (absent for none).
    pub(super) trace_contexts: HashMap<EntryId, String>,
    /// Schedules by name (SPEC §9).
    pub(super) schedules: BTreeMap<String, crate::Schedule>,
}

impl State {
    pub(super) fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    /// A strictly increasing clock, so `updated_at` always changes on update.
    pub(super) fn now(&mut self) -> Timestamp {
        let mut t = Utc::now();
        if let Some(last) = self.last_now.filter(|last| t <= *last) {
            t = last + chrono::Duration::microseconds(1);
        }
        self.last_now = Some(t);
        t
    }

    pub(super) fn template_by_code(&self, code: &str) -> Option<&JobTemplate> {
        self.templates.values().find(|t| t.code == code)
    }

    pub(super) fn entry_id_by_identifier(&self, identifier: &str) -> Option<EntryId> {
        self.entries
            .values()
            .find(|e| e.job_run_identifier == identifier)
            .map(|e| e.id)
    }

    pub(super) fn identifier_taken(&self, identifier: &str) -> bool {
        self.entry_id_by_identifier(identifier).is_some()
            || self
                .runs
                .values()
                .any(|r| r.job_run_identifier == identifier)
    }

    /// The one conditional step of SPEC §2.4.
    pub(super) fn finalize(&mut self, req: &Finalize) -> FinalizeResult {
        let now = self.now();
        let lost = FinalizeResult {
            run_id: req.run_id,
            won: false,
            entry: EntryFate::Untouched,
        };
        let Some(run) = self.runs.get_mut(&req.run_id) else {
            return lost;
        };
        if run.status != RunStatus::Running {
            return lost;
        }
        run.status = RunStatus::Done;
        run.ended_at = Some(now);
        let end = req.outcome.run_end();
        run.result = Some(end.result);
        run.reason = end.reason;
        run.output = end.output;
        let (retry, run_id) = (run.retry, run.id);
        let entry_id = self
            .entries
            .values()
            .find(|e| e.current_run_id == Some(run_id))
            .map(|e| e.id);
        let Some(entry_id) = entry_id else {
            return FinalizeResult {
                run_id,
                won: true,
                entry: EntryFate::Deleted,
            };
        };
        let state = RetryState {
            retry,
            uncounted_runs: self.uncounted_runs.get(&entry_id).copied().unwrap_or(0),
            max_retries: self.entries[&entry_id].max_retries,
        };
        let requeue_at = match entry_action(req, state) {
            EntryAction::Delete => None,
            EntryAction::Requeue { delay, counted } => {
                if !counted {
                    *self.uncounted_runs.entry(entry_id).or_default() += 1;
                }
                Some(now + chrono::Duration::from_std(delay).unwrap_or_default())
            }
        };
        let entry = match requeue_at {
            None => {
                self.entries.remove(&entry_id);
                self.uncounted_runs.remove(&entry_id);
                EntryFate::Deleted
            }
            Some(run_at) => {
                let e = self.entries.get_mut(&entry_id).expect("entry exists");
                e.status = EntryStatus::Available;
                e.current_run_id = None;
                e.run_at = run_at;
                e.updated_at = now;
                EntryFate::Requeued { run_at }
            }
        };
        FinalizeResult {
            run_id,
            won: true,
            entry,
        }
    }

    pub(super) fn run_ref(r: &JobRun) -> RunRef {
        RunRef {
            run_id: r.id,
            job_run_identifier: r.job_run_identifier.clone(),
            retry: r.retry,
            node: r.node.clone(),
            queue: r.queue.clone(),
        }
    }
}

pub(super) fn run_order(e: &QueueEntry) -> (i32, Timestamp, EntryId) {
    (e.priority, e.inserted_at, e.id)
}

pub(super) fn paginate<T: Clone>(all: Vec<T>, page: PageRequest) -> Page<T> {
    let total = all.len() as u64;
    let items = all
        .into_iter()
        .skip(page.offset() as usize)
        .take(page.limit as usize)
        .collect();
    Page::new(items, total, page)
}
