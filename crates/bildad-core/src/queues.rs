//! Queues and flow control (SPEC §8): a queue's settings (paused, a global concurrency
//! limit, a sliding-window rate limit), what the API shows of a queue, and the change an
//! operator asks for. The claim of every store enforces the settings in the database.

use crate::error::{StoreError, Violation};
use crate::input::check_code;
use serde::{Deserialize, Serialize};

/// At most `allowed` runs of a queue start in any window of `period_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Starts allowed per window, at least 1.
    pub allowed: i32,
    /// The window's length in seconds, at least 1.
    pub period_seconds: i32,
}

/// The settings of one queue. A queue without stored settings has the defaults: not
/// paused, no limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSettings {
    /// The queue's name.
    pub name: String,
    /// No node starts an entry of a paused queue; running ones go on.
    pub paused: bool,
    /// At no moment more than this many runs of the queue are `RUNNING`, over all nodes.
    pub global_limit: Option<i32>,
    /// At most so many starts in any window, over all nodes.
    pub rate_limit: Option<RateLimit>,
}

impl QueueSettings {
    /// The defaults of a queue named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            paused: false,
            global_limit: None,
            rate_limit: None,
        }
    }

    /// True when the claim must count before it takes entries of this queue (a limit is
    /// set), or skip it (paused).
    pub fn restricted(&self) -> bool {
        self.paused || self.global_limit.is_some() || self.rate_limit.is_some()
    }

    /// How many entries a claim may start now, given the queue's `running` runs and the
    /// runs that `started` within the rate limit's window; `None`: no limit.
    pub fn room(&self, running: u64, started: u64) -> Option<u64> {
        if self.paused {
            return Some(0);
        }
        let left = |cap: i32, used: u64| u64::try_from(cap).unwrap_or(0).saturating_sub(used);
        let global = self.global_limit.map(|n| left(n, running));
        let rate = self.rate_limit.map(|r| left(r.allowed, started));
        match (global, rate) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A queue as the API shows it: its settings and its counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueInfo {
    /// The settings (the defaults when none are stored).
    pub settings: QueueSettings,
    /// Entries `AVAILABLE` with `run_at <= now`.
    pub available: u64,
    /// Entries `AVAILABLE` with `run_at > now`.
    pub scheduled: u64,
    /// Runs `RUNNING`.
    pub running: u64,
}

/// A change of a queue's settings; `None` keeps a field, `Some(None)` lifts a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePatch {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// Set (`Some(Some(n))`, n ≥ 1) or lift (`Some(None)`) the global limit.
    pub global_limit: Option<Option<i32>>,
    /// Set or lift the rate limit.
    pub rate_limit: Option<Option<RateLimit>>,
}

impl QueuePatch {
    /// Every rule of the present fields, and of the queue's name.
    pub fn validate(&self, name: &str) -> Result<(), StoreError> {
        let mut v = Vec::new();
        check_code("/name", name, &mut v);
        if let Some(Some(n)) = self.global_limit {
            at_least_one("/global_limit", n, &mut v);
        }
        if let Some(Some(r)) = self.rate_limit {
            at_least_one("/rate_limit/allowed", r.allowed, &mut v);
            at_least_one("/rate_limit/period_seconds", r.period_seconds, &mut v);
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(StoreError::Invalid(v))
        }
    }

    /// `settings` with this change applied.
    pub fn apply(&self, mut settings: QueueSettings) -> QueueSettings {
        if let Some(p) = self.paused {
            settings.paused = p;
        }
        if let Some(g) = self.global_limit {
            settings.global_limit = g;
        }
        if let Some(r) = self.rate_limit {
            settings.rate_limit = r;
        }
        settings
    }
}

fn at_least_one(pointer: &str, n: i32, v: &mut Vec<Violation>) {
    if n < 1 {
        v.push(Violation::new(pointer, "must be at least 1"));
    }
}

/// The name check of a queue read by name: `Invalid` unless it follows the rule of a
/// code.
pub fn check_queue_name(name: &str) -> Result<(), StoreError> {
    let mut v = Vec::new();
    check_code("/name", name, &mut v);
    if v.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(v))
    }
}

/// How many entries of `queue` one claim may take: the smaller of the room the settings
/// leave (`None`: unlimited) and the node's local cap in `caps`.
pub fn claim_room(
    caps: &std::collections::BTreeMap<String, u32>,
    queue: &str,
    room: Option<u64>,
) -> Option<u64> {
    match (room, caps.get(queue).map(|&c| u64::from(c))) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// True when a claim of `queues` (`None`: every queue) may take entries of `queue`.
pub fn serves(queues: Option<&[String]>, queue: &str) -> bool {
    queues.is_none_or(|q| q.iter().any(|x| x == queue))
}
