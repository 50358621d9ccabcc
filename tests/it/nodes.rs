//! Several nodes on one store: timeouts, crashes, operator stop/remove across nodes,
//! graceful shutdown.

use bildad_core::{EntryStatus, NewEntry, NodeConfig, RunResult, RunStatus};
use bildad_tests::*;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const SETTLE: Duration = Duration::from_secs(10);

async fn timeout_is_killed_by_the_owning_node(t: TestStore) {
    let s = &*t.store;
    template()
        .code("slow")
        .job_type("t.sleep")
        .timeout_seconds(1)
        .max_retries(0)
        .create(s)
        .await;
    // A's killer is slow, B's is fast: if B killed runs it does not own, it would be first.
    let a = start_node(
        &t.store,
        NodeConfig {
            killer_interval: Duration::from_millis(500),
            node_dead_after: Duration::from_secs(5),
            ..fast_config("a")
        },
    )
    .await;
    let b = start_node(&t.store, fast_config("b")).await;
    let (_, run) = a
        .engine()
        .enqueue_and_run(NewEntry::new("slow", json!({"ms": 30_000})).identifier("to-1"))
        .await
        .unwrap();
    let run_id = run.expect("started on a");
    let deadline = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < deadline {
        let report = b.killer().tick().await.unwrap();
        assert_eq!(report.timed_out, 0, "b killed a run it does not own");
        if s.get_run(run_id).await.unwrap().status == RunStatus::Done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = wait_settled(s, "to-1", SETTLE).await;
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!(r.node, a.node().instance_id);
    assert_eq!(r.result, Some(RunResult::Failed));
    assert_eq!(r.reason.as_deref(), Some("Timeout"));
    assert!(r.ended_at.unwrap() >= r.timeout_at);
    wait_for("a's task to be aborted", SETTLE, || async {
        (a.executor().running_count() == 0).then_some(())
    })
    .await;
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

async fn crashed_node_runs_expire_and_are_retried(t: TestStore) {
    let s = &*t.store;
    template()
        .code("hang")
        .job_type("t.slow_first")
        .max_retries(1)
        .timeout_seconds(3600)
        .create(s)
        .await;
    let a = start_node(&t.store, fast_config("a")).await;
    let (_, run) = a
        .engine()
        .enqueue_and_run(NewEntry::new("hang", json!({"ms": 60_000})).identifier("crash-1"))
        .await
        .unwrap();
    let run_id = run.unwrap();
    let b = start_node(&t.store, ticking_config("b")).await;
    a.crash();
    let expired = wait_for("the run to expire", SETTLE, || async {
        let r = s.get_run(run_id).await.unwrap();
        (r.status == RunStatus::Done).then_some(r)
    })
    .await;
    assert_eq!(expired.reason.as_deref(), Some("Expired"));
    // The rule that ended it is the dead node's, read on the store clock: not before A's
    // last heartbeat was `node_dead_after` old, and long before the run's own timeout.
    let ended = expired.ended_at.expect("a done run has ended_at");
    let a_node = s
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.instance_id == a.node().instance_id)
        .expect("a's node row");
    let dead_after = chrono::Duration::from_std(fast_config("a").node_dead_after).unwrap();
    assert!(
        ended >= a_node.last_heartbeat_at + dead_after,
        "expired at {ended}, while a was alive (last heartbeat {})",
        a_node.last_heartbeat_at
    );
    assert!(
        ended < expired.timeout_at,
        "expired at {ended}, not before its timeout {}",
        expired.timeout_at
    );
    let runs = wait_settled(s, "crash-1", SETTLE).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[1].retry, 1);
    assert_eq!(runs[1].node, b.node().instance_id);
    assert_eq!(runs[1].result, Some(RunResult::Succeeded));
    b.shutdown(Duration::from_secs(1)).await;
}

