//! Races: completion against kill and expiry, and four engines over one queue.

use bildad_core::{
    JobContext, JobError, JobRegistry, JobStore, NewEntry, NodeConfig, RunResult, RunStatus,
};
use bildad_runtime::NodeRuntime;
use bildad_tests::*;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
enum Ender {
    Killer,
    Expiry,
}

/// Jobs whose first attempt ends right around their timeout (850–1240 ms for a 1 s
/// timeout): some complete first, some are ended first, some race. Whatever happens,
/// every run has exactly one outcome and every entry is either requeued (a Timeout or
/// Expired first run, then a successful retry) or deleted (a successful first run) —
/// never both.
///
/// Beside them, entries whose side of the race is decided by a condition, not by the
/// clock, so both paths are always taken: `w-*` complete at once with an hour to spare,
/// and `l-*` wait until their run is ended in the store before they return a success
/// that must be ignored.
async fn completion_races_with(t: &TestStore, ender: Ender) {
    let s = &*t.store;
    template()
        .code("race")
        .job_type("t.race")
        .timeout_seconds(1)
        .max_retries(1)
        .create(s)
        .await;
    let (a, b) = match ender {
        Ender::Killer => {
            let a = start_racer(
                &t.store,
                NodeConfig {
                    killer_interval: Duration::from_millis(20),
                    ..ticking_config("a")
                },
            )
            .await;
            (a, None)
        }
        Ender::Expiry => {
            // A claims and heartbeats through its engine; its killer is too slow to
            // matter. B runs no jobs and expires A's runs at timeout_at.
            let a = start_racer(
                &t.store,
                NodeConfig {
                    killer_interval: Duration::from_secs(60),
                    node_dead_after: Duration::from_secs(600),
                    expiry_grace: Duration::ZERO,
                    ..ticking_config("a")
                },
            )
            .await;
            let b = NodeRuntime::start(
                t.store.clone(),
                JobRegistry::new(),
                NodeConfig {
                    engine_interval: Some(Duration::from_millis(10)),
                    node_dead_after: Duration::from_secs(600),
                    ..fast_config("b")
                },
            )
            .await
            .unwrap();
            (a, Some(b))
        }
    };
    let n = 40;
    let mut entries: Vec<NewEntry> = (0..n)
        .map(|i| NewEntry::new("race", json!({"ms": 850 + i * 10})).identifier(format!("r-{i}")))
        .collect();
    for i in 0..3 {
        entries.push(
            NewEntry::new("race", json!({"ms": 0}))
                .timeout_seconds(3600)
                .identifier(format!("w-{i}")),
        );
        entries
            .push(NewEntry::new("race", json!({"until_ended": true})).identifier(format!("l-{i}")));
    }
    let ids: Vec<String> = entries
        .iter()
        .map(|e| e.job_run_identifier.clone().expect("identifier"))
        .collect();
    s.enqueue_many(entries).await.unwrap();
    let (mut first_won, mut first_lost) = (0, 0);
    for id in &ids {
        let runs = wait_settled(s, id, Duration::from_secs(20)).await;
        assert!(runs.iter().all(|r| r.status == RunStatus::Done));
        let retries: Vec<_> = runs.iter().map(|r| r.retry).collect();
        match runs[0].result {
            Some(RunResult::Succeeded) => {
                first_won += 1;
                assert!(
                    !id.starts_with("l-"),
                    "{id}: a success after the end won: {runs:#?}"
                );
                assert_eq!(retries, vec![0], "{id}: deleted and requeued: {runs:#?}");
                assert_eq!(runs[0].output, Some(json!({"retry": 0})));
            }
            Some(RunResult::Failed) => {
                first_lost += 1;
                assert!(
                    !id.starts_with("w-"),
                    "{id}: ended before its timeout: {runs:#?}"
                );
                let want = match ender {
                    Ender::Killer => "Timeout",
                    Ender::Expiry => "Expired",
                };
                assert_eq!(runs[0].reason.as_deref(), Some(want), "{id}");
                assert_eq!(runs[0].output, None, "{id}: a lost outcome leaked in");
                assert_eq!(retries, vec![0, 1], "{id}: {runs:#?}");
                assert_eq!(runs[1].result, Some(RunResult::Succeeded));
            }
            None => unreachable!("settled runs are done"),
        }
    }
    eprintln!("{ender:?}: first attempt succeeded {first_won}, ended {first_lost}");
    a.shutdown(Duration::from_secs(1)).await;
    if let Some(b) = b {
        b.shutdown(Duration::from_secs(1)).await;
    }
}

