//! `GET /jobs/metrics` of a `bildad serve`, on PostgreSQL and on SQLite: after a known
//! mix of jobs (two succeed, one fails, one times out, one is stopped, one waits for
//! later) the counters and the queue gauges are exactly what happened, read with a
//! Prometheus text parser; the route needs the token. And `--log-format json`.

use crate::{Node, eventually};
use bildad_store_diesel::testing::{TestMysql, TestPg};
use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{Value, json};
use std::time::Duration;

const TOKEN: &str = "metrics-s3cret";
const WAIT: Duration = Duration::from_secs(30);

fn start(url: &str) -> Node {
    Node::serve(
        url,
        &[
            "--auth-token",
            TOKEN,
            "--killer-interval-seconds",
            "1",
            "--retry-backoff-seconds",
            "0",
            "--metrics-cache-seconds",
            "0",
            "--log-format",
            "json",
        ],
    )
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn enqueue(node: &Node, body: Value) -> String {
    let (s, e) = call(node.http.post(node.url("/jobs/queue")).json(&body)).await;
    assert_eq!(s, 201, "{e}");
    e["job_run_identifier"].as_str().unwrap().to_owned()
}

async fn done_runs(node: &Node) -> u64 {
    let (s, page) = call(node.http.get(node.url("/jobs/runs?status=DONE"))).await;
    assert_eq!(s, 200, "{page}");
    page["total"].as_u64().unwrap()
}

async fn scrape(node: &Node) -> Scrape {
    let r = node
        .http
        .get(node.url("/jobs/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the text format")
}

/// The value of the one sample of `name` with `labels` (0 when there is none).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert!(found.len() <= 1, "several samples {name} {labels:?}");
    match found.first().map(|s| &s.value) {
        None => 0.0,
        Some(Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v)) => *v,
        Some(Metric::Histogram(buckets)) => buckets.last().map_or(0.0, |b| b.count),
        Some(other) => panic!("{name}: {other:?}"),
    }
}

async fn known_mix_is_counted_exactly(url: &str) {
    let node = start(url);
    let anonymous = node
        .http
        .get(node.url("/jobs/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "the route needs the token"
    );

    let now = |template: &str, context: Value, timeout: u32| {
        json!({"template": template, "context": context, "max_retries": 0,
               "timeout_seconds": timeout, "trigger_engine": true})
    };
    for _ in 0..2 {
        enqueue(&node, now("demo.echo", json!({}), 60)).await;
    }
    enqueue(&node, now("demo.fail", json!({"message": "no"}), 60)).await;
    enqueue(&node, now("demo.sleep", json!({"seconds": 120}), 1)).await;
    eventually("four runs done", WAIT, || async {
        (done_runs(&node).await == 4).then_some(())
    })
    .await;
    let stopped = enqueue(&node, now("demo.sleep", json!({"seconds": 120}), 600)).await;
    eventually("the long sleep runs", WAIT, || async {
        let (_, e) = call(node.http.get(node.url(&format!("/jobs/queue/{stopped}")))).await;
        (e["status"] == "RUNNING").then_some(())
    })
    .await;
    let stop = node.url(&format!("/jobs/queue/{stopped}/stop"));
    let (s, body) = call(node.http.post(stop)).await;
    assert_eq!(s, 200, "{body}");
    enqueue(
        &node,
        json!({"template": "demo.echo", "context": {}, "run_at": "2999-01-01T00:00:00Z"}),
    )
    .await;

    // The stopped job's task ends at the killer's next tick.
    let m = eventually("no job runs on the node", WAIT, || async {
        let m = scrape(&node).await;
        (value(&m, "bildad_node_running_jobs", &[]) == 0.0).then_some(m)
    })
    .await;
    let q = ("queue", "default");
    let finished = |result, reason| {
        value(
            &m,
            "bildad_runs_finished_total",
            &[q, ("result", result), ("reason", reason)],
        )
    };
    assert_eq!(value(&m, "bildad_runs_started_total", &[q]), 5.0);
    assert_eq!(finished("succeeded", "success"), 2.0);
    assert_eq!(finished("failed", "error"), 1.0);
    assert_eq!(finished("failed", "timeout"), 1.0);
    assert_eq!(finished("failed", "stopped"), 1.0);
    assert_eq!(value(&m, "bildad_killer_kills_total", &[]), 1.0);
    assert_eq!(value(&m, "bildad_pickup_latency_seconds", &[q]), 5.0);
    let ran = |result| value(&m, "bildad_run_duration_seconds", &[q, ("result", result)]);
    assert_eq!((ran("succeeded"), ran("failed")), (2.0, 1.0));
    let depth = |state| value(&m, "bildad_queue_depth", &[q, ("state", state)]);
    assert_eq!(
        (depth("available"), depth("scheduled"), depth("running")),
        (1.0, 1.0, 0.0),
        "the stopped entry waits, the later one is scheduled"
    );
    assert!(value(&m, "bildad_engine_passes_total", &[]) >= 5.0);
    assert_eq!(value(&m, "bildad_engine_claimed_total", &[]), 5.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_known_mix_on_postgres() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    known_mix_is_counted_exactly(pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_known_mix_on_mysql() {
    let Some(db) = TestMysql::fresh().await else {
        return;
    };
    known_mix_is_counted_exactly(db.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_of_a_known_mix_on_sqlite() {
    let dir = crate::cli::scratch("metrics");
    known_mix_is_counted_exactly(&format!("sqlite://{}", dir.join("jobs.db").display())).await;
}

/// `--log-format json`: one JSON object per line on stderr, and a run's lines carry its
/// run id, identifier, queue and node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_run_fields() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = crate::cli::scratch("json-logs");
    let url = format!("sqlite://{}", dir.join("jobs.db").display());
    let mut child = crate::bildad()
        .env("RUST_LOG", "info")
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &url])
        .args(["--log-format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bildad starts");
    // Both pipes are read to their end: a closed pipe would fail the server's prints.
    let drain = |pipe: Box<dyn std::io::Read + Send>| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        rx
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let rx = drain(Box::new(child.stderr.take().unwrap()));
    let base = loop {
        let line = stdout.recv_timeout(WAIT).expect("the address within 30 s");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    let body = json!({"template": "demo.fail", "context": {"message": "logged"},
                      "max_retries": 0, "trigger_engine": true});
    let r = reqwest::Client::new()
        .post(format!("{base}/jobs/queue"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let entry: Value = r.json().await.unwrap();
    let line = loop {
        let line = rx.recv_timeout(WAIT).expect("a log line within 30 s");
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["fields"]["message"] == "job failed" {
            break v;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let span = &line["span"];
    assert_eq!(span["identifier"], entry["job_run_identifier"], "{line}");
    assert_eq!(span["queue"], "default", "{line}");
    assert!(span["run_id"].as_i64().is_some(), "{line}");
    assert!(
        span["node"].as_str().is_some_and(|n| !n.is_empty()),
        "{line}"
    );
}
