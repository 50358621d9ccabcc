//! Keeps the benchmark working: every scenario with tiny sizes. Never judges speed.

use bildad_bench::{BenchOptions, DEFAULT_URL};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_with_tiny_sizes() {
    let url = std::env::var("BILDAD_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        tokio::net::TcpStream::connect("127.0.0.1:5432"),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !reachable && std::env::var("BILDAD_TEST_DATABASE_URL").is_err() {
        eprintln!("NOTICE: skipping the bench smoke test: no PostgreSQL at {url}");
        return;
    }
    let opts = BenchOptions {
        database_url: url,
        n: 200,
        nodes: 2,
        concurrency: 50,
        batch: 20,
        enqueue_chunk: 64,
        latency_samples: 10,
        history: vec![10, 100],
        sleepers: 50,
        count_statements: true,
        ..BenchOptions::default()
    };
    bildad_bench::run(&opts).await.expect("the bench runs");
}

/// Every scenario on SQLite, each on a fresh file in a directory of its own under
/// `parent`; the bench deletes them all, so `parent` is empty again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_runs_on_sqlite_and_leaves_no_file() {
    let parent = std::env::temp_dir().join(format!("bildad-bench-smoke-{}", std::process::id()));
    let opts = BenchOptions {
        database_url: format!("sqlite://{}", parent.display()),
        n: 200,
        nodes: 1,
        concurrency: 50,
        batch: 20,
        enqueue_chunk: 64,
        latency_samples: 10,
        history: vec![10, 100],
        sleepers: 50,
        count_statements: true,
        queues: bildad_bench::QueueMix {
            count: 3,
            limit: Some(1),
        },
        ..BenchOptions::default()
    };
    let ran = bildad_bench::run(&opts).await;
    let left: Vec<_> = std::fs::read_dir(&parent)
        .expect("the bench made its directory")
        .map(|e| e.expect("an entry").path())
        .collect();
    std::fs::remove_dir_all(&parent).expect("clean up");
    ran.expect("the bench runs on SQLite");
    assert!(left.is_empty(), "the bench left {left:?}");
}
