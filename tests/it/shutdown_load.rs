//! Shutdown under load (issue #12): a node shuts down while its ticker and two
//! `run_until_idle` loops keep claiming and many jobs run. Read back from the database,
//! nothing is lost: every entry is still queued or has exactly one `SUCCEEDED` run, no
//! run is left `RUNNING`, no retry was spent, and another node runs the rest once each.

use bildad_core::{JobStore, RunResult, RunStatus};
use bildad_tests::{
    TestStore, all_runs, entry_exists, on_every_store, start_node, template, ticking_config,
    wait_for,
};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const ENTRIES: usize = 300;

/// Per identifier: (succeeded runs, failed runs, runs still running).
async fn tally(store: &dyn JobStore) -> HashMap<String, (usize, usize, usize)> {
    let mut by_id: HashMap<String, (usize, usize, usize)> = HashMap::new();
    for r in all_runs(store).await {
        let t = by_id.entry(r.job_run_identifier.clone()).or_default();
        match (r.status, r.result) {
            (RunStatus::Running, _) => t.2 += 1,
            (_, Some(RunResult::Succeeded)) => t.0 += 1,
            _ => t.1 += 1,
        }
    }
    by_id
}

async fn shutdown_under_load_loses_nothing(t: TestStore) {
    let store = t.store;
    // No retry to spare: a run ended by mistake deletes its entry, and the check sees it.
    template()
        .code("load")
        .job_type("t.sleep")
        .max_retries(0)
        .create(&*store)
        .await;
    let mut config = ticking_config("load");
    config.max_concurrent_jobs = 20;
    let node = start_node(&store, config.clone()).await;
    let ids: Vec<String> = (0..ENTRIES).map(|i| format!("load-{i:03}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let entry = bildad_core::NewEntry::new("load", json!({"ms": i % 40})).identifier(id);
        store.enqueue(entry).await.unwrap();
    }
    let loops: Vec<_> = (0..2)
        .map(|_| {
            let engine = node.engine().clone();
            tokio::spawn(async move {
                while !engine.is_closed() {
                    let _ = engine.run_until_idle().await;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    // Shut down in the middle: some done, many running or being claimed.
    wait_for(
        "a quarter of the jobs to succeed",
        Duration::from_secs(60),
        || async {
            let done = tally(&*store).await.values().filter(|t| t.0 > 0).count();
            (done >= ENTRIES / 4).then_some(())
        },
    )
    .await;
    node.shutdown(Duration::from_secs(30)).await;
    for l in loops {
        l.await.unwrap();
    }

    let after = tally(&*store).await;
    let mut queued = 0;
    for id in &ids {
        let (ok, failed, running) = after.get(id).copied().unwrap_or_default();
        assert_eq!(running, 0, "{}: {id} left RUNNING", t.backend);
        assert!(ok <= 1, "{}: {id} succeeded {ok} times", t.backend);
        if entry_exists(&*store, id).await {
            assert_eq!(ok, 0, "{}: {id} succeeded and still queued", t.backend);
            queued += 1;
        } else {
            assert_eq!(
                (ok, failed),
                (1, 0),
                "{}: {id} deleted without exactly one SUCCEEDED run",
                t.backend
            );
        }
    }
    assert!(queued < ENTRIES, "{}: nothing ran", t.backend);

    // Another node runs what is left, each job once.
    let other = start_node(&store, config).await;
    wait_for("every job to succeed", Duration::from_secs(120), || async {
        let _ = other.engine().run_until_idle().await;
        let done = tally(&*store).await.values().filter(|t| t.0 > 0).count();
        (done == ENTRIES).then_some(())
    })
    .await;
    other.shutdown(Duration::from_secs(30)).await;
    let end = tally(&*store).await;
    for id in &ids {
        assert_eq!(end[id].0, 1, "{}: {id}", t.backend);
        assert!(!entry_exists(&*store, id).await, "{}: {id}", t.backend);
    }
}

on_every_store!(shutdown_under_load_loses_nothing);
