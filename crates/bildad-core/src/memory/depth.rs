//! `MemoryStore`'s queue depths: its entries counted per queue as the SQL stores' grouped
//! query counts them.

use super::state::State;
use crate::depth::{DepthPart, QueueDepth, merge_depths};
use crate::model::EntryStatus;

impl State {
    /// See [`crate::JobStore::queue_depths`].
    pub(super) fn queue_depths(&mut self) -> Vec<QueueDepth> {
        let now = self.now();
        let parts = self.entries.values().map(|e| {
            let mut p = DepthPart {
                queue: e.queue.clone(),
                ..DepthPart::default()
            };
            match e.status {
                EntryStatus::Running => p.running = 1,
                EntryStatus::Available if e.run_at <= now => {
                    p.available = 1;
                    p.oldest_available = Some(e.run_at);
                }
                EntryStatus::Available => p.scheduled = 1,
            }
            p
        });
        merge_depths(parts.collect::<Vec<_>>(), now)
    }
}