async fn stop_from_another_node_aborts_the_task(t: TestStore) {
    let s = &*t.store;
    template()
        .code("gate")
        .job_type("t.gate")
        .max_retries(0)
        .create(s)
        .await;
    let gate = Gate::new();
    let b = gate.node(&t.store, fast_config("b")).await;
    let a = gate.node(&t.store, fast_config("a")).await;
    let (_, run) = b
        .engine()
        .enqueue_and_run(NewEntry::new("gate", json!({})).identifier("stop-1"))
        .await
        .unwrap();
    let run_id = run.unwrap();
    wait_for("the job to start", SETTLE, || async {
        (gate.started.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let stopped = a.engine().store().stop_entry("stop-1").await.unwrap();
    assert_eq!(stopped.node, b.node().instance_id);
    wait_for("b's killer to abort the task", SETTLE, || async {
        (gate.aborted.load(Ordering::SeqCst) == 1 && b.executor().running_count() == 0)
            .then_some(())
    })
    .await;
    let r = s.get_run(run_id).await.unwrap();
    assert_eq!(r.reason.as_deref(), Some("Stopped"));
    let e = s.get_entry("stop-1").await.unwrap();
    assert_eq!(e.status, EntryStatus::Available);
    assert_eq!(gate.finished.load(Ordering::SeqCst), 0);
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

async fn remove_from_another_node_aborts_the_task(t: TestStore) {
    let s = &*t.store;
    template()
        .code("gate")
        .job_type("t.gate")
        .max_retries(3)
        .create(s)
        .await;
    let gate = Gate::new();
    let b = gate.node(&t.store, fast_config("b")).await;
    let a = gate.node(&t.store, fast_config("a")).await;
    let (_, run) = b
        .engine()
        .enqueue_and_run(NewEntry::new("gate", json!({})).identifier("rm-1"))
        .await
        .unwrap();
    let run_id = run.unwrap();
    a.engine().store().remove_entry("rm-1").await.unwrap();
    wait_for("b's killer to abort the task", SETTLE, || async {
        (b.executor().running_count() == 0).then_some(())
    })
    .await;
    assert!(!entry_exists(s, "rm-1").await);
    let r = s.get_run(run_id).await.unwrap();
    assert_eq!(r.reason.as_deref(), Some("Removed"));
    assert_eq!(gate.finished.load(Ordering::SeqCst), 0);
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

/// A job that completes after an operator ended its run changes nothing.
async fn late_completion_after_stop_and_remove_changes_nothing(t: TestStore) {
    let s = &*t.store;
    template()
        .code("gate")
        .job_type("t.gate")
        .max_retries(3)
        .create(s)
        .await;
    let gate = Gate::new();
    // B's killer first ticks after a minute: the jobs outlive the stop and the removal.
    let slow_killer = NodeConfig {
        killer_interval: Duration::from_secs(60),
        node_dead_after: Duration::from_secs(600),
        ..fast_config("b")
    };
    let b = gate.node(&t.store, slow_killer).await;
    let a = gate.node(&t.store, fast_config("a")).await;
    a.engine().close().await;
    for id in ["late-stop", "late-rm"] {
        let (_, run) = b
            .engine()
            .enqueue_and_run(NewEntry::new("gate", json!({})).identifier(id))
            .await
            .unwrap();
        assert!(run.is_some());
    }
    wait_for("both jobs to start", SETTLE, || async {
        (gate.started.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    let stop_run = a
        .engine()
        .store()
        .stop_entry("late-stop")
        .await
        .unwrap()
        .run_id;
    let rm_run = s
        .get_entry("late-rm")
        .await
        .unwrap()
        .current_run_id
        .unwrap();
    a.engine().store().remove_entry("late-rm").await.unwrap();
    // Both jobs now complete "successfully", late.
    gate.open.add_permits(2);
    wait_for("both late jobs to finish", SETTLE, || async {
        (gate.finished.load(Ordering::SeqCst) == 2 && b.executor().running_count() == 0)
            .then_some(())
    })
    .await;
    let r = s.get_run(stop_run).await.unwrap();
    assert_eq!(r.result, Some(RunResult::Failed));
    assert_eq!(r.reason.as_deref(), Some("Stopped"));
    assert_eq!(r.output, None);
    let e = s.get_entry("late-stop").await.unwrap();
    assert_eq!(e.status, EntryStatus::Available, "the entry stays requeued");
    assert_eq!(runs_of(s, "late-stop").await.len(), 1);
    let r = s.get_run(rm_run).await.unwrap();
    assert_eq!(r.reason.as_deref(), Some("Removed"));
    assert!(!entry_exists(s, "late-rm").await, "no resurrection");
    assert_eq!(runs_of(s, "late-rm").await.len(), 1);
    a.shutdown(Duration::from_secs(1)).await;
    b.shutdown(Duration::from_secs(1)).await;
}

async fn graceful_shutdown_finalizes_running_jobs_and_they_are_retried(t: TestStore) {
    let s = &*t.store;
    template()
        .code("hang")
        .job_type("t.slow_first")
        .max_retries(2)
        .create(s)
        .await;
    template()
        .code("sleep")
        .job_type("t.sleep")
        .max_retries(0)
        .create(s)
        .await;
    let a = start_node(&t.store, fast_config("a")).await;
    let (_, hang) = a
        .engine()
        .enqueue_and_run(NewEntry::new("hang", json!({"ms": 60_000})).identifier("sd-hang"))
        .await
        .unwrap();
    let (_, quick) = a
        .engine()
        .enqueue_and_run(NewEntry::new("sleep", json!({"ms": 200})).identifier("sd-quick"))
        .await
        .unwrap();
    a.shutdown(Duration::from_millis(1000)).await;
    // Finished within the grace period: its own outcome.
    let q = s.get_run(quick.unwrap()).await.unwrap();
    assert_eq!(q.result, Some(RunResult::Succeeded));
    // Still running at the end of the grace period: Shutdown, retried by the rule.
    let h = s.get_run(hang.unwrap()).await.unwrap();
    assert_eq!(h.result, Some(RunResult::Failed));
    assert_eq!(h.reason.as_deref(), Some("Shutdown"));
    let e = s.get_entry("sd-hang").await.unwrap();
    assert_eq!(e.status, EntryStatus::Available);
    let nodes = s.list_nodes().await.unwrap();
    let me = nodes
        .iter()
        .find(|n| n.instance_id == a.node().instance_id)
        .unwrap();
    assert!(me.stopped_at.is_some());
    // A stopped node claims nothing.
    assert_eq!(a.engine().run_once().await.unwrap().start.ok_count, 0);
    let b = start_node(&t.store, ticking_config("b")).await;
    let runs = wait_settled(s, "sd-hang", SETTLE).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].node, b.node().instance_id);
    assert_eq!(runs[1].result, Some(RunResult::Succeeded));
    b.shutdown(Duration::from_secs(1)).await;
}

/// A node with `wake_on_enqueue` and no ticker runs entries enqueued elsewhere (a plain
/// enqueue through the store, no trigger, no cron request): PostgreSQL wakes it by
/// NOTIFY, MemoryStore and SQLite (the single embedded node) in process.
async fn wake_on_enqueue_runs_entries_without_a_cron_request(t: TestStore) {
    let s = &*t.store;
    template()
        .code("wake")
        .job_type("t.echo")
        .max_retries(0)
        .create(s)
        .await;
    let b = start_node(
        &t.store,
        NodeConfig {
            wake_on_enqueue: true,
            ..fast_config("b")
        },
    )
    .await;
    assert!(
        s.listen_for_enqueues().await.unwrap().is_some(),
        "{}",
        t.backend
    );
    for i in 0..5 {
        s.enqueue(NewEntry::new("wake", json!({"i": i})).identifier(format!("wake-{i}")))
            .await
            .unwrap();
    }
    for i in 0..5 {
        let runs = wait_settled(s, &format!("wake-{i}"), SETTLE).await;
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].result, Some(RunResult::Succeeded));
        assert_eq!(runs[0].node, b.node().instance_id);
    }
    b.shutdown(Duration::from_secs(1)).await;
}

on_every_store!(
    wake_on_enqueue_runs_entries_without_a_cron_request,
    timeout_is_killed_by_the_owning_node,
    crashed_node_runs_expire_and_are_retried,
    stop_from_another_node_aborts_the_task,
    remove_from_another_node_aborts_the_task,
    late_completion_after_stop_and_remove_changes_nothing,
    graceful_shutdown_finalizes_running_jobs_and_they_are_retried,
);
