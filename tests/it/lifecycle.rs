//! One node: success, errors and retries, panics, invalid starts, outages.

use bildad_conformance::{Call, Fault, FaultStore};
use bildad_core::{JobStore, NewEntry, RunResult, RunStatus, TemplatePatch};
use bildad_runtime::Counts;
use bildad_tests::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(10);

async fn success(t: TestStore) {
    let s = &*t.store;
    template()
        .code("echo")
        .job_type("t.echo")
        .max_retries(3)
        .create(s)
        .await;
    let node = start_node(&t.store, fast_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("echo", json!({"x": 1})).identifier("ok-1"))
        .await
        .unwrap();
    let report = node.engine().run_once().await.unwrap();
    assert_eq!(
        report.start,
        Counts {
            ok_count: 1,
            error_count: 0
        }
    );
    let runs = wait_settled(s, "ok-1", SETTLE).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let r = &runs[0];
    assert_eq!(r.result, Some(RunResult::Succeeded));
    assert_eq!(r.output, Some(json!({"x": 1})));
    assert_eq!(r.node, node.node().instance_id);
    assert_eq!(r.retry, 0);
    node.shutdown(Duration::from_secs(1)).await;
}

async fn errors_are_retried_until_max_retries(t: TestStore) {
    let s = &*t.store;
    template()
        .code("fail")
        .job_type("t.fail")
        .max_retries(2)
        .create(s)
        .await;
    let node = start_node(&t.store, ticking_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("fail", json!({"message": "boom"})).identifier("err-1"))
        .await
        .unwrap();
    let runs = wait_settled(s, "err-1", SETTLE).await;
    assert_eq!(
        runs.iter().map(|r| r.retry).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    for r in &runs {
        assert_eq!(r.result, Some(RunResult::Failed), "{r:#?}");
        assert_eq!(r.reason.as_deref(), Some("boom"));
    }
    node.shutdown(Duration::from_secs(1)).await;
}

async fn flaky_job_succeeds_on_its_third_try(t: TestStore) {
    let s = &*t.store;
    template()
        .code("flaky")
        .job_type("t.flaky")
        .max_retries(5)
        .create(s)
        .await;
    let node = start_node(&t.store, ticking_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("flaky", json!({"fail_times": 2})).identifier("flaky-1"))
        .await
        .unwrap();
    let runs = wait_settled(s, "flaky-1", SETTLE).await;
    let results: Vec<_> = runs.iter().map(|r| (r.retry, r.result)).collect();
    assert_eq!(
        results,
        vec![
            (0, Some(RunResult::Failed)),
            (1, Some(RunResult::Failed)),
            (2, Some(RunResult::Succeeded))
        ]
    );
    assert_eq!(runs[1].reason.as_deref(), Some("flaky failure 1"));
    assert_eq!(runs[2].output, Some(json!({"succeeded_on": 2})));
    node.shutdown(Duration::from_secs(1)).await;
}

async fn permanent_error_is_not_retried(t: TestStore) {
    let s = &*t.store;
    template()
        .code("perm")
        .job_type("t.permanent")
        .max_retries(3)
        .create(s)
        .await;
    let node = start_node(&t.store, ticking_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("perm", json!({"message": "no such user"})).identifier("perm-1"))
        .await
        .unwrap();
    let runs = wait_settled(s, "perm-1", SETTLE).await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].reason.as_deref(), Some("no such user"));
    node.shutdown(Duration::from_secs(1)).await;
}

