//! Engine, executor and killer on `MemoryStore`: fast, deterministic checks of the
//! runtime's own decisions. Multi-node scenarios live in the workspace `tests/` package.

use bildad_core::{
    Backoff, Cancellation, JobContext, JobError, JobExecutor, JobRegistry, JobStore, MemoryStore,
    NewEntry, NewTemplate, NodeConfig, NodeRef, RunResult, RunStatus, StoreError,
};
use bildad_runtime::{Engine, EngineReport, JobKiller, NodeRuntime, TokioExecutor};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod hardening;
mod shutdown_metrics;
mod snooze;

fn config() -> NodeConfig {
    NodeConfig {
        node_name: "t".into(),
        killer_interval: Duration::from_millis(100),
        node_dead_after: Duration::from_secs(1),
        backoff: Backoff::immediate(),
        ..NodeConfig::default()
    }
}

async fn store_with(code: &str, job_type: &str, timeout: i32, retries: i32) -> Arc<dyn JobStore> {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let mut t = NewTemplate::new(code, code, job_type, json!({"type": "object"}));
    t.default_timeout_seconds = timeout;
    t.default_max_retries = retries;
    store.create_template(t).await.unwrap();
    store
}

async fn wait_done(store: &dyn JobStore, run: i64) -> bildad_core::JobRun {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = store.get_run(run).await.unwrap();
        if r.status == RunStatus::Done {
            return r;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {run} not done");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls `check` until it holds (at most 20 s, then panics naming `what`).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[test]
fn report_serializes_as_the_spec_says() {
    let mut r = EngineReport::default();
    r.start.ok_count = 2;
    r.expire.error_count = 1;
    assert_eq!(
        serde_json::to_value(r).unwrap(),
        json!({"start": {"ok_count": 2, "error_count": 0}, "expire": {"ok_count": 0, "error_count": 1}})
    );
}

#[tokio::test]
async fn start_rejects_an_unusable_config() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let bad = NodeConfig {
        batch_size: 0,
        ..config()
    };
    let err = NodeRuntime::start(store, JobRegistry::new(), bad)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

#[tokio::test]
async fn every_start_is_a_new_instance_and_runs_record_it() {
    let store = store_with("echo", "echo", 60, 0).await;
    let reg = JobRegistry::new().with("echo", |c: JobContext| async move { Ok(Some(c.context)) });
    let a = NodeRuntime::start(store.clone(), reg.clone(), config())
        .await
        .unwrap();
    let b = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    assert_eq!(a.node().name, b.node().name);
    assert_ne!(a.node().instance_id, b.node().instance_id);
    let (_, run) = b
        .engine()
        .enqueue_and_run(NewEntry::new("echo", json!({})))
        .await
        .unwrap();
    let r = wait_done(&*store, run.unwrap()).await;
    assert_eq!(r.node, b.node().instance_id);
    assert_eq!(r.node_name, "t");
    a.shutdown(Duration::ZERO).await;
    b.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn the_job_sees_its_context() {
    let store = store_with("ctx", "ctx", 60, 4).await;
    type Seen = Option<(Value, String, i32, i32, String)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let s2 = seen.clone();
    let reg = JobRegistry::new().with("ctx", move |c: JobContext| {
        let s2 = s2.clone();
        async move {
            *s2.lock().unwrap() = Some((
                c.context.clone(),
                c.job_run_identifier.clone(),
                c.retry,
                c.max_retries,
                c.template.clone(),
            ));
            assert!(!c.is_cancelled());
            Ok(None)
        }
    });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    let (_, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("ctx", json!({"a": 1})).identifier("id-1"))
        .await
        .unwrap();
    let r = wait_done(&*store, run.unwrap()).await;
    assert_eq!(r.result, Some(RunResult::Succeeded));
    assert_eq!(
        seen.lock().unwrap().clone().unwrap(),
        (json!({"a": 1}), "id-1".into(), 0, 4, "ctx".into())
    );
    node.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn enqueue_and_run_needs_a_free_slot() {
    let store = store_with("hold", "hold", 60, 0).await;
    let gate = Cancellation::new();
    let g = gate.clone();
    let reg = JobRegistry::new().with("hold", move |_c: JobContext| {
        let g = g.clone();
        async move {
            g.cancelled().await;
            Ok::<_, JobError>(None)
        }
    });
    let cfg = NodeConfig {
        max_concurrent_jobs: 1,
        ..config()
    };
    let node = NodeRuntime::start(store.clone(), reg, cfg).await.unwrap();
    let (_, first) = node
        .engine()
        .enqueue_and_run(NewEntry::new("hold", json!({})))
        .await
        .unwrap();
    assert!(first.is_some());
    let (second, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("hold", json!({})))
        .await
        .unwrap();
    assert_eq!(run, None, "no free slot");
    assert_eq!(
        store
            .get_entry(&second.job_run_identifier)
            .await
            .unwrap()
            .status,
        bildad_core::EntryStatus::Available
    );
    gate.cancel();
    wait_done(&*store, first.unwrap()).await;
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn killer_times_out_a_run_without_a_local_task_and_cancels_local_ones() {
    let store = store_with("hang", "hang", 1, 0).await;
    let node = NodeRef::new("k");
    store.heartbeat(&node).await.unwrap();
    let exec = TokioExecutor::new(store.clone(), node.clone(), Backoff::immediate(), 10);
    let flags: Arc<Mutex<Vec<Cancellation>>> = Arc::default();
    let f2 = flags.clone();
    let reg = JobRegistry::new().with("hang", move |c: JobContext| {
        f2.lock().unwrap().push(c.cancellation.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(None)
        }
    });
    let engine = Engine::new(
        store.clone(),
        reg,
        config(),
        node.clone(),
        Arc::new(exec.clone()),
    );
    let killer = JobKiller::new(
        store.clone(),
        node.clone(),
        Arc::new(exec.clone()),
        Backoff::immediate(),
    );
    // One run with a local task, one whose task vanished (claimed but never started).
    let (_, local) = engine
        .enqueue_and_run(NewEntry::new("hang", json!({})))
        .await
        .unwrap();
    store
        .enqueue(NewEntry::new("hang", json!({})).identifier("orphan"))
        .await
        .unwrap();
    let orphan = store
        .claim(bildad_core::ClaimRequest {
            node: node.clone(),
            job_types: vec!["hang".into()],
            limit: 1,
            expiry_grace: Duration::from_secs(600),
            only_identifier: Some("orphan".into()),
            queues: None,
            queue_caps: Default::default(),
        })
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        killer.tick().await.unwrap().timed_out,
        0,
        "not yet timed out"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut killed = 0;
    while killed < 2 {
        killed += killer.tick().await.unwrap().timed_out;
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for id in [local.unwrap(), orphan.run.id] {
        let r = store.get_run(id).await.unwrap();
        assert_eq!(r.reason.as_deref(), Some("Timeout"));
    }
    assert!(exec.running().is_empty());
    assert!(flags.lock().unwrap().iter().all(Cancellation::is_cancelled));
    assert_eq!(killer.tick().await.unwrap().timed_out, 0, "killed once");
}

#[tokio::test]
async fn killer_aborts_tasks_finalized_elsewhere() {
    let store = store_with("hang", "hang", 600, 0).await;
    let flag: Arc<Mutex<Option<Cancellation>>> = Arc::default();
    let f2 = flag.clone();
    let reg = JobRegistry::new().with("hang", move |c: JobContext| {
        *f2.lock().unwrap() = Some(c.cancellation.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(None)
        }
    });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    let (e, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("hang", json!({})))
        .await
        .unwrap();
    assert_eq!(node.executor().running(), vec![run.unwrap()]);
    until("the job runs", || async { flag.lock().unwrap().is_some() }).await;
    store.stop_entry(&e.job_run_identifier).await.unwrap();
    // The background killer or this loop's ticks abort it, whichever comes first.
    until("the task is aborted and ends", || async {
        node.killer().tick().await.unwrap();
        node.executor().running_count() == 0
    })
    .await;
    let cancel = flag.lock().unwrap().clone().unwrap();
    assert!(cancel.is_cancelled(), "aborted, not ended on its own");
    node.shutdown(Duration::ZERO).await;
}

#[tokio::test]
async fn shutdown_is_idempotent_and_closes_the_engine() {
    let store = store_with("echo", "echo", 60, 0).await;
    let reg = JobRegistry::new().with("echo", |c: JobContext| async move { Ok(Some(c.context)) });
    let node = NodeRuntime::start(store.clone(), reg, config())
        .await
        .unwrap();
    node.shutdown(Duration::ZERO).await;
    node.shutdown(Duration::ZERO).await;
    store
        .enqueue(NewEntry::new("echo", json!({})))
        .await
        .unwrap();
    assert_eq!(
        node.engine().run_once().await.unwrap(),
        EngineReport::default()
    );
    assert_eq!(store.stats().await.unwrap().available, 1);
}
