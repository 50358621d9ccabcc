//! The cost of evaluating schedules (docs/PERFORMANCE.md, "Schedules"): 1,000 schedules
//! on PostgreSQL, 4 nodes (4 stores, each with its own pool) evaluating at once, when
//! none is due and when all are due. Ignored by default (it measures, it does not
//! judge); run it with
//! `cargo test -p bildad-store-diesel --test schedule_cost -- --ignored --nocapture`.

use bildad_core::{EvaluateSchedules, JobStore, NewSchedule, NewTemplate};
use bildad_store_diesel::PgStore;
use bildad_store_diesel::testing::TestPg;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SCHEDULES: usize = 1000;
const NODES: usize = 4;

/// One node's evaluation at `at`, in rounds while more schedules are due (as the
/// scheduler does); how many fire times it won.
async fn evaluate(store: &dyn JobStore, at: chrono::DateTime<chrono::Utc>) -> usize {
    let mut won = 0;
    loop {
        let req = EvaluateSchedules {
            at: Some(at),
            ..EvaluateSchedules::default()
        };
        let r = store.evaluate_schedules(req).await.expect("evaluate");
        won += r.fired.len();
        if !r.more {
            return won;
        }
    }
}

/// All nodes evaluate at once; the wall time of the slowest and the fire times won.
async fn round(
    nodes: &[Arc<dyn JobStore>],
    at: chrono::DateTime<chrono::Utc>,
) -> (Duration, usize) {
    let start = Instant::now();
    let tasks = nodes.iter().map(|s| {
        let s = Arc::clone(s);
        tokio::spawn(async move { evaluate(&*s, at).await })
    });
    let won = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .sum();
    (start.elapsed(), won)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn evaluation_cost_of_1000_schedules_on_4_nodes() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let admin = pg.store();
    admin
        .create_template(NewTemplate::new(
            "cost",
            "cost",
            "cost",
            json!({"type": "object"}),
        ))
        .await
        .unwrap();
    for i in 0..SCHEDULES {
        let s = NewSchedule::new(format!("cost-{i:04}"), "* * * * *", "cost", json!({}));
        admin.create_schedule(s).await.unwrap();
    }
    let mut nodes: Vec<Arc<dyn JobStore>> = Vec::new();
    for _ in 0..NODES {
        nodes.push(Arc::new(PgStore::connect(pg.url()).await.unwrap()));
    }
    let t0 = chrono::DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for i in 0..SCHEDULES {
        admin
            .rewind_schedule(&format!("cost-{i:04}"), t0)
            .await
            .unwrap();
    }
    // None due: 30 s past t0 (the next fire time is t0 + 60 s).
    let mut idle = Vec::new();
    for _ in 0..50 {
        let (d, won) = round(&nodes, t0 + chrono::Duration::seconds(30)).await;
        assert_eq!(won, 0);
        idle.push(d);
    }
    // All due, one fire time each, 20 times (each round moves the clock a minute).
    let mut busy = Vec::new();
    for k in 1..=20 {
        let (d, won) = round(&nodes, t0 + chrono::Duration::seconds(60 * k)).await;
        assert_eq!(won, SCHEDULES, "each fire time won by exactly one node");
        busy.push(d);
    }
    println!(
        "{SCHEDULES} schedules, {NODES} nodes evaluating at once: none due {:?} (median of 50), \
         all due {:?} (median of 20; {:.0} µs per fire time)",
        median(idle),
        median(busy.clone()),
        median(busy).as_micros() as f64 / SCHEDULES as f64
    );
}
