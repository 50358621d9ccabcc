//! Queues in the throughput scenario (issue #15, item 10): `n` jobs spread round-robin
//! over `count` queues `q0`…, `q0` with a global limit, to show that the claim stays
//! fast when queues and limits are in play (`--queues 10 --limited-queue-limit 5`).

use anyhow::Result;
use bildad_core::{JobStore, NewEntry, QueuePatch};
use serde_json::json;

/// How the jobs of the throughput scenario are spread over queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueMix {
    /// Queues `q0`…`q{count-1}`; 0 or 1 = every job in its template's queue.
    pub count: usize,
    /// The `global_limit` of `q0`, if any.
    pub limit: Option<i32>,
}

impl QueueMix {
    /// True when jobs go to the named queues.
    pub fn spread(&self) -> bool {
        self.count > 1
    }

    /// Job `i`: in queue `q{i % count}` when spread.
    pub fn entry(&self, template: &str, i: u64) -> NewEntry {
        let e = NewEntry::new(template, json!({"i": i}));
        if self.spread() {
            e.queue(format!("q{}", i % self.count as u64))
        } else {
            e
        }
    }

    /// Sets `q0`'s limit, if any.
    ///
    /// # Errors
    /// When the store refuses the limit.
    pub async fn apply(&self, store: &dyn JobStore) -> Result<()> {
        if let (true, Some(n)) = (self.spread(), self.limit) {
            store
                .update_queue(
                    "q0",
                    QueuePatch {
                        global_limit: Some(Some(n)),
                        ..QueuePatch::default()
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// ` queues=10 limited_queue_limit=5` for the result line (empty when not spread).
    pub fn label(&self) -> String {
        match (self.spread(), self.limit) {
            (false, _) => String::new(),
            (true, None) => format!(" queues={}", self.count),
            (true, Some(n)) => format!(" queues={} limited_queue_limit={n}", self.count),
        }
    }
}
