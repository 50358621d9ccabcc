//! What a process-isolated run costs: the same trivial job run N times on one node
//! (`MemoryStore`, so the database costs nothing), in process and isolated, one slot at
//! a time and with every core busy. Prints the time per run. docs/PERFORMANCE.md has the
//! figures.
//!
//! `cargo run --release -p bildad-runtime --example isolation_cost -- [runs]`

use bildad_core::{
    JobContext, JobError, JobRegistry, JobStore, MemoryStore, NewEntry, NewTemplate, NodeConfig,
    ProcessIsolation,
};
use bildad_runtime::NodeRuntime;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn echo(ctx: JobContext) -> Result<Option<Value>, JobError> {
    Ok(Some(ctx.context))
}

fn registry() -> JobRegistry {
    let mut r = JobRegistry::new();
    r.register("in_process", echo)
        .register("isolated", echo)
        .isolate("isolated", ProcessIsolation::default());
    r
}

/// Runs `runs` entries of `job_type` with `slots` slots; the time per run.
async fn measure(job_type: &str, runs: usize, slots: u32) -> Duration {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let schema = json!({"type": "object"});
    store
        .create_template(NewTemplate::new(job_type, job_type, job_type, schema))
        .await
        .expect("template");
    let entries = (0..runs)
        .map(|i| NewEntry::new(job_type, json!({"i": i, "payload": "x".repeat(200)})))
        .collect();
    store.enqueue_many(entries).await.expect("enqueue");
    let config = NodeConfig {
        max_concurrent_jobs: slots,
        batch_size: slots,
        ..NodeConfig::default()
    };
    let node = NodeRuntime::start(store.clone(), registry(), config)
        .await
        .expect("node");
    let start = Instant::now();
    loop {
        node.engine().run_until_idle().await.expect("pass");
        node.executor().wait_idle(Duration::from_secs(600)).await;
        let stats = store.stats().await.expect("stats");
        if stats.available + stats.running == 0 {
            break;
        }
    }
    let took = start.elapsed();
    let stats = store.stats().await.expect("stats");
    assert_eq!(stats.succeeded as usize, runs, "every run succeeded");
    node.shutdown(Duration::from_secs(5)).await;
    took / u32::try_from(runs).unwrap_or(u32::MAX)
}

/// The bare start of a process: this program started again, exiting at once, `runs`
/// times one after another; the time per start. What a pool of children would save at
/// most.
async fn bare_start(runs: usize) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        let status = tokio::process::Command::new("/proc/self/exe")
            .arg(EXIT_AT_ONCE)
            .status()
            .await
            .expect("start");
        assert!(status.success());
    }
    start.elapsed() / u32::try_from(runs).unwrap_or(u32::MAX)
}

const EXIT_AT_ONCE: &str = "--exit-at-once";

fn main() {
    if std::env::args().nth(1).as_deref() == Some(EXIT_AT_ONCE) {
        return;
    }
    // In a child this runs the one job and exits.
    bildad_runtime::isolation::child_main(registry);
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let per_start = bare_start(runs).await;
        println!("bare process start and reap, 1 at a time: {per_start:>10.1?} per start");
        for slots in [1, cores] {
            for job_type in ["in_process", "isolated"] {
                let per_run = measure(job_type, runs, slots).await;
                println!("{job_type:>10}  slots {slots:>2}  {runs} runs  {per_run:>10.1?} per run");
            }
        }
    });
}
