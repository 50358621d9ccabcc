//! Support for cross-crate tests: stores per backend, fast node configurations, test
//! job types, and waiting on the store with a deadline (never bare sleeps).

use bildad_core::{
    Backoff, JobContext, JobError, JobRegistry, JobRun, JobStore, MemoryStore, NodeConfig,
    PageRequest, RunFilter, StoreError,
};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

mod gate;

pub use bildad_conformance::fixtures::template;

pub use gate::Gate;

/// A store for one test, and whatever keeps its database alive.
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn JobStore>,
    /// Which backend.
    pub backend: &'static str,
    _keep: Option<Box<dyn std::any::Any + Send>>,
}

/// A fresh in-memory store.
pub fn memory() -> TestStore {
    TestStore {
        store: Arc::new(MemoryStore::new()),
        backend: "memory",
        _keep: None,
    }
}

/// A fresh, migrated PostgreSQL database (dropped with the returned value), or `None`
/// when the server cannot be reached (see `bildad_store_diesel::testing::TestPg`).
pub async fn postgres() -> Option<TestStore> {
    let pg = bildad_store_diesel::testing::TestPg::fresh().await?;
    Some(TestStore {
        store: pg.store(),
        backend: "postgres",
        _keep: Some(Box::new(pg)),
    })
}

/// A fresh, migrated MariaDB database (dropped with the returned value), or `None` when
/// the server cannot be reached (see `bildad_store_diesel::testing::TestMysql`).
pub async fn mysql() -> Option<TestStore> {
    let db = bildad_store_diesel::testing::TestMysql::fresh().await?;
    Some(TestStore {
        store: db.store(),
        backend: "mysql",
        _keep: Some(Box::new(db)),
    })
}

/// A fresh, migrated SQLite file in a temporary directory (removed with the returned value):
/// several nodes of one test share it, as several processes would share one embedded file.
pub async fn sqlite() -> TestStore {
    let db = bildad_store_diesel::testing::TestSqlite::fresh().await;
    TestStore {
        store: db.store(),
        backend: "sqlite",
        _keep: Some(Box::new(db)),
    }
}

