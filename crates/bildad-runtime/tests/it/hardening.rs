//! Issue #12: runs claimed but never started, an outage longer than `node_dead_after`,
//! slots of aborted blocking jobs, outcomes queued at shutdown, and the killer's view of
//! its own finished runs. Each interleaving is reached through `FaultStore`, not timing.

use super::{config, store_with, until, wait_done};
use bildad_conformance::{Call, Fault, FaultStore, Once};
use bildad_core::{
    Backoff, Cancellation, EntryStatus, JobContext, JobError, JobExecutor, JobRegistry, JobStore,
    NewEntry, NodeConfig, NodeRef, RunResult,
};
use bildad_runtime::{Engine, JobKiller, NodeRuntime, TokioExecutor};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A registry whose job `count` counts its executions.
fn counting() -> (JobRegistry, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let reg = JobRegistry::new().with("count", move |_c: JobContext| {
        r.fetch_add(1, Ordering::SeqCst);
        async { Ok(None) }
    });
    (reg, runs)
}

/// An engine, its executor and its killer on `store`, with no background task: the
/// test ticks the killer itself.
fn bare(
    store: Arc<dyn JobStore>,
    reg: JobRegistry,
    slots: usize,
) -> (Engine, TokioExecutor, JobKiller) {
    let node = NodeRef::new("bare");
    let exec = TokioExecutor::new(store.clone(), node.clone(), Backoff::immediate(), slots);
    let engine = Engine::new(
        store.clone(),
        reg,
        config(),
        node.clone(),
        Arc::new(exec.clone()),
    );
    let killer = JobKiller::new(store, node, Arc::new(exec.clone()), Backoff::immediate());
    (engine, exec, killer)
}

#[tokio::test]
async fn shutdown_during_a_slow_claim_gives_the_claimed_runs_back_untouched() {
    let mem = store_with("count", "count", 60, 0).await;
    let faults = FaultStore::new(mem.clone());
    // The second claim (the second batch) takes its runs, then waits.
    let slow = faults.once(Call::Claim, 1, Once::HoldAfter);
    let (reg, runs) = counting();
    let cfg = NodeConfig {
        batch_size: 3,
        max_concurrent_jobs: 10,
        ..config()
    };
    let node = NodeRuntime::start(faults.clone(), reg.clone(), cfg.clone())
        .await
        .unwrap();
    for i in 0..6 {
        mem.enqueue(NewEntry::new("count", json!({})).identifier(format!("e{i}")))
            .await
            .unwrap();
    }
    let engine = node.engine().clone();
    let pass = tokio::spawn(async move { engine.run_until_idle().await });
    slow.entered().await;
    let n = node.clone();
    let shutdown = tokio::spawn(async move { n.shutdown(Duration::from_secs(10)).await });
    until("the engine closes", || async { node.engine().is_closed() }).await;
    slow.release();
    shutdown.await.unwrap();
    pass.await.unwrap().unwrap();

    // No entry was lost: three ran, three wait, none was charged a retry for it.
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(mem.stats().await.unwrap().available, 3);
    assert_eq!(mem.stats().await.unwrap().running, 0);
    // Another node runs them.
    let other = NodeRuntime::start(mem.clone(), reg, cfg).await.unwrap();
    until("every job ran", || async {
        other.engine().run_until_idle().await.unwrap();
        runs.load(Ordering::SeqCst) == 6
    })
    .await;
    other.shutdown(Duration::from_secs(10)).await;
    let stats = mem.stats().await.unwrap();
    assert_eq!((stats.available, stats.running, stats.succeeded), (0, 0, 6));
}

#[tokio::test]
async fn a_template_read_failing_at_start_gives_the_run_back_untouched() {
    let mem = store_with("count", "count", 60, 0).await;
    let faults = FaultStore::new(mem.clone());
    faults.once(Call::GetTemplate, 0, Once::Fail);
    let (reg, runs) = counting();
    let (engine, _, _) = bare(faults.clone(), reg, 4);
    let (entry, run) = engine
        .enqueue_and_run(NewEntry::new("count", json!({})))
        .await
        .unwrap();
    let first = wait_done(&*mem, run.unwrap()).await;
    assert_eq!(first.result, Some(RunResult::Failed));
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let back = mem.get_entry(&entry.job_run_identifier).await.unwrap();
    assert_eq!(back.status, EntryStatus::Available, "max_retries 0, kept");
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.start.ok_count, 1);
    until("the job ran", || async { runs.load(Ordering::SeqCst) == 1 }).await;
}

