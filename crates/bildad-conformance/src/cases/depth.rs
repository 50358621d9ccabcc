//! Queue depths: the cluster's gauges of the metrics endpoint (docs/OBSERVABILITY.md).

use crate::support::*;
use bildad_core::{JobStore, NewEntry, QueueDepth};
use serde_json::json;
use std::sync::Arc;

/// `queue_depths` counts a queue's entries available now, scheduled for later and
/// running, and measures the age of its oldest available entry (by `run_at`) on the
/// database clock, per queue in name order; a store with no entry has no queue.
pub async fn queue_depths_count_states_and_oldest_age(store: Arc<dyn JobStore>) {
    let s = &*store;
    assert_eq!(expect_ok(s.queue_depths().await, "queue_depths"), vec![]);
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let start = now(s).await;
    let later = start + chrono::Duration::hours(1);
    let oldest = start - chrono::Duration::minutes(10);
    for _ in 0..3 {
        enqueue(s, NewEntry::new(t.code.clone(), json!({})).run_at(later)).await;
    }
    let mut running = Vec::new();
    for _ in 0..2 {
        running.push(enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await);
    }
    enqueue(s, NewEntry::new(t.code.clone(), json!({})).run_at(oldest)).await;
    enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await;
    let mail = NewEntry::new(t.code.clone(), json!({})).queue("mail");
    enqueue(s, mail.clone().run_at(later)).await;
    enqueue(s, mail.run_at(oldest + chrono::Duration::minutes(5))).await;
    // The claim takes entries in enqueue order: the first two.
    let claimed = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 2)).await,
        "claim",
    );
    let ids = |v: Vec<String>| v.into_iter().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(
        ids(claimed
            .into_iter()
            .map(|c| c.run.job_run_identifier)
            .collect()),
        ids(running.into_iter().map(|e| e.job_run_identifier).collect())
    );

    let before = now(s).await;
    let depths = expect_ok(s.queue_depths().await, "queue_depths");
    let after = now(s).await;
    assert_eq!(depths.len(), 2, "two queues, by name: {depths:?}");
    let ages: Vec<_> = depths.iter().map(|d| d.oldest_available_age).collect();
    assert_eq!(
        depths,
        vec![
            QueueDepth {
                queue: "default".into(),
                available: 2,
                scheduled: 3,
                running: 2,
                oldest_available_age: ages[0],
            },
            QueueDepth {
                queue: "mail".into(),
                available: 1,
                scheduled: 1,
                running: 0,
                oldest_available_age: ages[1],
            },
        ]
    );
    let oldest_of_mail = oldest + chrono::Duration::minutes(5);
    for (age, run_at) in ages.into_iter().zip([oldest, oldest_of_mail]) {
        let age = chrono::Duration::from_std(age).expect("an age in range");
        assert_between(run_at + age, before, after, "now - age of the oldest entry");
    }
}
