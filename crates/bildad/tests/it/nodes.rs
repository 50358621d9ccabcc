//! Two `bildad serve` processes on one fresh PostgreSQL database: success, retry,
//! timeout kill, removal across nodes, and a node killed with SIGKILL mid-job.

use crate::{Node, eventually};
use bildad_store_diesel::testing::TestPg;
use serde_json::{Value, json};
use std::time::Duration;

/// A fresh database, or `None` (with a notice) when PostgreSQL is unreachable;
/// `TestPg` panics instead when `BILDAD_REQUIRE_POSTGRES=1`.
async fn fresh_pg() -> Option<TestPg> {
    TestPg::fresh().await
}

const NODE_FLAGS: [&str; 8] = [
    "--killer-interval-seconds",
    "1",
    "--node-dead-after-seconds",
    "3",
    "--retry-backoff-seconds",
    "0",
    "--expiry-grace-seconds",
    "600",
];

fn start(url: &str, name: &str) -> Node {
    let mut args = NODE_FLAGS.to_vec();
    args.extend(["--node-name", name]);
    Node::serve(url, &args)
}

/// The runs of `id`, newest first.
async fn runs(node: &Node, id: &str) -> Vec<Value> {
    let (s, body) = node.get(&format!("/jobs/runs?identifier={id}")).await;
    assert_eq!(s, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn enqueue(node: &Node, body: Value) -> Value {
    let (s, e) = node.post("/jobs/queue", Some(body)).await;
    assert_eq!(s, 201, "{e}");
    e
}

const WAIT: Duration = Duration::from_secs(30);

/// `--wake-on-enqueue`: an entry enqueued through node A (no `trigger_engine`, no cron
/// request, no ticker anywhere) runs on node B, woken by PostgreSQL's NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_with_wake_on_enqueue_runs_what_another_node_enqueued() {
    let Some(pg) = fresh_pg().await else { return };
    let a = start(pg.url(), "node-a");
    let mut args = NODE_FLAGS.to_vec();
    args.extend(["--node-name", "node-b", "--wake-on-enqueue"]);
    let b = Node::serve(pg.url(), &args);
    for n in [&a, &b] {
        assert_eq!(n.get("/jobs/health").await.0, 200);
    }
    for i in 0..3 {
        enqueue(
            &a,
            json!({"template": "demo.echo", "context": {"i": i},
                   "job_run_identifier": format!("woken-{i}")}),
        )
        .await;
    }
    for i in 0..3 {
        let run = eventually("the woken node ran it", WAIT, || async {
            runs(&a, &format!("woken-{i}"))
                .await
                .first()
                .filter(|r| r["status"] == "DONE")
                .cloned()
        })
        .await;
        assert_eq!(run["result"], "SUCCEEDED");
        assert_eq!(run["node_name"], "node-b");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_database() {
    let Some(pg) = fresh_pg().await else { return };
    let a = start(pg.url(), "node-a");
    let b = start(pg.url(), "node-b");
    for n in [&a, &b] {
        assert_eq!(n.get("/jobs/health").await.0, 200);
    }

    // Success: enqueued and run on A, seen from B.
    let e = enqueue(
        &a,
        json!({"template": "demo.echo", "context": {"x": 1}, "job_run_identifier": "ok-1",
               "trigger_engine": true}),
    )
    .await;
    assert_eq!(e["engine"]["start"]["ok_count"], 1, "{e}");
    let run = eventually("ok-1 succeeded", WAIT, || async {
        let r = runs(&b, "ok-1").await;
        r.first().filter(|r| r["status"] == "DONE").cloned()
    })
    .await;
    assert_eq!(run["result"], "SUCCEEDED");
    assert_eq!(run["node_name"], "node-a");
    assert_eq!(b.get("/jobs/queue/ok-1").await.0, 404);

    // Retry: demo.flaky fails twice, then succeeds; both engines drive it.
    enqueue(
        &b,
        json!({"template": "demo.flaky", "context": {"fail_times": 2}, "max_retries": 3,
               "job_run_identifier": "flaky-1"}),
    )
    .await;
    let done = eventually("flaky-1 succeeded", WAIT, || async {
        a.post("/jobs/engine/run", None).await;
        b.post("/jobs/engine/run", None).await;
        let r = runs(&a, "flaky-1").await;
        r.first()
            .filter(|r| r["result"] == "SUCCEEDED")
            .map(|_| r.clone())
    })
    .await;
    assert_eq!(done.len(), 3);
    assert_eq!(done[0]["retry"], 2);
    assert_eq!(done[1]["result"], "FAILED");
    assert_eq!(done[2]["reason"], "flaky failure 1 of 2");

    // Timeout: the owning node's killer ends the run.
    enqueue(
        &a,
        json!({"template": "demo.sleep", "context": {"seconds": 60}, "timeout_seconds": 1,
               "max_retries": 0, "job_run_identifier": "slow-1", "trigger_engine": true}),
    )
    .await;
    let killed = eventually("slow-1 timed out", WAIT, || async {
        runs(&b, "slow-1")
            .await
            .first()
            .filter(|r| r["status"] == "DONE")
            .cloned()
    })
    .await;
    assert_eq!(killed["result"], "FAILED");
    assert_eq!(killed["reason"], "Timeout");
    assert_eq!(a.get("/jobs/queue/slow-1").await.0, 404);

    // Remove across nodes: running on A, removed through B.
    enqueue(
        &a,
        json!({"template": "demo.sleep", "context": {"seconds": 60},
               "job_run_identifier": "rm-1", "trigger_engine": true}),
    )
    .await;
    let (_, entry) = b.get("/jobs/queue/rm-1").await;
    assert_eq!(entry["status"], "RUNNING", "{entry}");
    assert_eq!(b.delete("/jobs/queue/rm-1").await, 204);
    let removed = runs(&a, "rm-1").await;
    assert_eq!(removed[0]["reason"], "Removed");
    assert_eq!(a.get("/jobs/queue/rm-1").await.0, 404);

    // SIGKILL mid-job: B's engine expires the orphan and retries it.
    enqueue(
        &a,
        json!({"template": "demo.sleep", "context": {"seconds": 2}, "max_retries": 2,
               "job_run_identifier": "orphan-1", "trigger_engine": true}),
    )
    .await;
    let first = runs(&b, "orphan-1").await;
    assert_eq!(first[0]["status"], "RUNNING");
    assert_eq!(first[0]["node_name"], "node-a");
    drop(a); // SIGKILL
    let retried = eventually("orphan-1 expired and retried on B", WAIT, || async {
        b.post("/jobs/engine/run", None).await;
        let r = runs(&b, "orphan-1").await;
        r.iter().any(|x| x["result"] == "SUCCEEDED").then_some(r)
    })
    .await;
    let expired = retried.iter().find(|r| r["retry"] == 0).unwrap();
    assert_eq!(expired["result"], "FAILED");
    assert_eq!(expired["reason"], "Expired");
    let success = retried.iter().find(|r| r["result"] == "SUCCEEDED").unwrap();
    assert_eq!(success["node_name"], "node-b");

    let status = b.terminate();
    assert!(status.success(), "exit status {status:?}");
}