#[tokio::test]
async fn an_outage_longer_than_node_dead_after_expires_no_live_run() {
    let mem = store_with("gate", "gate", 600, 0).await;
    let faults = FaultStore::new(mem.clone());
    let started = Cancellation::new();
    let release = Cancellation::new();
    let (s, r) = (started.clone(), release.clone());
    let reg = JobRegistry::new().with("gate", move |c: JobContext| {
        let (s, r) = (s.clone(), r.clone());
        async move {
            if c.context["hang"] == json!(true) {
                std::future::pending::<()>().await;
            }
            s.cancel();
            r.cancelled().await;
            Ok::<_, JobError>(Some(json!("done")))
        }
    });
    let cfg = config();
    let a = NodeRuntime::start(faults.clone(), reg.clone(), cfg.clone())
        .await
        .unwrap();
    let b = NodeRuntime::start(faults.clone(), reg, cfg.clone())
        .await
        .unwrap();
    let (_, run) = a
        .engine()
        .enqueue_and_run(NewEntry::new("gate", json!({})))
        .await
        .unwrap();
    let run = run.unwrap();
    started.cancelled().await;

    // The database goes away; the job finishes meanwhile (its outcome waits).
    faults.fail_every_call(Fault::Unavailable);
    release.cancel();
    // Long enough that the database itself lists the run as its node's dead one, and
    // that node B noticed the outage.
    until("the outage outlasts node_dead_after", || async {
        let expirable = mem.runs_to_expire(cfg.node_dead_after).await.unwrap();
        expirable.iter().any(|r| r.run_id == run)
            && faults
                .refused(Call::Heartbeat)
                .contains(&b.node().instance_id)
    })
    .await;
    faults.stop_failing_every_call();

    // B's first pass after the outage expires nothing: A is alive.
    let report = b.engine().run_once().await.unwrap();
    assert_eq!(report.expire.ok_count, 0, "{report:?}");
    let done = wait_done(&*mem, run).await;
    assert_eq!(done.result, Some(RunResult::Succeeded));
    assert_eq!(done.output, Some(json!("done")));

    // Expiry is held back, not switched off: a node that really dies is expired.
    let (_, hung) = a
        .engine()
        .enqueue_and_run(NewEntry::new("gate", json!({"hang": true})))
        .await
        .unwrap();
    a.crash();
    until("B expires the crashed node's run", || async {
        b.engine().run_once().await.unwrap();
        mem.get_run(hung.unwrap()).await.unwrap().result.is_some()
    })
    .await;
    let hung = mem.get_run(hung.unwrap()).await.unwrap();
    assert_eq!(hung.reason.as_deref(), Some("Expired"));
    b.shutdown(Duration::ZERO).await;
}

/// Blocks its thread (no `.await`) until `open` is called.
#[derive(Clone, Default)]
struct Latch(Arc<(Mutex<bool>, Condvar)>);

