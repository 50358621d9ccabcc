//! The scheduler (SPEC §9): on every node, at every `scheduler_interval`, one
//! evaluation of the schedules. There is no leader: the store's compare-and-set decides
//! which of the nodes evaluating at once enqueues each fire time, so any number of nodes
//! can run it, and a fire time is skipped only when no node runs for longer than the
//! grace period.

use bildad_core::{EvaluateSchedules, JobStore, ScheduleEvaluation, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The most rounds of one evaluation (each up to `EvaluateSchedules::max_schedules`
/// schedules) before the rest waits for the next tick.
const MAX_ROUNDS: usize = 50;

/// Evaluates the schedules of one store on behalf of one node.
#[derive(Clone)]
pub struct Scheduler {
    store: Arc<dyn JobStore>,
    grace: Duration,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler on `store` with the grace period `grace` (see
    /// [`bildad_core::firing::Firing::plan`]).
    pub fn new(store: Arc<dyn JobStore>, grace: Duration) -> Self {
        Self { store, grace }
    }

    /// One evaluation now: enqueues every due fire time this node wins, in rounds while
    /// more schedules are due. The store's error when it cannot be reached.
    pub async fn evaluate(&self) -> Result<ScheduleEvaluation, StoreError> {
        let req = EvaluateSchedules {
            grace: self.grace,
            ..EvaluateSchedules::default()
        };
        let mut total = ScheduleEvaluation::default();
        for _ in 0..MAX_ROUNDS {
            let r = self.store.evaluate_schedules(req.clone()).await?;
            for (fired, why) in &r.skipped {
                tracing::warn!(
                    schedule = %fired.schedule,
                    fire_at = %fired.fire_at,
                    reason = %why,
                    "schedule fire time passed without an entry: the enqueue was refused"
                );
            }
            total.fired.extend(r.fired);
            total.skipped.extend(r.skipped);
            total.lost += r.lost;
            total.more = r.more;
            if !r.more {
                break;
            }
        }
        Ok(total)
    }

    /// Evaluates every `every` until `stop`. A failing evaluation is logged; the next
    /// tick tries again (fire times within the grace period are not lost).
    pub async fn run(self, every: Duration, stop: CancellationToken) {
        // The first evaluation one interval after start, not at once: a node's start is
        // its busiest moment (its pools fill, its first claims run), and an evaluation
        // there cost a node 5–10 % of its throughput in the first seconds
        // (docs/PERFORMANCE.md); one interval later it costs nothing measurable. Nothing
        // is missed: a fire time is enqueued by the next evaluation within the grace.
        let first = tokio::time::Instant::now() + every;
        repeat_from(first, every, stop, || {
            let s = self.clone();
            async move {
                match s.evaluate().await {
                    Ok(r) if !r.fired.is_empty() => {
                        tracing::debug!(
                            fired = r.fired.len(),
                            lost = r.lost,
                            "schedules evaluated"
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "schedule evaluation failed"),
                }
            }
        })
        .await;
    }
}

/// Runs `f` at every tick of `every` (a late tick is delayed, not doubled) until `stop`.
pub(crate) async fn repeat<F, Fut>(every: Duration, stop: CancellationToken, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    repeat_from(tokio::time::Instant::now(), every, stop, f).await;
}

/// [`repeat`], with the first call at `first` instead of at once.
async fn repeat_from<F, Fut>(
    first: tokio::time::Instant,
    every: Duration,
    stop: CancellationToken,
    mut f: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticker = tokio::time::interval_at(first, every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        f().await;
    }
}
