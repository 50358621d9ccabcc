//! Runs ended by a node's shutdown are counted in `bildad_runs_finished_total`, under
//! their queue: those shutdown aborted (`shutdown`) and those claimed as the executor
//! closed (`not_started`). Each test records on a Prometheus recorder of its own (local
//! to the test's thread: `#[tokio::test]` runs every task there) and parses the output.

use super::{config, store_with, wait_done};
use bildad_core::{
    Backoff, ClaimRequest, JobContext, JobError, JobExecutor, JobRegistry, NewEntry, NodeRef,
    RunResult,
};
use bildad_runtime::{NodeRuntime, TokioExecutor};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::time::Duration;

/// `bildad_runs_finished_total` for `queue` and `reason`, as `handle` renders it (0
/// when absent).
fn finished(handle: &PrometheusHandle, queue: &str, reason: &str) -> f64 {
    let text = handle.render();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("the exposition parses");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == bildad_runtime::metrics::RUNS_FINISHED)
        .filter(|s| s.labels.get("queue") == Some(queue) && s.labels.get("reason") == Some(reason))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("not a counter: {other:?}"),
        })
        .sum()
}

/// A node shut down while two jobs of queue `mail` run (and never return): shutdown
/// aborts both, finalizes them `Shutdown`, and counts both under `mail`.
#[tokio::test]
async fn runs_aborted_by_shutdown_are_counted_under_their_queue() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = store_with("hang", "hang", 600, 3).await;
    let reg = JobRegistry::new().with("hang", |_c: JobContext| async move {
        std::future::pending::<()>().await;
        Ok::<_, JobError>(None)
    });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (_, run) = node
            .engine()
            .enqueue_and_run(NewEntry::new("hang", json!({})).queue("mail"))
            .await
            .unwrap();
        runs.push(run.expect("started"));
    }
    assert_eq!(finished(&handle, "mail", "shutdown"), 0.0);
    node.shutdown(Duration::ZERO).await;
    for run in runs {
        let r = wait_done(&*store, run).await;
        assert_eq!(r.result, Some(RunResult::Failed));
        assert_eq!(r.reason.as_deref(), Some("Shutdown"));
    }
    assert_eq!(finished(&handle, "mail", "shutdown"), 2.0);
    assert_eq!(finished(&handle, "default", "shutdown"), 0.0);
}

/// A run handed to an executor that has shut down never starts: it goes back to its
/// queue (`NotStarted`) and is counted under its queue as `not_started`.
#[tokio::test]
async fn a_run_claimed_as_the_executor_closed_is_counted_not_started() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let _local = metrics::set_default_local_recorder(&recorder);
    let store = store_with("echo", "echo", 600, 0).await;
    let node = NodeRef::new("closing");
    store.heartbeat(&node).await.unwrap();
    let exec = TokioExecutor::new(store.clone(), node.clone(), Backoff::immediate(), 4);
    exec.shutdown(Duration::ZERO).await;
    store
        .enqueue(
            NewEntry::new("echo", json!({}))
                .queue("mail")
                .identifier("late"),
        )
        .await
        .unwrap();
    let claimed = store
        .claim(ClaimRequest {
            node,
            job_types: vec!["echo".into()],
            limit: 1,
            expiry_grace: Duration::from_secs(600),
            only_identifier: Some("late".into()),
            queues: None,
            queue_caps: Default::default(),
        })
        .await
        .unwrap()
        .remove(0);
    let run = claimed.run.id;
    let reg = JobRegistry::new().with("echo", |c: JobContext| async move { Ok(Some(c.context)) });
    exec.spawn(claimed, reg.get("echo").unwrap());
    let r = wait_done(&*store, run).await;
    assert_eq!(r.reason.as_deref(), Some("NotStarted"));
    assert_eq!(finished(&handle, "mail", "not_started"), 1.0);
    assert!(store.get_entry("late").await.is_ok(), "the entry went back");
}
