//! Bildad's benchmark: enqueue and process no-op jobs on PostgreSQL or SQLite, measure
//! pickup latency, throughput against the size of the run history, SQL statements per job
//! (PostgreSQL) and the memory of many sleeping jobs. Run it with `cargo xtask bench`; see
//! `docs/PERFORMANCE.md` for the figures and how to read them.
//!
//! The bench is a tool, not a test: it prints lines of `key=value` pairs that start with
//! `bildad `, so that runs can be compared by machine, and it never judges speed.
//!
//! It creates a database of its own for each scenario (on SQLite, a file in a directory of
//! its own) and removes it afterwards. Its own SQL (create and drop the database, fill the
//! history, read `pg_stat_statements`) is administration around the store, not part of
//! Bildad: jobs go only through `Arc<dyn JobStore>` and the runtime.

mod db;
pub mod queues;
mod throughput;

pub use db::{Backend, sqlite_dir};
use db::{BenchDb, admin};

pub use queues::QueueMix;
pub use throughput::Throughput;
use throughput::throughput;

use anyhow::{Context as _, Result, bail};
use bildad_core::{JobContext, JobRegistry, JobStore, NewEntry, NewTemplate, NodeConfig};
use bildad_runtime::NodeRuntime;
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The server every machine here runs.
pub use bildad_store_diesel::testing::DEFAULT_URL;

/// What to measure, and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// `postgres://…`: an administrative URL on the server, where the bench creates its
    /// databases. `sqlite://<dir>`: the directory where it makes a fresh file per
    /// scenario (in a directory of its own, deleted afterwards).
    pub database_url: String,
    /// Jobs per throughput scenario.
    pub n: u64,
    /// Nodes (each a `NodeRuntime` with its own pool) processing at once.
    pub nodes: usize,
    /// `max_concurrent_jobs` of each node in the throughput scenarios.
    pub concurrency: u32,
    /// `batch_size` of each node in the throughput scenarios (entries per claim).
    pub batch: u32,
    /// Entries per `enqueue_many` call.
    pub enqueue_chunk: usize,
    /// Connections in each node's pool; `None`: the backend's
    /// [`Backend::default_pool`] (10 on PostgreSQL, 4 on SQLite).
    pub pool: Option<usize>,
    /// Pickup latency samples (0 skips the scenario).
    pub latency_samples: usize,
    /// Sizes of the run history to compare (empty skips the scenario).
    pub history: Vec<u64>,
    /// Concurrently sleeping jobs for the memory scenario (0 skips it).
    pub sleepers: u32,
    /// Count SQL statements with `pg_stat_statements` (needs it in
    /// `shared_preload_libraries`; otherwise says so and goes on).
    pub count_statements: bool,
    /// The queues of the throughput scenario (not of the history scenario).
    pub queues: QueueMix,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_URL.to_string(),
            n: 20_000,
            nodes: 1,
            concurrency: 1000,
            batch: 500,
            enqueue_chunk: 5000,
            pool: None,
            latency_samples: 1000,
            history: vec![1_000, 1_000_000],
            sleepers: 10_000,
            count_statements: false,
            queues: QueueMix::default(),
        }
    }
}

impl BenchOptions {
    /// Connections in each node's pool: `pool`, or the backend's default.
    pub fn pool_size(&self) -> usize {
        self.pool
            .unwrap_or_else(|| Backend::of(&self.database_url).map_or(10, Backend::default_pool))
    }
}

