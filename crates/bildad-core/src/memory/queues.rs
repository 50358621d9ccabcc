//! `MemoryStore`'s queues (SPEC §8): settings by name, the counts the API shows, and the
//! room each queue leaves a claim (under the store's one lock, so racing claims cannot
//! both take a queue's last slot).

use super::state::State;
use crate::ClaimRequest;
use crate::error::{StoreError, StoreResult};
use crate::model::{EntryId, EntryStatus, RunStatus, Timestamp};
use crate::queues::{QueueInfo, QueuePatch, QueueSettings, claim_room, serves};
use std::collections::{BTreeSet, HashMap};

impl State {
    /// The stored settings of `name`, or the defaults.
    fn settings(&self, name: &str) -> QueueSettings {
        self.queues
            .get(name)
            .cloned()
            .unwrap_or_else(|| QueueSettings::new(name))
    }

    /// `name`'s settings and counts.
    pub(super) fn queue_info(&self, name: &str, now: Timestamp) -> QueueInfo {
        let mut info = QueueInfo {
            settings: self.settings(name),
            available: 0,
            scheduled: 0,
            running: 0,
        };
        for e in self.entries.values().filter(|e| e.queue == name) {
            match (e.status, e.run_at <= now) {
                (EntryStatus::Running, _) => info.running += 1,
                (EntryStatus::Available, true) => info.available += 1,
                (EntryStatus::Available, false) => info.scheduled += 1,
            }
        }
        info
    }

    /// Every queue that has settings or entries, by name.
    pub(super) fn list_queues(&self, now: Timestamp) -> Vec<QueueInfo> {
        let names: BTreeSet<&str> = self
            .queues
            .keys()
            .map(String::as_str)
            .chain(self.entries.values().map(|e| e.queue.as_str()))
            .collect();
        names.into_iter().map(|n| self.queue_info(n, now)).collect()
    }

    /// A queue read by name: `NotFound` when it has neither settings nor entries.
    pub(super) fn get_queue(&self, name: &str, now: Timestamp) -> StoreResult<QueueInfo> {
        crate::queues::check_queue_name(name)?;
        let known =
            self.queues.contains_key(name) || self.entries.values().any(|e| e.queue == name);
        if !known {
            return Err(StoreError::NotFound(format!("queue {name:?}")));
        }
        Ok(self.queue_info(name, now))
    }

    /// Applies `patch` to `name`'s settings (creating them).
    pub(super) fn update_queue(
        &mut self,
        name: &str,
        patch: &QueuePatch,
        now: Timestamp,
    ) -> StoreResult<QueueInfo> {
        patch.validate(name)?;
        let settings = patch.apply(self.settings(name));
        self.queues.insert(name.to_owned(), settings);
        Ok(self.queue_info(name, now))
    }

    /// Of `picked` (entries in run order), those a claim may take: of queues `req`
    /// serves, at most the room each queue's settings and the node's local cap leave,
    /// at most `req.limit` in all.
    pub(super) fn within_queue_rooms(
        &self,
        req: &ClaimRequest,
        now: Timestamp,
        picked: impl IntoIterator<Item = EntryId>,
    ) -> Vec<EntryId> {
        let mut rooms: HashMap<String, Option<u64>> = HashMap::new();
        let mut out = Vec::new();
        for id in picked {
            if out.len() >= req.limit as usize {
                break;
            }
            let queue = &self.entries[&id].queue;
            if !serves(req.queues.as_deref(), queue) {
                continue;
            }
            let room = rooms
                .entry(queue.clone())
                .or_insert_with(|| claim_room(&req.queue_caps, queue, self.room(queue, now)));
            match room {
                Some(0) => continue,
                Some(n) => *n -= 1,
                None => {}
            }
            out.push(id);
        }
        out
    }

    /// The room `queue`'s settings leave: its running runs and, for a rate limit, the
    /// runs that started in the window ending now.
    fn room(&self, queue: &str, now: Timestamp) -> Option<u64> {
        let s = self.queues.get(queue)?;
        let running = self
            .runs
            .values()
            .filter(|r| r.queue == queue && r.status == RunStatus::Running)
            .count() as u64;
        let started = s.rate_limit.map_or(0, |r| {
            let since = now - chrono::Duration::seconds(i64::from(r.period_seconds));
            self.runs
                .values()
                .filter(|x| x.queue == queue && x.started_at > since)
                .count() as u64
        });
        s.room(running, started)
    }
}