async fn panic_fails_the_run_and_the_node_lives_on(t: TestStore) {
    let s = &*t.store;
    template()
        .code("panic")
        .job_type("t.panic")
        .max_retries(0)
        .create(s)
        .await;
    template()
        .code("echo")
        .job_type("t.echo")
        .max_retries(0)
        .create(s)
        .await;
    let node = start_node(&t.store, fast_config("a")).await;
    let (_, run) = node
        .engine()
        .enqueue_and_run(NewEntry::new("panic", json!({"message": "kaboom"})).identifier("p-1"))
        .await
        .unwrap();
    assert!(run.is_some());
    let runs = wait_settled(s, "p-1", SETTLE).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].result, Some(RunResult::Failed));
    let reason = runs[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("kaboom"), "{reason}");
    // The run is recorded before the executor drops the finished task from its registry:
    // wait for that, rather than race it.
    wait_for(
        "the panicked task to leave the executor",
        SETTLE,
        || async { (node.executor().running_count() == 0).then_some(()) },
    )
    .await;
    // The node still runs jobs.
    node.engine()
        .enqueue_and_run(NewEntry::new("echo", json!({})).identifier("p-2"))
        .await
        .unwrap();
    let runs = wait_settled(s, "p-2", SETTLE).await;
    assert_eq!(runs[0].result, Some(RunResult::Succeeded));
    node.shutdown(Duration::from_secs(1)).await;
}

async fn invalid_context_at_start_fails_once_and_removes_the_entry(t: TestStore) {
    let s = &*t.store;
    template()
        .code("strict")
        .job_type("t.echo")
        .max_retries(3)
        .create(s)
        .await;
    let node = start_node(&t.store, fast_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("strict", json!({"n": "seven"})).identifier("inv-1"))
        .await
        .unwrap();
    // The schema changes after enqueue: the context no longer satisfies it.
    s.update_template(
        "strict",
        TemplatePatch {
            context_schema: Some(json!({
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"]
            })),
            ..TemplatePatch::default()
        },
    )
    .await
    .unwrap();
    let report = node.engine().run_once().await.unwrap();
    assert_eq!(
        report.start,
        Counts {
            ok_count: 0,
            error_count: 1
        }
    );
    assert!(!entry_exists(s, "inv-1").await, "the entry must be removed");
    for _ in 0..3 {
        node.engine().run_once().await.unwrap();
    }
    let runs = runs_of(s, "inv-1").await;
    assert_eq!(runs.len(), 1, "no loop: {runs:#?}");
    assert_eq!(runs[0].status, RunStatus::Done);
    assert_eq!(runs[0].result, Some(RunResult::Failed));
    let reason = runs[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("/context/n"), "{reason}");
    node.shutdown(Duration::from_secs(1)).await;
}

async fn unknown_job_type_at_start_fails_once_and_removes_the_entry(t: TestStore) {
    let faulty = FaultStore::new(t.store.clone());
    faulty.claims_report_job_type(Some("t.nobody"));
    let store: Arc<dyn JobStore> = faulty.clone();
    template()
        .code("echo")
        .job_type("t.echo")
        .max_retries(3)
        .create(&*store)
        .await;
    let node = start_node(&store, fast_config("a")).await;
    node.engine()
        .enqueue(NewEntry::new("echo", json!({})).identifier("unk-1"))
        .await
        .unwrap();
    let report = node.engine().run_once().await.unwrap();
    assert_eq!(report.start.error_count, 1);
    assert_eq!(report.start.ok_count, 0);
    node.engine().run_once().await.unwrap();
    assert!(!entry_exists(&*store, "unk-1").await);
    let runs = runs_of(&*store, "unk-1").await;
    assert_eq!(runs.len(), 1, "{runs:#?}");
    let reason = runs[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("unknown job type"), "{reason}");
    node.shutdown(Duration::from_secs(1)).await;
}

async fn outcome_is_recorded_after_a_database_outage(t: TestStore) {
    let faulty = FaultStore::new(t.store.clone());
    let store: Arc<dyn JobStore> = faulty.clone();
    template()
        .code("echo")
        .job_type("t.echo")
        .max_retries(3)
        .create(&*store)
        .await;
    let node = start_node(&store, fast_config("a")).await;
    faulty.fail(Call::FINALIZES, Fault::Unavailable);
    node.engine()
        .enqueue_and_run(NewEntry::new("echo", json!({"v": 9})).identifier("out-1"))
        .await
        .unwrap();
    wait_for("a refused finalize", SETTLE, || async {
        (faulty.injected() >= 2).then_some(())
    })
    .await;
    let runs = runs_of(&*store, "out-1").await;
    assert_eq!(runs[0].status, RunStatus::Running);
    faulty.heal();
    let runs = wait_settled(&*store, "out-1", SETTLE).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].result, Some(RunResult::Succeeded));
    assert_eq!(runs[0].output, Some(json!({"v": 9})));
    node.shutdown(Duration::from_secs(1)).await;
}