/// Runs every scenario `opts` asks for and prints one `bildad …` line per result.
/// Scenarios that only PostgreSQL has (statements per job) print a `skipped` line on
/// the other backends.
pub async fn run(opts: &BenchOptions) -> Result<()> {
    if opts.n == 0 || opts.nodes == 0 || opts.concurrency == 0 || opts.batch == 0 {
        bail!("--n, --nodes, --concurrency and --batch must be positive");
    }
    if opts.pool == Some(0) {
        bail!("--pool must be positive");
    }
    let backend = Backend::of(&opts.database_url)?;
    let stats = match (opts.count_statements, backend) {
        (true, Backend::Postgres) => StatementCounter::open(&opts.database_url).await,
        (true, _) => {
            println!(
                "bildad statements_per_job=skipped reason=pg_stat_statements_is_postgres_only"
            );
            None
        }
        (false, _) => None,
    };

    // Memory first, while the process is still small.
    if opts.sleepers > 0 {
        let db = BenchDb::create(&opts.database_url).await?;
        let m = sleeping_memory(&db, opts.sleepers).await;
        db.drop_now().await;
        let (before, during) = m?;
        println!(
            "bildad sleeping_jobs={} rss_mib={:.1} rss_before_mib={:.1}",
            opts.sleepers, during, before
        );
    }

    // Throughput on a fresh database.
    let db = BenchDb::create(&opts.database_url).await?;
    let t = throughput(&db, opts, &opts.queues, stats.as_ref()).await;
    db.drop_now().await;
    let t = t?;
    println!(
        "bildad enqueue_jobs_per_s={:.0} process_jobs_per_s={:.0} N={} nodes={} concurrency={}{}",
        t.enqueue_per_s,
        t.process_per_s,
        opts.n,
        opts.nodes,
        opts.concurrency,
        opts.queues.label()
    );
    if let Some(r) = t.queue_rates {
        println!(
            "bildad limited_queue_jobs_per_s={:.0} other_queues_jobs_per_s={:.0}",
            r.limited_per_s, r.others_per_s
        );
    }
    if opts.count_statements && backend == Backend::Postgres {
        match (t.enqueue_statements, t.process_statements) {
            (Some(e), Some(p)) => println!(
                "bildad statements_per_job={:.3} enqueue_statements={e} process_statements={p} N={}",
                (e + p) as f64 / opts.n as f64,
                opts.n
            ),
            _ => println!(
                "bildad statements_per_job=unavailable reason=pg_stat_statements_not_loaded"
            ),
        }
    }

    if opts.latency_samples > 0 {
        let db = BenchDb::create(&opts.database_url).await?;
        let l = pickup_latency(&db, opts.latency_samples).await;
        db.drop_now().await;
        let l = l?;
        println!(
            "bildad pickup_p50_ms={:.2} pickup_p99_ms={:.2}",
            l.trigger.0, l.trigger.1
        );
        println!(
            "bildad pickup_mode=enqueue_and_run p50_ms={:.2} p99_ms={:.2} samples={}",
            l.run_now.0, l.run_now.1, opts.latency_samples
        );
        println!(
            "bildad pickup_mode={} p50_ms={:.2} p99_ms={:.2} samples={}",
            match backend {
                Backend::Sqlite => "local_wake",
                Backend::Mysql => "poll",
                Backend::Postgres => "notify",
            },
            l.notify.0,
            l.notify.1,
            opts.latency_samples
        );
    }

    let mut first: Option<f64> = None;
    for &rows in &opts.history {
        let db = BenchDb::create(&opts.database_url).await?;
        let t = async {
            db.fill_history(rows).await?;
            throughput(
                &db,
                &BenchOptions {
                    nodes: 1,
                    ..opts.clone()
                },
                &QueueMix::default(),
                None,
            )
            .await
        }
        .await;
        db.drop_now().await;
        let t = t?;
        let ratio = t.process_per_s / *first.get_or_insert(t.process_per_s);
        println!(
            "bildad history_runs={rows} process_jobs_per_s={:.0} ratio={ratio:.3} N={} nodes=1 concurrency={}",
            t.process_per_s, opts.n, opts.concurrency
        );
    }

    Ok(())
}

/// A registry with the no-op job, counting executions.
fn noop_registry(executed: Arc<AtomicU64>) -> JobRegistry {
    JobRegistry::new().with("bench.noop", move |_ctx: JobContext| {
        let executed = executed.clone();
        async move {
            executed.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        }
    })
}

fn node_config(name: &str, concurrency: u32, batch: u32) -> NodeConfig {
    NodeConfig {
        node_name: name.to_string(),
        batch_size: batch,
        max_concurrent_jobs: concurrency,
        ..NodeConfig::default()
    }
}

async fn create_template(store: &dyn JobStore, code: &str) -> Result<()> {
    store
        .create_template(NewTemplate::new(
            code,
            code,
            code,
            json!({"type": "object"}),
        ))
        .await?;
    Ok(())
}

/// p50 and p99 in milliseconds.
type Percentiles = (f64, f64);

struct Latency {
    trigger: Percentiles,
    run_now: Percentiles,
    notify: Percentiles,
}

