//! Queue depths (docs/OBSERVABILITY.md): per queue, how many entries are available now,
//! scheduled for later and running, and how long the oldest available entry has waited.
//! These are the cluster's gauges of the metrics endpoint; a store answers them with one
//! grouped query ([`crate::JobStore::queue_depths`]) and this module merges its rows.

use crate::model::Timestamp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One queue's depth at one instant of the database clock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueDepth {
    /// The queue's name.
    pub queue: String,
    /// Entries `AVAILABLE` with `run_at <= now`: waiting for a free slot.
    pub available: u64,
    /// Entries `AVAILABLE` with `run_at > now` (scheduled, or backing off).
    pub scheduled: u64,
    /// Entries `RUNNING`.
    pub running: u64,
    /// `now - run_at` of the oldest available entry; zero when none is available.
    pub oldest_available_age: Duration,
}

/// One row of a store's grouped depth query: counts of one queue (a queue may have more
/// than one row: waiting entries and running runs are counted apart), and the `run_at` of
/// its oldest available entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepthPart {
    /// The queue's name.
    pub queue: String,
    /// See [`QueueDepth::available`].
    pub available: u64,
    /// See [`QueueDepth::scheduled`].
    pub scheduled: u64,
    /// See [`QueueDepth::running`].
    pub running: u64,
    /// The smallest `run_at` among the available entries counted, if any.
    pub oldest_available: Option<Timestamp>,
}

/// Merges the rows of a depth query into one depth per queue, in queue-name order, with
/// ages measured at `now` (the database clock of the same query).
pub fn merge_depths(parts: impl IntoIterator<Item = DepthPart>, now: Timestamp) -> Vec<QueueDepth> {
    let mut merged: BTreeMap<String, DepthPart> = BTreeMap::new();
    for p in parts {
        let m = merged.entry(p.queue.clone()).or_default();
        m.available += p.available;
        m.scheduled += p.scheduled;
        m.running += p.running;
        m.oldest_available = match (m.oldest_available, p.oldest_available) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    merged
        .into_iter()
        .map(|(queue, m)| QueueDepth {
            queue,
            available: m.available,
            scheduled: m.scheduled,
            running: m.running,
            oldest_available_age: m
                .oldest_available
                .and_then(|t| (now - t).to_std().ok())
                .unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_one_queue_add_up_and_keep_the_oldest() {
        let now = chrono::Utc::now();
        let part = |queue: &str, available, running, ago: Option<i64>| DepthPart {
            queue: queue.into(),
            available,
            scheduled: 1,
            running,
            oldest_available: ago.map(|s| now - chrono::Duration::seconds(s)),
        };
        let depths = merge_depths(
            [
                part("b", 0, 2, None),
                part("a", 3, 0, Some(5)),
                part("b", 1, 0, Some(7)),
                part("a", 0, 4, Some(9)),
            ],
            now,
        );
        assert_eq!(
            depths,
            vec![
                QueueDepth {
                    queue: "a".into(),
                    available: 3,
                    scheduled: 2,
                    running: 4,
                    oldest_available_age: Duration::from_secs(9),
                },
                QueueDepth {
                    queue: "b".into(),
                    available: 1,
                    scheduled: 2,
                    running: 2,
                    oldest_available_age: Duration::from_secs(7),
                },
            ]
        );
    }

    #[test]
    fn a_run_at_after_now_is_age_zero() {
        let now = chrono::Utc::now();
        let p = DepthPart {
            queue: "q".into(),
            oldest_available: Some(now + chrono::Duration::seconds(1)),
            ..DepthPart::default()
        };
        assert_eq!(
            merge_depths([p], now)[0].oldest_available_age,
            Duration::ZERO
        );
    }
}
