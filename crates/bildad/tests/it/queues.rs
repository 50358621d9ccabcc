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
    let r = a
        .http
        .patch(a.url("/jobs/queues/limited"))
        .json(&json!({"global_limit": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
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