/// Starts a node whose registry adds `t.race`: a retry succeeds at once; a first attempt
/// `{"ms": n}` sleeps n ms then succeeds; `{"until_ended": true}` waits until its run is
/// no longer `RUNNING` in the store, then returns a success that arrives too late.
async fn start_racer(store: &Arc<dyn JobStore>, config: NodeConfig) -> NodeRuntime {
    let watch = store.clone();
    let registry = registry().with("t.race", move |ctx: JobContext| {
        let store = watch.clone();
        async move {
            if ctx.retry == 0 {
                if ctx.context["until_ended"] == json!(true) {
                    wait_for("the run to be ended", Duration::from_secs(20), || async {
                        let run = store.get_run(ctx.run_id).await.expect("get_run");
                        (run.status == RunStatus::Done).then_some(())
                    })
                    .await;
                } else {
                    let ms = ctx.context["ms"].as_u64().unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
            }
            Ok(Some(json!({"retry": ctx.retry})))
        }
    });
    NodeRuntime::start(store.clone(), registry, config)
        .await
        .expect("start node")
}

async fn completion_races_with_the_killer(t: TestStore) {
    completion_races_with(&t, Ender::Killer).await;
}

async fn completion_races_with_expiry(t: TestStore) {
    completion_races_with(&t, Ender::Expiry).await;
}

/// Four nodes run the engine at once over 2,000 entries (every tenth fails once).
/// Every entry is started exactly once per retry and reaches its final state.
async fn four_nodes_share_one_queue(t: TestStore) {
    let s = &*t.store;
    template()
        .code("count")
        .job_type("t.count")
        .max_retries(2)
        .create(s)
        .await;
    let started: Arc<Mutex<HashMap<(String, i32), u32>>> = Arc::default();
    let total = 2000usize;
    let mut entries = Vec::with_capacity(total);
    for i in 0..total {
        entries.push(
            NewEntry::new("count", json!({"fail_once": i.is_multiple_of(10)}))
                .identifier(format!("c-{i}")),
        );
    }
    for chunk in entries.chunks(500) {
        s.enqueue_many(chunk.to_vec()).await.unwrap();
    }
    let mut nodes = Vec::new();
    for k in 0..4 {
        let started = started.clone();
        let registry = JobRegistry::new().with("t.count", move |ctx: JobContext| {
            let started = started.clone();
            async move {
                *started
                    .lock()
                    .unwrap()
                    .entry((ctx.job_run_identifier.clone(), ctx.retry))
                    .or_insert(0) += 1;
                if ctx.retry == 0 && ctx.context["fail_once"] == json!(true) {
                    return Err(JobError::msg("first try fails"));
                }
                Ok(None)
            }
        });
        let config = NodeConfig {
            batch_size: 50,
            max_concurrent_jobs: 40,
            ..fast_config(&format!("n{k}"))
        };
        nodes.push(
            NodeRuntime::start(t.store.clone(), registry, config)
                .await
                .unwrap(),
        );
    }
    let drivers: Vec<_> = nodes
        .iter()
        .map(|n| {
            let engine = n.engine().clone();
            let store = t.store.clone();
            tokio::spawn(async move {
                let mut started = 0;
                loop {
                    let r = engine.run_until_idle().await.unwrap();
                    started += r.start.ok_count;
                    assert_eq!(r.start.error_count, 0);
                    let st = store.stats().await.unwrap();
                    if st.available + st.scheduled + st.running == 0 {
                        return started;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let driven = tokio::time::timeout(Duration::from_secs(120), futures::future::join_all(drivers))
        .await
        .expect("the queue drains");
    let starts: u64 = driven.into_iter().map(|r| r.unwrap()).sum();
    let want_runs = total + total / 10;
    assert_eq!(starts as usize, want_runs, "engine start counts add up");
    let runs = all_runs(s).await;
    assert_eq!(runs.len(), want_runs);
    let mut by_entry: HashMap<&str, Vec<_>> = HashMap::new();
    for r in &runs {
        assert_eq!(r.status, RunStatus::Done);
        by_entry.entry(&r.job_run_identifier).or_default().push(r);
    }
    assert_eq!(by_entry.len(), total);
    for (id, mut rs) in by_entry {
        rs.sort_by_key(|r| r.retry);
        let i: usize = id.trim_start_matches("c-").parse().unwrap();
        let want: Vec<i32> = if i.is_multiple_of(10) {
            vec![0, 1]
        } else {
            vec![0]
        };
        assert_eq!(rs.iter().map(|r| r.retry).collect::<Vec<_>>(), want, "{id}");
        assert_eq!(
            rs.last().unwrap().result,
            Some(RunResult::Succeeded),
            "{id}"
        );
    }
    {
        let started = started.lock().unwrap();
        assert_eq!(started.len(), want_runs);
        assert!(started.values().all(|n| *n == 1), "a retry started twice");
    }
    let stats = s.stats().await.unwrap();
    assert_eq!(stats.succeeded as usize, total);
    assert_eq!(stats.failed as usize, total / 10);
    let nodes_used: std::collections::HashSet<_> = runs.iter().map(|r| &r.node).collect();
    eprintln!("runs spread over {} nodes", nodes_used.len());
    for n in nodes {
        n.shutdown(Duration::from_secs(1)).await;
    }
}

on_every_store!(
    completion_races_with_the_killer,
    completion_races_with_expiry,
    four_nodes_share_one_queue,
);
