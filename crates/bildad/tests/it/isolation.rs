//! Process-isolated job types through `bildad serve` with `--max-concurrent-jobs 1`, on
//! PostgreSQL and SQLite: a CPU loop and a blocking sleep, which no tokio abort can end,
//! are ended with SIGKILL on timeout, stop and removal; nothing of them is left running;
//! the node's one slot is free at once; and a node killed with SIGKILL takes its
//! children with it.

use crate::{Node, eventually};
use bildad_store_diesel::testing::{TestMysql, TestPg, TestSqlite};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn start(url: &str) -> Node {
    Node::serve(
        url,
        &[
            "--killer-interval-seconds",
            "1",
            "--retry-backoff-seconds",
            "0",
            "--max-concurrent-jobs",
            "1",
            "--node-name",
            "isolating",
        ],
    )
}

/// `/proc/<pid>/stat`: (state, parent pid, process group); `None` once the process is
/// gone or a zombie (it runs nothing).
fn stat(pid: u32) -> Option<(char, u32, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    (state != 'Z' && state != 'X').then_some((state, ppid, pgrp))
}

/// The live processes whose parent is `node` or whose process group is one of `groups`.
fn children_of(node: u32, groups: &[u32]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat(pid).is_some_and(|(_, ppid, pgrp)| ppid == node || groups.contains(&pgrp))
        })
        .collect()
}

/// Waits until the node has a child process (the isolated run's), and returns it. Runs
/// engine passes meanwhile: the previous run's slot frees just after its outcome is
/// recorded.
async fn the_child(node: &Node) -> u32 {
    let pid = node.child.id();
    eventually("the isolated run's child process", WAIT, || async {
        if let Some(child) = children_of(pid, &[]).first() {
            return Some(*child);
        }
        node.post("/jobs/engine/run", None).await;
        None
    })
    .await
}

async fn enqueue(node: &Node, body: Value) {
    let (s, e) = node.post("/jobs/queue", Some(body)).await;
    assert_eq!(s, 201, "{e}");
}

/// Enqueues and starts an isolated job; its child process.
async fn started(node: &Node, body: Value) -> u32 {
    enqueue(node, body).await;
    the_child(node).await
}

/// The newest run of `id`, if any.
async fn newest_run(node: &Node, id: &str) -> Option<Value> {
    let (_, body) = node.get(&format!("/jobs/runs?identifier={id}")).await;
    body["items"].as_array()?.first().cloned()
}

/// The newest run of `id` once it is done.
async fn done(node: &Node, id: &str) -> Value {
    eventually(&format!("{id} done"), WAIT, || async {
        newest_run(node, id).await.filter(|r| r["status"] == "DONE")
    })
    .await
}

/// The newest run of `id` once its reason is `reason`.
async fn ended_with(node: &Node, id: &str, reason: &str) -> Value {
    eventually(&format!("{id} ended {reason:?}"), WAIT, || async {
        newest_run(node, id).await.filter(|r| r["reason"] == reason)
    })
    .await
}

/// Starts `demo.block` of 60 s as `id`; its child process.
async fn blocking(node: &Node, id: &str) -> u32 {
    let body = json!({"template": "demo.block", "context": {"seconds": 60},
                      "job_run_identifier": id, "trigger_engine": true});
    started(node, body).await
}

/// Waits for the run of `id` to fail with `reason`, then asserts that neither its
/// `child` nor anything else of the node's is left running (the kill is recorded only
/// after the child was reaped).
async fn killed(node: &Node, id: &str, reason: &str, child: u32) {
    let run = ended_with(node, id, reason).await;
    assert_eq!(run["result"], "FAILED");
    let left = children_of(node.child.id(), &[child]);
    assert!(left.is_empty(), "processes left running: {left:?}");
}

/// A job of `demo.echo`, which runs on the node's one slot: the killed run's slot is
/// free (the slot frees just after the kill is recorded, so engine passes are repeated
/// until one finds it; a slot still held by the 60 s job would fail the wait).
async fn next_job_runs(node: &Node, id: &str) {
    let body = json!({"template": "demo.echo", "context": {"n": 1}, "job_run_identifier": id});
    let (s, e) = node.post("/jobs/queue", Some(body)).await;
    assert_eq!(s, 201, "{e}");
    let run = eventually(&format!("{id} ran"), WAIT, || async {
        node.post("/jobs/engine/run", None).await;
        newest_run(node, id).await.filter(|r| r["status"] == "DONE")
    })
    .await;
    assert_eq!(run["result"], "SUCCEEDED");
}

