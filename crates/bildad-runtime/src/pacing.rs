//! When an engine heartbeats and looks for runs to expire: the throttle of frequent
//! passes, and the node's own view of its access to the database, which holds expiry
//! back after an outage (docs/RUNTIME.md, "Expiry after a database outage").

use bildad_core::NodeConfig;
use std::time::{Duration, Instant};

/// The longest an engine goes without looking for runs to expire, when passes come
/// more often than this. Expiry is coarse by nature (`expiry_grace`, 600 s by default;
/// `node_dead_after`, 60 s), so checking it on every pass of a busy engine is wasted
/// round trips. Shorter when the configuration is (`Throttle::new`).
pub const EXPIRY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// When an engine last wrote its heartbeat and last looked for runs to expire, so that
/// frequent passes (a ticker, `enqueue_and_trigger`) skip what they need not repeat.
#[derive(Debug)]
pub(crate) struct Throttle {
    pub(crate) heartbeat_every: Duration,
    pub(crate) expiry_every: Duration,
    pub(crate) last_heartbeat: std::sync::Mutex<Option<Instant>>,
    pub(crate) last_expiry: std::sync::Mutex<Option<Instant>>,
}

impl Throttle {
    pub(crate) fn new(config: &NodeConfig) -> Self {
        // A quarter of the shortest interval that depends on the heartbeat: a live node
        // never looks dead, whether or not its killer runs (the killer heartbeats too).
        let heartbeat_every = config.killer_interval.min(config.node_dead_after) / 4;
        let expiry_every = EXPIRY_CHECK_EVERY
            .min(config.node_dead_after / 4)
            .min(config.expiry_grace / 4);
        Self {
            heartbeat_every,
            expiry_every,
            last_heartbeat: std::sync::Mutex::new(None),
            last_expiry: std::sync::Mutex::new(None),
        }
    }

    /// True when `every` has passed since `*last` (or never set).
    pub(crate) fn due(last: &std::sync::Mutex<Option<Instant>>, every: Duration) -> bool {
        let last = *last.lock().unwrap_or_else(|e| e.into_inner());
        last.is_none_or(|t| t.elapsed() >= every)
    }

    pub(crate) fn mark(last: &std::sync::Mutex<Option<Instant>>, at: Instant) {
        *last.lock().unwrap_or_else(|e| e.into_inner()) = Some(at);
    }
}

/// What a node knows of its own access to the database, shared by its engine and its
/// killer: it holds expiry back after an outage.
///
/// The rule: a node that could not reach the database (a heartbeat or a claim failed,
/// or a heartbeat took so long that the database may have been away meanwhile) does
/// not expire runs until `node_dead_after` has passed since it reached the database
/// again. Every live node that reaches the database heartbeats at least every
/// `killer_interval` (< `node_dead_after`), so once that much time has passed since
/// the database came back, a heartbeat older than `node_dead_after` means a node that
/// really stopped, not one the outage hid.
#[derive(Debug)]
pub(crate) struct Reach {
    dead_after: Duration,
    /// A heartbeat that took this long may have spanned an outage.
    slow_call: Duration,
    state: std::sync::Mutex<ReachState>,
}

#[derive(Debug, Default)]
struct ReachState {
    /// The last call failed.
    failing: bool,
    /// When the database answered again after the last failure.
    regained_at: Option<Instant>,
}

impl Reach {
    pub(crate) fn new(config: &NodeConfig) -> Self {
        let dead_after = config.node_dead_after;
        Self {
            dead_after,
            slow_call: dead_after
                .saturating_sub(config.killer_interval)
                .min(dead_after / 2),
            state: std::sync::Mutex::new(ReachState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ReachState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A call to the database failed.
    pub(crate) fn failed(&self) {
        self.lock().failing = true;
    }

    /// A heartbeat begun at `started` succeeded.
    pub(crate) fn reached(&self, started: Instant) {
        let mut s = self.lock();
        if s.failing || started.elapsed() >= self.slow_call {
            s.failing = false;
            s.regained_at = Some(Instant::now());
            tracing::warn!(
                hold = ?self.dead_after,
                "the database answers again after an outage: no run expires for node_dead_after"
            );
        }
    }

    /// Records the result of a heartbeat begun at `started`.
    pub(crate) fn heartbeat<T, E>(&self, started: Instant, result: &Result<T, E>) {
        match result {
            Ok(_) => self.reached(started),
            Err(_) => self.failed(),
        }
    }

    /// True unless the database was away too recently for expiry to be sound.
    pub(crate) fn may_expire(&self) -> bool {
        let s = self.lock();
        !s.failing && s.regained_at.is_none_or(|t| t.elapsed() >= self.dead_after)
    }
}