/// Generates one `#[tokio::test]` per backend for an `async fn(TestStore)` body:
/// `on_every_store!(body_fn);` makes the module `body_fn` with tests `memory`, `sqlite`,
/// `postgres` and `mysql` (each skipped with a notice when its server is unreachable).
#[macro_export]
macro_rules! on_every_store {
    ($($body:ident),+ $(,)?) => {
        $(
            mod $body {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn memory() {
                    super::$body($crate::memory()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    super::$body($crate::sqlite().await).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    if let Some(t) = $crate::postgres().await {
                        super::$body(t).await;
                    }
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn mysql() {
                    if let Some(t) = $crate::mysql().await {
                        super::$body(t).await;
                    }
                }
            }
        )+
    };
}

/// A node configuration with short intervals so tests stay fast: killer every 200 ms,
/// nodes dead after 1 s, immediate retries.
pub fn fast_config(name: &str) -> NodeConfig {
    NodeConfig {
        node_name: name.to_string(),
        killer_interval: Duration::from_millis(200),
        engine_interval: None,
        batch_size: 10,
        expiry_grace: Duration::from_secs(600),
        node_dead_after: Duration::from_secs(1),
        backoff: Backoff::immediate(),
        max_concurrent_jobs: 50,
        wake_on_enqueue: false,
        ..NodeConfig::default()
    }
}

/// The test job types:
/// - `t.echo`: succeeds, output = context;
/// - `t.sleep` `{"ms": n}`: sleeps (async) then succeeds with `"slept"`;
/// - `t.fail` `{"message": s}`: returns that error;
/// - `t.permanent` `{"message": s}`: returns that error as permanent;
/// - `t.panic` `{"message": s}`: panics with that message;
/// - `t.flaky` `{"fail_times": n}`: fails while `retry < n`, then succeeds;
/// - `t.slow_first` `{"ms": n}`: sleeps n ms on its first attempt only, then succeeds.
pub fn registry() -> JobRegistry {
    JobRegistry::new()
        .with("t.slow_first", |ctx: JobContext| async move {
            if ctx.retry == 0 {
                let ms = ctx.context["ms"].as_u64().unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Ok(Some(json!({"retry": ctx.retry})))
        })
        .with(
            "t.echo",
            |ctx: JobContext| async move { Ok(Some(ctx.context)) },
        )
        .with("t.sleep", |ctx: JobContext| async move {
            let ms = ctx.context["ms"].as_u64().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Ok(Some(json!("slept")))
        })
        .with("t.fail", |ctx: JobContext| async move {
            Err(JobError::msg(
                ctx.context["message"].as_str().unwrap_or("?"),
            ))
        })
        .with("t.permanent", |ctx: JobContext| async move {
            Err(JobError::permanent(
                ctx.context["message"].as_str().unwrap_or("?"),
            ))
        })
        .with("t.panic", |ctx: JobContext| async move {
            let m = ctx.context["message"].as_str().unwrap_or("?").to_string();
            if !m.is_empty() {
                panic!("{m}");
            }
            Ok(None)
        })
        .with("t.flaky", |ctx: JobContext| async move {
            let n = ctx.context["fail_times"].as_i64().unwrap_or(0);
            if i64::from(ctx.retry) < n {
                Err(JobError::msg(format!("flaky failure {}", ctx.retry)))
            } else {
                Ok(Some(json!({"succeeded_on": ctx.retry})))
            }
        })
}

/// [`fast_config`] with an engine ticker every 50 ms.
pub fn ticking_config(name: &str) -> NodeConfig {
    NodeConfig {
        engine_interval: Some(Duration::from_millis(50)),
        ..fast_config(name)
    }
}

/// Starts a node on `store` with [`registry`].
pub async fn start_node(
    store: &Arc<dyn JobStore>,
    config: NodeConfig,
) -> bildad_runtime::NodeRuntime {
    bildad_runtime::NodeRuntime::start(store.clone(), registry(), config)
        .await
        .expect("start node")
}

/// Every run of `identifier`, by retry.
pub async fn runs_of(store: &dyn JobStore, identifier: &str) -> Vec<JobRun> {
    let filter = RunFilter {
        identifier: Some(identifier.to_string()),
        ..RunFilter::default()
    };
    let mut runs = store
        .list_runs(filter, PageRequest::new(0, 500).expect("page"))
        .await
        .expect("list runs")
        .items;
    runs.sort_by_key(|r| (r.retry, r.id));
    runs
}

/// Every run in the store (all pages).
pub async fn all_runs(store: &dyn JobStore) -> Vec<JobRun> {
    let mut out = Vec::new();
    for page in 0.. {
        let p = store
            .list_runs(
                RunFilter::default(),
                PageRequest::new(page, 500).expect("page"),
            )
            .await
            .expect("list runs");
        let done = p.items.len() < 500;
        out.extend(p.items);
        if done {
            break;
        }
    }
    out
}

/// True while the entry exists.
pub async fn entry_exists(store: &dyn JobStore, identifier: &str) -> bool {
    match store.get_entry(identifier).await {
        Ok(_) => true,
        Err(StoreError::NotFound(_)) => false,
        Err(e) => panic!("get_entry({identifier}): {e}"),
    }
}

/// Polls `check` every 20 ms until it returns `Some`, or panics naming `what` after
/// `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the entry is gone and none of its runs is running; returns its runs.
pub async fn wait_settled(
    store: &dyn JobStore,
    identifier: &str,
    timeout: Duration,
) -> Vec<JobRun> {
    wait_for(
        &format!("entry {identifier} to settle"),
        timeout,
        || async {
            if entry_exists(store, identifier).await {
                return None;
            }
            let runs = runs_of(store, identifier).await;
            runs.iter()
                .all(|r| r.status == bildad_core::RunStatus::Done)
                .then_some(runs)
        },
    )
    .await
}