async fn isolated_runs_are_killed(url: &str) {
    let node = start(url);

    // Timeout: a CPU loop of 60 s with a timeout of 1 s.
    let child = started(
        &node,
        json!({"template": "demo.spin", "context": {"seconds": 60}, "timeout_seconds": 1,
               "max_retries": 0, "job_run_identifier": "spin-1", "trigger_engine": true}),
    )
    .await;
    killed(&node, "spin-1", "Timeout (killed)", child).await;
    next_job_runs(&node, "after-timeout").await;

    // Stop: a blocking sleep of 60 s.
    let child = blocking(&node, "block-stop").await;
    let (s, body) = node.post("/jobs/queue/block-stop/stop", None).await;
    assert_eq!(s, 200, "{body}");
    killed(&node, "block-stop", "Stopped (killed)", child).await;
    // The stopped entry is available again; take it out of the way.
    assert_eq!(node.delete("/jobs/queue/block-stop").await, 204);
    next_job_runs(&node, "after-stop").await;

    // Remove: the same, through DELETE.
    let child = blocking(&node, "block-rm").await;
    assert_eq!(node.delete("/jobs/queue/block-rm").await, 204);
    killed(&node, "block-rm", "Removed (killed)", child).await;
    next_job_runs(&node, "after-remove").await;

    // SIGKILL the node mid-run: its child dies with it.
    let child = started(
        &node,
        json!({"template": "demo.spin", "context": {"seconds": 60},
               "job_run_identifier": "orphan", "trigger_engine": true}),
    )
    .await;
    let node_pid = node.child.id();
    drop(node); // SIGKILL
    eventually("the orphaned child died with its node", WAIT, || async {
        stat(child).is_none().then_some(())
    })
    .await;
    assert!(children_of(node_pid, &[child]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_runs_are_killed_on_postgres() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    isolated_runs_are_killed(pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_runs_are_killed_on_mysql() {
    let Some(db) = TestMysql::fresh().await else {
        return;
    };
    isolated_runs_are_killed(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_runs_are_killed_on_sqlite() {
    let db = TestSqlite::fresh().await;
    isolated_runs_are_killed(db.url()).await;
}

/// A child that dies by itself (here: `SIGKILL` from outside the node, as the OOM
/// killer sends) fails its run with a reason naming the signal; the retry rule applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_dies_fails_its_run_naming_the_signal() {
    let db = TestSqlite::fresh().await;
    let node = start(db.url());
    let child = started(
        &node,
        json!({"template": "demo.block", "context": {"seconds": 60}, "max_retries": 1,
               "job_run_identifier": "dies", "trigger_engine": true}),
    )
    .await;
    let ok = std::process::Command::new("kill")
        .args(["-KILL", &child.to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let run = done(&node, "dies").await;
    assert_eq!(run["result"], "FAILED");
    assert_eq!(run["reason"], "child process killed by signal 9 (SIGKILL)");
    assert_eq!(run["retry"], 0);
    let (_, entry) = node.get("/jobs/queue/dies").await;
    assert_eq!(entry["status"], "AVAILABLE", "retried by the rule: {entry}");
}

/// SIGTERM with an isolated run still blocking past the grace: the node kills the child,
/// records `Shutdown (killed)` and exits cleanly, leaving nothing running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_past_its_grace_kills_the_child() {
    let db = TestSqlite::fresh().await;
    let node = Node::serve(
        db.url(),
        &[
            "--shutdown-grace-seconds",
            "1",
            "--max-concurrent-jobs",
            "1",
        ],
    );
    let child = blocking(&node, "block-shutdown").await;
    let node_pid = node.child.id();
    let status = node.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(stat(child).is_none(), "the child outlived its node");
    assert!(children_of(node_pid, &[child]).is_empty());
    let filter = bildad_core::RunFilter {
        identifier: Some("block-shutdown".into()),
        ..Default::default()
    };
    let runs = db
        .store()
        .list_runs(filter, bildad_core::PageRequest::default())
        .await
        .unwrap();
    assert_eq!(runs.items[0].reason.as_deref(), Some("Shutdown (killed)"));
}