async fn engine_claims_no_more_than_free_slots(t: TestStore) {
    let s = &*t.store;
    template()
        .code("gate")
        .job_type("t.gate")
        .max_retries(0)
        .create(s)
        .await;
    let config = bildad_core::NodeConfig {
        max_concurrent_jobs: 3,
        ..fast_config("a")
    };
    // The jobs wait at a closed gate, so the three slots stay taken until the test opens it.
    let gate = Gate::new();
    let node = gate.node(&t.store, config).await;
    for i in 0..5 {
        node.engine()
            .enqueue(NewEntry::new("gate", json!({})).identifier(format!("slot-{i}")))
            .await
            .unwrap();
    }
    let report = node.engine().run_once().await.unwrap();
    assert_eq!(report.start.ok_count, 3);
    let report = node.engine().run_once().await.unwrap();
    assert_eq!(report.start.ok_count, 0, "no free slot");
    // run_until_idle waits for slots and drains the queue.
    let engine = node.engine().clone();
    let drain = tokio::spawn(async move { engine.run_until_idle().await });
    gate.open.add_permits(5);
    let report = drain.await.unwrap().unwrap();
    assert_eq!(report.start.ok_count, 2);
    for i in 0..5 {
        let runs = wait_settled(s, &format!("slot-{i}"), SETTLE).await;
        assert_eq!(runs[0].result, Some(RunResult::Succeeded));
    }
    node.shutdown(Duration::from_secs(1)).await;
}

/// `run_until_idle` claims the next batch while the previous one starts; runs claimed and
/// not yet started count against the free slots, so no more than `max_concurrent_jobs`
/// jobs ever run at once.
async fn run_until_idle_never_runs_more_than_max_concurrent_jobs(t: TestStore) {
    let s = &*t.store;
    template()
        .code("peak")
        .job_type("t.peak")
        .max_retries(0)
        .create(s)
        .await;
    let running = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let registry =
        bildad_core::JobRegistry::new().with("t.peak", move |_ctx: bildad_core::JobContext| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                r.fetch_sub(1, Ordering::SeqCst);
                Ok(None)
            }
        });
    let config = bildad_core::NodeConfig {
        max_concurrent_jobs: 7,
        batch_size: 5,
        ..fast_config("a")
    };
    let node = bildad_runtime::NodeRuntime::start(t.store.clone(), registry, config)
        .await
        .unwrap();
    let entries = (0..120)
        .map(|i| NewEntry::new("peak", json!({})).identifier(format!("peak-{i}")))
        .collect();
    s.enqueue_many(entries).await.unwrap();
    let report = node.engine().run_until_idle().await.unwrap();
    assert_eq!(report.start.ok_count, 120);
    for i in 0..120 {
        let runs = wait_settled(s, &format!("peak-{i}"), SETTLE).await;
        assert_eq!(runs[0].result, Some(RunResult::Succeeded));
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= 7,
        "{peak} jobs ran at once, max_concurrent_jobs is 7"
    );
    assert!(peak >= 2, "jobs never overlapped ({peak})");
    node.shutdown(Duration::from_secs(1)).await;
}

on_every_store!(
    run_until_idle_never_runs_more_than_max_concurrent_jobs,
    success,
    errors_are_retried_until_max_retries,
    flaky_job_succeeds_on_its_third_try,
    permanent_error_is_not_retried,
    panic_fails_the_run_and_the_node_lives_on,
    invalid_context_at_start_fails_once_and_removes_the_entry,
    unknown_job_type_at_start_fails_once_and_removes_the_entry,
    outcome_is_recorded_after_a_database_outage,
    engine_claims_no_more_than_free_slots,
);