/// Time from the call that enqueues a job to the moment the job starts running, one job
/// at a time, on a node with the default configuration (batch 10, 100 slots).
async fn pickup_latency(db: &BenchDb, samples: usize) -> Result<Latency> {
    let store = db.connect(10).await?;
    create_template(&*store, "bench.ping").await?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Instant>();
    let registry = JobRegistry::new().with("bench.ping", move |_ctx: JobContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Instant::now());
            Ok(None)
        }
    });
    let node = NodeRuntime::start(store, registry.clone(), NodeConfig::default()).await?;
    let engine = node.engine().clone();
    let mut trigger = Vec::with_capacity(samples);
    let mut run_now = Vec::with_capacity(samples);
    // A few unmeasured rounds warm the pool and the statement paths.
    for i in 0..(samples + 20) {
        let entry = NewEntry::new("bench.ping", json!({"i": i}));
        let t0 = Instant::now();
        if i % 2 == 0 {
            engine.enqueue_and_trigger(entry).await?;
        } else {
            engine.enqueue_and_run(entry).await?;
        }
        let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("a job did not start within 10 s")?
            .context("the job channel closed")?;
        let ms = started.duration_since(t0).as_secs_f64() * 1000.0;
        if i >= 20 {
            if i % 2 == 0 {
                trigger.push(ms);
            } else {
                run_now.push(ms);
            }
        }
        while node.executor().running_count() > 0 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
    node.shutdown(Duration::from_secs(5)).await;

    // A node woken by its store (`wake_on_enqueue`, no ticker, no trigger). PostgreSQL:
    // by LISTEN/NOTIFY, the entries enqueued through another pool, as another node of the
    // app would. SQLite wakes in process only: through the node's own store, as the
    // embedded node's API and library calls do.
    let store = db.connect(10).await?;
    let other = match db.backend {
        Backend::Sqlite => store.clone(),
        _ => db.connect(2).await?,
    };
    let node = NodeRuntime::start(
        store,
        registry,
        NodeConfig {
            wake_on_enqueue: true,
            ..NodeConfig::default()
        },
    )
    .await?;
    let mut notify = Vec::with_capacity(samples);
    for i in 0..(samples + 20) {
        let entry = NewEntry::new("bench.ping", json!({"i": i}));
        let t0 = Instant::now();
        other.enqueue(entry).await?;
        let started = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .context("a job did not start within 10 s of its notification")?
            .context("the job channel closed")?;
        if i >= 20 {
            notify.push(started.duration_since(t0).as_secs_f64() * 1000.0);
        }
        while node.executor().running_count() > 0 {
            tokio::time::sleep(Duration::from_micros(100)).await;
        }
    }
    node.shutdown(Duration::from_secs(5)).await;
    drop(other);
    Ok(Latency {
        trigger: percentiles(trigger),
        run_now: percentiles(run_now),
        notify: percentiles(notify),
    })
}

fn percentiles(mut v: Vec<f64>) -> Percentiles {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    (at(0.50), at(0.99))
}

/// RSS of this process before and while `n` jobs sleep at once, in MiB.
async fn sleeping_memory(db: &BenchDb, n: u32) -> Result<(f64, f64)> {
    let store = db.connect(10).await?;
    create_template(&*store, "bench.sleep").await?;
    let entries: Vec<NewEntry> = (0..n)
        .map(|i| NewEntry::new("bench.sleep", json!({"i": i})))
        .collect();
    for chunk in entries.chunks(5000) {
        store.enqueue_many(chunk.to_vec()).await?;
    }
    let (release, wait) = tokio::sync::watch::channel(false);
    let registry = JobRegistry::new().with("bench.sleep", move |ctx: JobContext| {
        let mut wait = wait.clone();
        async move {
            tokio::select! {
                _ = wait.wait_for(|go| *go) => {}
                () = ctx.cancellation.cancelled() => {}
            }
            Ok(None)
        }
    });
    let before = rss_mib();
    let node = NodeRuntime::start(store, registry, node_config("bench-sleep", n, 1000)).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    // `run_until_idle` would wait for a free slot once all are taken: pass by pass.
    while node.executor().running_count() < n as usize {
        if Instant::now() > deadline {
            bail!(
                "only {} of {n} jobs started",
                node.executor().running_count()
            );
        }
        node.engine().run_once().await?;
    }
    let during = rss_mib();
    release.send_replace(true);
    node.shutdown(Duration::from_secs(60)).await;
    Ok((before, during))
}

/// Resident set size of this process (Linux), in MiB; NaN elsewhere.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Reads `pg_stat_statements` from the administrative database, so that its own
/// queries are not counted against the bench database.
struct StatementCounter {
    conn: tokio::sync::Mutex<AsyncPgConnection>,
}

#[derive(QueryableByName)]
struct CallsRow {
    #[diesel(sql_type = Nullable<BigInt>)]
    calls: Option<i64>,
}

impl StatementCounter {
    /// `None`, with a notice, when the extension cannot be used.
    async fn open(url: &str) -> Option<Self> {
        let mut conn = admin(url).await.ok()?;
        let ok = conn
            .batch_execute(
                "CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
                 SELECT count(*) FROM pg_stat_statements;",
            )
            .await;
        match ok {
            Ok(()) => Some(Self {
                conn: tokio::sync::Mutex::new(conn),
            }),
            Err(e) => {
                eprintln!("NOTICE: cannot count statements: {e}");
                None
            }
        }
    }

    async fn reset(&self) -> Result<()> {
        let mut c = self.conn.lock().await;
        c.batch_execute("SELECT pg_stat_statements_reset()").await?;
        Ok(())
    }

    /// Statements executed in database `name` since the last reset.
    async fn read(&self, name: &str) -> Result<Option<u64>> {
        let mut c = self.conn.lock().await;
        let row: CallsRow = diesel::sql_query(
            "SELECT sum(s.calls)::int8 AS calls FROM pg_stat_statements s
             JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = $1",
        )
        .bind::<diesel::sql_types::Text, _>(name)
        .get_result(&mut *c)
        .await?;
        Ok(Some(row.calls.unwrap_or(0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentiles(v), (50.0, 99.0));
        assert_eq!(percentiles(vec![3.0]), (3.0, 3.0));
    }
}
