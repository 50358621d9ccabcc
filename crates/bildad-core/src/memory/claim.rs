//! `MemoryStore`'s claim (SPEC §2, §8): the due entries of the node's job types in
//! run order, within each queue's room, each started as a `RUNNING` run, under the
//! store's one lock.

use super::state::{State, run_order};
use crate::model::{EntryStatus, JobRun, RunStatus};
use crate::{ClaimRequest, ClaimedRun};

impl State {
    /// Claims for `req`: the runs it started (none when nothing is due or has room).
    pub(super) fn claim(&mut self, req: &ClaimRequest) -> Vec<ClaimedRun> {
        let now = self.now();
        let mut picked: Vec<_> = self
            .entries
            .values()
            .filter(|e| e.status == EntryStatus::Available)
            .filter(|e| match &req.only_identifier {
                Some(id) => &e.job_run_identifier == id,
                None => e.run_at <= now,
            })
            .filter(|e| {
                self.template_by_code(&e.template)
                    .is_some_and(|t| req.job_types.contains(&t.job_type))
            })
            .map(|e| (run_order(e), e.id))
            .collect();
        picked.sort();
        let picked = self.within_queue_rooms(req, now, picked.into_iter().map(|(_, id)| id));
        let grace = chrono::Duration::from_std(req.expiry_grace).unwrap_or_default();
        let mut out = Vec::with_capacity(picked.len());
        for entry_id in picked {
            let run_id = self.id();
            let e = self.entries[&entry_id].clone();
            let t = self
                .template_by_code(&e.template)
                .expect("template")
                .clone();
            let timeout_at = now + chrono::Duration::seconds(i64::from(e.timeout_seconds));
            let run = JobRun {
                id: run_id,
                job_run_identifier: e.job_run_identifier.clone(),
                template: t.code.clone(),
                job_type: t.job_type.clone(),
                retry: e.attempts,
                process_name: format!(
                    "{}/{}/{}",
                    req.node.instance_id, e.job_run_identifier, e.attempts
                ),
                node: req.node.instance_id.clone(),
                node_name: req.node.name.clone(),
                status: RunStatus::Running,
                result: None,
                reason: None,
                context: e.context.clone(),
                output: None,
                started_at: now,
                timeout_at,
                expires_at: timeout_at + grace,
                ended_at: None,
                queue: e.queue.clone(),
            };
            self.runs.insert(run_id, run.clone());
            let entry = self.entries.get_mut(&entry_id).expect("entry");
            entry.status = EntryStatus::Running;
            entry.current_run_id = Some(run_id);
            entry.attempts += 1;
            entry.updated_at = now;
            out.push(ClaimedRun {
                run,
                max_retries: e.max_retries,
                template_id: t.id,
                template_updated_at: t.updated_at,
                entry_run_at: e.run_at,
                trace_context: self.trace_contexts.get(&entry_id).cloned(),
            });
        }
        out
    }
}
