//! A queue's global limit holds across two `bildad serve` processes on one PostgreSQL
//! database (SPEC §8), and a node serves only the queues it is given.

use crate::{Node, eventually};
use bildad_store_diesel::testing::TestPg;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

fn start(url: &str, name: &str, extra: &[&str]) -> Node {
    let mut args = vec![
        "--killer-interval-seconds",
        "1",
        "--node-dead-after-seconds",
        "3",
        "--node-name",
        name,
    ];
    args.extend(extra);
    Node::serve(url, &args)
}

/// Sets the global limit of `queue` through `node`'s API.
async fn limit(node: &Node, queue: &str, n: u32) {
    let r = node
        .http
        .patch(node.url(&format!("/jobs/queues/{queue}")))
        .json(&json!({ "global_limit": n }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

/// The most runs whose `[started_at, ended_at)` intervals overlap at one instant, by the
/// database's own timestamps.
fn most_at_once(runs: &[Value]) -> usize {
    let at = |r: &Value, k: &str| {
        chrono::DateTime::parse_from_rfc3339(r[k].as_str().expect(k)).expect("a timestamp")
    };
    let mut edges: Vec<_> = runs
        .iter()
        .flat_map(|r| [(at(r, "started_at"), 1i32), (at(r, "ended_at"), -1)])
        .collect();
    // An end before a start at the same instant: the slot was free again.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    usize::try_from(most).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_global_limit_holds_across_two_nodes() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let a = start(pg.url(), "node-a", &[]);
    let b = start(pg.url(), "node-b", &["--queues", "limited,other"]);
    for n in [&a, &b] {
        assert_eq!(n.get("/jobs/health").await.0, 200);
    }
    limit(&a, "limited", 2).await;
    for i in 0..8 {
        let body = json!({"template": "demo.sleep", "context": {"seconds": 0.3},
                          "queue": "limited", "job_run_identifier": format!("lim-{i}")});
        assert_eq!(a.post("/jobs/queue", Some(body)).await.0, 201);
    }
    // B serves only `limited` and `other`: a default-queue entry waits for A.
    let body = json!({"template": "demo.echo", "context": {}, "job_run_identifier": "plain"});
    assert_eq!(a.post("/jobs/queue", Some(body)).await.0, 201);
    b.post("/jobs/engine/run", None).await;
    let (_, plain) = a.get("/jobs/queue/plain").await;
    assert_eq!(plain["status"], "AVAILABLE", "{plain}");

    let done = eventually("every limited run ended", WAIT, || async {
        a.post("/jobs/engine/run", None).await;
        b.post("/jobs/engine/run", None).await;
        let (_, q) = b.get("/jobs/queues/limited").await;
        assert!(q["running"].as_u64().unwrap_or(0) <= 2, "{q}");
        let (_, runs) = a.get("/jobs/runs?status=DONE&limit=100").await;
        let items: Vec<Value> = runs["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r["queue"] == "limited")
            .collect();
        (items.len() == 8).then_some(items)
    })
    .await;
    assert!(done.iter().all(|r| r["result"] == "SUCCEEDED"), "{done:#?}");
    let most = most_at_once(&done);
    assert!(most <= 2, "{most} runs of a queue limited to 2 at once");
    let (_, plain) = a.get("/jobs/runs?identifier=plain").await;
    assert_eq!(plain["items"][0]["node_name"], "node-a", "{plain}");
}

/// A node SIGKILLed while it holds a limited queue's only slot: its run expires (its
/// heartbeat stops), the slot comes back, and the other node runs the next entry; the
/// limit is never exceeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_slots_come_back_when_its_runs_expire() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let a = start(pg.url(), "node-a", &["--retry-backoff-seconds", "0"]);
    let b = start(pg.url(), "node-b", &["--retry-backoff-seconds", "0"]);
    limit(&a, "one", 1).await;
    let body = json!({"template": "demo.sleep", "context": {"seconds": 600}, "queue": "one",
                      "max_retries": 0, "job_run_identifier": "held", "trigger_engine": true});
    assert_eq!(a.post("/jobs/queue", Some(body)).await.0, 201);
    let body = json!({"template": "demo.sleep", "context": {"seconds": 0}, "queue": "one",
                      "job_run_identifier": "next"});
    assert_eq!(b.post("/jobs/queue", Some(body)).await.0, 201);
    b.post("/jobs/engine/run", None).await;
    let (_, next) = b.get("/jobs/queue/next").await;
    assert_eq!(next["status"], "AVAILABLE", "the slot is taken: {next}");
    drop(a); // SIGKILL

    let ran = eventually("the slot came back and next ran on B", WAIT, || async {
        b.post("/jobs/engine/run", None).await;
        let (_, q) = b.get("/jobs/queues/one").await;
        assert!(q["running"].as_u64().unwrap_or(0) <= 1, "{q}");
        let (_, runs) = b.get("/jobs/runs?identifier=next").await;
        runs["items"]
            .as_array()
            .and_then(|r| r.first().cloned())
            .filter(|r| r["status"] == "DONE")
    })
    .await;
    assert_eq!(ran["node_name"], "node-b");
    let (_, held) = b.get("/jobs/runs?identifier=held").await;
    assert_eq!(held["items"][0]["reason"], "Expired", "{held}");
}
