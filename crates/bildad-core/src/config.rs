//! A node's configuration (SPEC §5), with its defaults.

use crate::backoff::Backoff;
use crate::error::{StoreError, Violation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How one node runs: killer cadence, engine batch, expiry, retries, concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeConfig {
    /// The node's name (default: the host name, set by the binary).
    pub node_name: String,
    /// How often the killer ticks (default 20 s).
    pub killer_interval: Duration,
    /// How often the optional ticker runs the engine; `None` = cron drives it (default).
    pub engine_interval: Option<Duration>,
    /// Entries claimed per engine run (default 10).
    pub batch_size: u32,
    /// `expires_at = timeout_at + expiry_grace` (default 600 s).
    pub expiry_grace: Duration,
    /// A node whose heartbeat is older is dead (default 3 × killer interval).
    pub node_dead_after: Duration,
    /// The retry delay (default base 1 s, cap 300 s).
    pub backoff: Backoff,
    /// Most jobs executing at once on this node (default 100). A job that has returned
    /// frees its slot while its outcome waits to be recorded (see
    /// [`crate::JobExecutor::free_slots`]).
    pub max_concurrent_jobs: u32,
    /// Run the engine the moment an entry is enqueued on any node, when the store can
    /// push wake-ups ([`crate::JobStore::listen_for_enqueues`]: PostgreSQL from every node,
    /// SQLite and `MemoryStore` in process).
    /// Default off: cron (and the optional ticker) drive the engine, as SPEC §5 has it.
    #[serde(default)]
    pub wake_on_enqueue: bool,
    /// The queues this node claims from (SPEC §8); `None` (the default): every queue.
    #[serde(default)]
    pub queues: Option<Vec<String>>,
    /// Local caps: at most so many runs of the named queue at once on this node, on
    /// top of the queue's cluster-wide settings. Default none.
    #[serde(default)]
    pub queue_limits: std::collections::BTreeMap<String, u32>,
    /// How often this node evaluates the schedules (SPEC §9); `None` = never on this
    /// node. Default 1 s.
    #[serde(default = "default_scheduler_interval")]
    pub scheduler_interval: Option<Duration>,
    /// A fire time older than this when first evaluated means every node was down: only
    /// the latest missed fire time is enqueued. Default 60 s.
    #[serde(default = "default_schedule_grace")]
    pub schedule_grace: Duration,
}

fn default_scheduler_interval() -> Option<Duration> {
    Some(Duration::from_secs(1))
}

fn default_schedule_grace() -> Duration {
    crate::firing::DEFAULT_SCHEDULE_GRACE
}

impl Default for NodeConfig {
    fn default() -> Self {
        let killer = Duration::from_secs(20);
        Self {
            node_name: String::from("bildad"),
            killer_interval: killer,
            engine_interval: None,
            batch_size: 10,
            expiry_grace: Duration::from_secs(600),
            node_dead_after: killer * 3,
            backoff: Backoff::default(),
            max_concurrent_jobs: 100,
            wake_on_enqueue: false,
            scheduler_interval: default_scheduler_interval(),
            schedule_grace: default_schedule_grace(),
            queues: None,
            queue_limits: Default::default(),
        }
    }
}

impl NodeConfig {
    /// Checks that every value is usable. `Invalid` names each bad field.
    pub fn validate(&self) -> Result<(), StoreError> {
        let mut v = Vec::new();
        if self.node_name.trim().is_empty() {
            v.push(Violation::new("node_name", "must not be empty"));
        }
        if self.killer_interval.is_zero() {
            v.push(Violation::new("killer_interval", "must be positive"));
        }
        if self.batch_size == 0 {
            v.push(Violation::new("batch_size", "must be positive"));
        }
        if self.max_concurrent_jobs == 0 {
            v.push(Violation::new("max_concurrent_jobs", "must be positive"));
        }
        if self.node_dead_after <= self.killer_interval {
            v.push(Violation::new(
                "node_dead_after",
                "must be longer than the killer interval, or live nodes look dead",
            ));
        }
        if self.scheduler_interval.is_some_and(|d| d.is_zero()) {
            v.push(Violation::new(
                "scheduler_interval",
                "must be positive (None turns the scheduler off)",
            ));
        }
        for q in self.queues.iter().flatten() {
            crate::input::check_code("queues", q, &mut v);
        }
        for (q, n) in &self.queue_limits {
            crate::input::check_code("queue_limit", q, &mut v);
            if *n == 0 {
                v.push(Violation::new(
                    "queue_limit",
                    format!("{q}: must be positive"),
                ));
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(v))
        }
    }
}
