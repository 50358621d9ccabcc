//! Schedules from code (SPEC §9, §7): ten nodes starting at once on one database save
//! each declared schedule exactly once; a changed declaration updates it once; an
//! operator's deactivation survives every start.

use bildad_core::{
    EnsuredSchedules, JobArgs, JobError, JobRegistry, JobStore, RunInfo, SchedulePatch,
};
use bildad_tests::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio::sync::Barrier;

const NODES: usize = 10;

#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Digest {
    audience: String,
}

impl JobArgs for Digest {
    const KIND: &'static str = "digest";
}

async fn noop(_: Digest, _: RunInfo) -> Result<(), JobError> {
    Ok(())
}

fn registry(cron: &str) -> JobRegistry {
    let mut reg = JobRegistry::new().with_worker(noop);
    for (name, audience) in [("morning", "all"), ("evening", "staff")] {
        reg.schedule(
            name,
            cron,
            "Europe/Paris",
            &Digest {
                audience: audience.into(),
            },
        )
        .expect("declared");
    }
    reg
}

/// `NODES` starts at once: templates, then schedules, as `NodeRuntime::start` does.
async fn start_at_once(store: &Arc<dyn JobStore>, registry: &JobRegistry) -> Vec<EnsuredSchedules> {
    let barrier = Arc::new(Barrier::new(NODES));
    let tasks: Vec<_> = (0..NODES)
        .map(|_| {
            let (store, registry, barrier) = (store.clone(), registry.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                registry.ensure_templates(&*store).await?;
                registry.ensure_schedules(&*store).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap().expect("every node's start succeeds"));
    }
    out
}

fn count(results: &[EnsuredSchedules], name: &str) -> (usize, usize, usize) {
    let has = |v: &Vec<String>| usize::from(v.iter().any(|c| c == name));
    results.iter().fold((0, 0, 0), |(c, u, n), r| {
        (
            c + has(&r.created),
            u + has(&r.updated),
            n + has(&r.unchanged),
        )
    })
}

async fn ten_nodes_save_each_schedule_once(t: TestStore) {
    let store = &t.store;
    let v1 = registry("0 7 * * *");
    let results = start_at_once(store, &v1).await;
    for name in ["morning", "evening"] {
        assert_eq!(
            count(&results, name),
            (1, 0, NODES - 1),
            "{name} on {}",
            t.backend
        );
    }
    // The operator pauses one; the same code starts again: nothing is written.
    let off = SchedulePatch {
        active: Some(false),
        ..SchedulePatch::default()
    };
    let paused = store.update_schedule("morning", off).await.unwrap();
    let results = start_at_once(store, &v1).await;
    assert_eq!(count(&results, "morning"), (0, 0, NODES), "{}", t.backend);
    assert_eq!(store.get_schedule("morning").await.unwrap(), paused);
    // A deploy changes the cron: some node updates it, the rest find it changed.
    let v2 = registry("0 8 * * *");
    let results = start_at_once(store, &v2).await;
    let (created, updated, unchanged) = count(&results, "morning");
    assert_eq!(created, 0);
    assert!(updated >= 1 && updated + unchanged == NODES, "{results:?}");
    let s = store.get_schedule("morning").await.unwrap();
    assert_eq!((s.cron.as_str(), s.active), ("0 8 * * *", false));
}

on_every_store!(ten_nodes_save_each_schedule_once);
