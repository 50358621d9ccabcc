//! `MemoryStore`'s enqueue: the rules of SPEC §2.1 and the insert, under the store's
//! one lock (shared by `enqueue_many` and the schedules' evaluation).

use super::MemoryStore;
use super::state::State;
use crate::error::{StoreError, StoreResult};
use crate::model::{EntryStatus, QueueEntry};
use crate::{DEFAULT_PRIORITY, NewEntry};

impl MemoryStore {
    /// The enqueue of SPEC §2.1 under the lock the caller holds: all of `new` or
    /// nothing. The caller wakes the listeners once it released the lock.
    pub(super) fn insert_entries(
        &self,
        st: &mut State,
        new: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        let mut v = Vec::new();
        let mut prepared = Vec::with_capacity(new.len());
        for (i, n) in new.iter().enumerate() {
            if let Some(p) = self.prepare(st, n, &format!("/{i}"), &mut v) {
                prepared.push(p);
            }
        }
        if !v.is_empty() {
            return Err(StoreError::Invalid(v));
        }
        let mut seen = std::collections::HashSet::new();
        for (_, identifier) in &prepared {
            if st.identifier_taken(identifier) || !seen.insert(identifier.clone()) {
                return Err(StoreError::Conflict(format!(
                    "job_run_identifier {identifier:?} is already used"
                )));
            }
        }
        let now = st.now();
        let identifiers: Vec<&str> = prepared.iter().map(|(_, i)| i.as_str()).collect();
        st.take_unique_keys(&new, &identifiers, now)?;
        let mut out = Vec::with_capacity(new.len());
        for (n, (t, identifier)) in new.into_iter().zip(prepared) {
            let id = st.id();
            let e = QueueEntry {
                id,
                job_run_identifier: identifier,
                template: t.code.clone(),
                status: EntryStatus::Available,
                priority: n.priority.unwrap_or(DEFAULT_PRIORITY),
                timeout_seconds: n.timeout_seconds.unwrap_or(t.default_timeout_seconds),
                max_retries: n.max_retries.unwrap_or(t.default_max_retries),
                context: n.context,
                run_at: n
                    .run_at
                    .or_else(|| {
                        n.run_in
                            .map(|d| now + chrono::Duration::from_std(d).unwrap_or_default())
                    })
                    .unwrap_or(now),
                attempts: 0,
                current_run_id: None,
                inserted_at: now,
                updated_at: now,
                queue: n.queue.unwrap_or_else(|| t.queue.clone()),
            };
            st.entries.insert(id, e.clone());
            st.trace_contexts.extend(n.trace_context.map(|c| (id, c)));
            out.push(e);
        }
        Ok(out)
    }
}