impl Latch {
    fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.0.0.lock().unwrap() = true;
        self.0.1.notify_all();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aborted_blocking_job_keeps_its_slot_until_it_ends() {
    let mem = store_with("block", "block", 600, 3).await;
    let latch = Latch::default();
    let (inside, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (l, i, m) = (latch.clone(), inside.clone(), most.clone());
    let reg = JobRegistry::new().with("block", move |_c: JobContext| {
        let n = i.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(n, Ordering::SeqCst);
        // Blocks the worker thread: an abort cannot drop the task until it returns.
        l.wait();
        i.fetch_sub(1, Ordering::SeqCst);
        async { Ok(None) }
    });
    let (engine, exec, killer) = bare(mem.clone(), reg, 1);
    let (entry, _) = engine
        .enqueue_and_run(NewEntry::new("block", json!({})))
        .await
        .unwrap();
    until("the job blocks", || async {
        inside.load(Ordering::SeqCst) == 1
    })
    .await;
    // The operator stops it: the entry is claimable again, the killer aborts the task.
    mem.stop_entry(&entry.job_run_identifier).await.unwrap();
    let aborted = killer.tick().await.unwrap().aborted;
    let report = engine.run_once().await.unwrap();
    let slots = (exec.free_slots(), exec.running_count());
    latch.open();
    assert_eq!(aborted, 1);
    assert_eq!(report.start.ok_count, 0, "claimed over max_concurrent_jobs");
    assert_eq!(slots, (0, 1));
    until("the blocked task ends", || async {
        exec.running_count() == 0
    })
    .await;
    let report = engine.run_once().await.unwrap();
    assert_eq!(report.start.ok_count, 1);
    until("the rerun ends", || async { exec.running_count() == 0 }).await;
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn shutdown_leaves_a_returned_jobs_queued_outcome_alone() {
    let mem = store_with("count", "count", 60, 3).await;
    let faults = FaultStore::new(mem.clone());
    // The job's outcome waits in the finalizer, not yet in the database.
    let queued = faults.once(Call::FinalizeMany, 0, Once::HoldBefore);
    let (reg, runs) = counting();
    let (engine, exec, _) = bare(faults.clone(), reg, 4);
    let (_, run) = engine
        .enqueue_and_run(NewEntry::new("count", json!({})))
        .await
        .unwrap();
    queued.entered().await;
    let aborted = JobExecutor::shutdown(&exec, Duration::ZERO).await;
    assert!(
        aborted.is_empty(),
        "{aborted:?} would be finalized Shutdown"
    );
    queued.release();
    let done = wait_done(&*mem, run.unwrap()).await;
    assert_eq!(done.result, Some(RunResult::Succeeded));
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_killer_does_not_count_its_own_finished_run_as_ended_elsewhere() {
    let mem = store_with("count", "count", 60, 3).await;
    let faults = FaultStore::new(mem.clone());
    // The outcome is recorded; its reply waits.
    let recorded = faults.once(Call::FinalizeMany, 0, Once::HoldAfter);
    let (reg, _) = counting();
    let (engine, exec, killer) = bare(faults.clone(), reg, 4);
    let (_, run) = engine
        .enqueue_and_run(NewEntry::new("count", json!({})))
        .await
        .unwrap();
    recorded.entered().await;
    let report = killer.tick().await.unwrap();
    recorded.release();
    assert_eq!(report.aborted, 0, "its own outcome, not an end elsewhere");
    until("the task ends", || async { exec.running_count() == 0 }).await;
    let done = wait_done(&*mem, run.unwrap()).await;
    assert_eq!(done.result, Some(RunResult::Succeeded));
}

#[tokio::test]
async fn a_returned_job_frees_its_slot_while_its_outcome_waits_up_to_the_bound() {
    let mem = store_with("count", "count", 60, 3).await;
    let faults = FaultStore::new(mem.clone());
    // The first outcome waits in the finalizer, not yet in the database.
    let queued = faults.once(Call::FinalizeMany, 0, Once::HoldBefore);
    let (reg, runs) = counting();
    let (engine, exec, _) = bare(faults.clone(), reg, 1);
    for _ in 0..3 {
        faults
            .enqueue(NewEntry::new("count", json!({})))
            .await
            .unwrap();
    }
    assert_eq!(engine.run_once().await.unwrap().start.ok_count, 1);
    queued.entered().await;
    // One slot: the first job returned, so the second may run while its outcome waits.
    assert_eq!(
        exec.free_slots(),
        1,
        "a returned job's outcome holds no slot"
    );
    assert_eq!(engine.run_once().await.unwrap().start.ok_count, 1);
    // Its outcome waits behind the first: two outcomes wait, one more than the slots,
    // so that one holds the slot and nothing more is claimed.
    until("the second job returns", || async {
        exec.running().is_empty()
    })
    .await;
    assert_eq!(exec.running_count(), 2);
    assert_eq!(
        exec.free_slots(),
        0,
        "the outcomes beyond the bound hold a slot"
    );
    assert_eq!(engine.run_once().await.unwrap().start.ok_count, 0);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    queued.release();
    until("both outcomes are recorded", || async {
        exec.running_count() == 0
    })
    .await;
    assert_eq!(engine.run_once().await.unwrap().start.ok_count, 1);
    until("the third ends", || async { exec.running_count() == 0 }).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
