//! A job that snoozes or cancels itself (SPEC §8), through a node: the executor
//! finalizes the outcome the job returned, with its kind.

use super::{config, store_with, until, wait_done};
use bildad_core::{JobContext, JobError, JobRegistry, NewEntry, RunFilter, RunResult};
use bildad_runtime::NodeRuntime;
use serde_json::json;
use std::time::Duration;

/// With `max_retries` 0, a job that snoozes on its first run runs again after the
/// delay and succeeds: the snooze spent no retry. The history shows both runs.
#[tokio::test]
async fn a_snoozed_job_runs_again_later_without_spending_a_retry() {
    let store = store_with("snooze", "snooze", 60, 0).await;
    let reg = JobRegistry::new().with("snooze", |c: JobContext| async move {
        if c.retry == 0 {
            return Err(JobError::snooze(Duration::from_millis(200)));
        }
        Ok(Some(json!({"ran_after_snooze": true})))
    });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    let (entry, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("snooze", json!({})))
        .await
        .unwrap();
    let first = wait_done(&*store, run.unwrap()).await;
    assert_eq!(first.result, Some(RunResult::Failed));
    assert_eq!(first.reason.as_deref(), Some("Snoozed for 0.2 s"));
    let requeued = store.get_entry(&entry.job_run_identifier).await.unwrap();
    assert!(
        requeued.run_at >= first.ended_at.unwrap() + chrono::Duration::milliseconds(200),
        "available again only after the delay: {requeued:?}"
    );
    let id = entry.job_run_identifier.clone();
    until("the snoozed job ran again and succeeded", || {
        let (store, engine, id) = (store.clone(), node.engine().clone(), id.clone());
        async move {
            let _ = engine.run_once().await;
            let filter = RunFilter {
                identifier: Some(id),
                ..RunFilter::default()
            };
            let runs = store.list_runs(filter, Default::default()).await.unwrap();
            runs.items
                .iter()
                .any(|r| r.result == Some(RunResult::Succeeded))
        }
    })
    .await;
    assert!(
        store.get_entry(&id).await.is_err(),
        "done: the entry is gone"
    );
    node.shutdown(Duration::ZERO).await;
}

/// A job that cancels itself ends `FAILED` with `Cancelled: <reason>`, and its entry is
/// deleted although it had retries left.
#[tokio::test]
async fn a_cancelled_job_is_not_retried() {
    let store = store_with("cancel", "cancel", 60, 5).await;
    let reg = JobRegistry::new().with("cancel", |_c: JobContext| async move {
        Err::<Option<serde_json::Value>, _>(JobError::cancel("the order was withdrawn"))
    });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    let (entry, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("cancel", json!({})))
        .await
        .unwrap();
    let r = wait_done(&*store, run.unwrap()).await;
    assert_eq!(r.result, Some(RunResult::Failed));
    assert_eq!(
        r.reason.as_deref(),
        Some("Cancelled: the order was withdrawn")
    );
    assert!(store.get_entry(&entry.job_run_identifier).await.is_err());
    assert_eq!(store.stats().await.unwrap().available, 0);
    node.shutdown(Duration::ZERO).await;
}
