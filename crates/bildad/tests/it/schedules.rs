//! Periodic jobs through the binary (SPEC §9): three `bildad serve` processes on one
//! PostgreSQL database, each evaluating a per-second schedule every second, enqueue
//! exactly one entry per fire time, with no gap — judged from the entries' fire-time
//! identifiers, not from the wall clock.

use crate::{Node, eventually};
use bildad_store_diesel::testing::TestPg;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::time::Duration;

fn start(url: &str, name: &str) -> Node {
    Node::serve(
        url,
        &[
            "--node-name",
            name,
            "--scheduler-interval-seconds",
            "1",
            "--no-demo-templates",
        ],
    )
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_enqueue_each_second_once() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let nodes: Vec<Node> = ["a", "b", "c"]
        .iter()
        .map(|n| start(pg.url(), &format!("sched-{n}")))
        .collect();
    // No engine runs (no ticker, no cron): the entries stay in the queue to be counted.
    let (s, t) = nodes[0]
        .post(
            "/jobs/templates",
            Some(
                json!({"code": "tick", "name": "tick", "job_type": "demo.echo",
                         "context_schema": {"type": "object"}}),
            ),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let (s, created) = nodes[1]
        .post(
            "/jobs/schedules",
            Some(json!({"name": "tick", "cron": "* * * * * *", "template": "tick"})),
        )
        .await;
    assert_eq!(s, 201, "{created}");
    let first = time(created["next_fire_at"].as_str().unwrap());
    let last = eventually(
        "ten seconds of fire times",
        Duration::from_secs(60),
        || async {
            let (_, s) = nodes[2].get("/jobs/schedules/tick").await;
            s["last_fire_at"]
                .as_str()
                .map(time)
                .filter(|t| *t >= first + chrono::Duration::seconds(10))
        },
    )
    .await;
    let (s, _) = nodes[0]
        .http
        .patch(nodes[0].url("/jobs/schedules/tick"))
        .json(&json!({"active": false}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(s, 200);
    let (_, stopped) = nodes[0].get("/jobs/schedules/tick").await;
    let last = stopped["last_fire_at"].as_str().map(time).unwrap_or(last);

    let (s, page) = nodes[0].get("/jobs/queue?limit=500").await;
    assert_eq!(s, 200, "{page}");
    let mut fires: Vec<DateTime<Utc>> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e: &Value| {
            e["job_run_identifier"]
                .as_str()?
                .strip_prefix("schedule:tick:")
                .map(time)
        })
        .collect();
    fires.sort();
    let want: Vec<DateTime<Utc>> = (0..=(last - first).num_seconds())
        .map(|k| first + chrono::Duration::seconds(k))
        .collect();
    assert!(want.len() >= 11, "{want:?}");
    assert_eq!(
        fires, want,
        "one entry per second from the first fire time to the last"
    );
}
