//! Peer benchmark: apalis + apalis-sqlite enqueue and processing throughput.
//!
//! Creates a fresh SQLite file in a temporary directory under `--database-url
//! sqlite://<dir>`, runs apalis-sqlite's migrations in it, bulk-enqueues N no-op jobs
//! (timed), then runs one worker until every job has run and its completion is written
//! (timed), checks that the file holds N `Done` jobs, and deletes the directory.
//!
//! Output (stdout, exactly one line):
//!   apalis-sqlite enqueue_jobs_per_s=<int> process_jobs_per_s=<int> N=<n> concurrency=<c>
//!     batch=<b> pool=<p>

use apalis::prelude::*;
use apalis_sqlite::{Config, SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Jobs the handler has run.
static EXECUTED: AtomicU64 = AtomicU64::new(0);
/// Jobs to run before the worker is stopped.
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);

/// The settings; every one is a flag of the same name (`--n 20000`).
#[derive(Debug)]
struct Args {
    database_url: String,
    n: u64,
    concurrency: usize,
    batch_size: usize,
    pool: u32,
    chunk_size: usize,
    timeout_s: u64,
}

impl Args {
    fn parse() -> Result<Self, Error> {
        let mut a = Args {
            database_url: format!("sqlite://{}", std::env::temp_dir().display()),
            n: 20_000,
            concurrency: 1000,
            batch_size: 500,
            pool: 10,
            chunk_size: 5000,
            timeout_s: 3600,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let (flag, inline) = match flag.split_once('=') {
                Some((f, v)) => (f.to_string(), Some(v.to_string())),
                None => (flag, None),
            };
            let value = match inline.or_else(|| it.next()) {
                Some(v) => v,
                None => return Err(format!("{flag} needs a value").into()),
            };
            let num = |v: &str| -> Result<u64, Error> {
                match v.replace('_', "").parse::<u64>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(format!("{flag} must be a positive integer, got {v:?}").into()),
                }
            };
            match flag.as_str() {
                "--database-url" => a.database_url = value,
                "--n" => a.n = num(&value)?,
                "--concurrency" => a.concurrency = num(&value)? as usize,
                "--batch-size" => a.batch_size = num(&value)? as usize,
                "--pool" => a.pool = num(&value)? as u32,
                "--chunk-size" => a.chunk_size = num(&value)? as usize,
                "--timeout-s" => a.timeout_s = num(&value)?,
                other => {
                    return Err(format!(
                        "unknown flag {other:?} (--database-url sqlite://<dir>, --n, \
                         --concurrency, --batch-size, --pool, --chunk-size, --timeout-s)"
                    )
                    .into());
                }
            }
        }
        Ok(a)
    }
}

/// A directory of the bench's own, removed (with the database file, its WAL and shared
/// memory) when dropped, also on an error.
struct TempDir(PathBuf);

impl TempDir {
    fn create(parent: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(parent)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos();
        let dir = parent.join(format!("apalis_bench_{}_{nanos}", std::process::id()));
        std::fs::create_dir(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The directory a `sqlite://<dir>` URL names (an existing file: its directory).
fn parent_dir(url: &str) -> Result<PathBuf, Error> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| format!("--database-url must be sqlite://<dir>, got {url:?}"))?;
    let path = if path.is_empty() {
        std::env::temp_dir()
    } else {
        PathBuf::from(path)
    };
    Ok(if path.is_file() {
        path.parent().map_or_else(|| ".".into(), Path::to_path_buf)
    } else {
        path
    })
}

/// The no-op job: counts itself, and stops the worker once every job ran. Stopping
/// lets the worker drain: it flushes the last completions before `run()` returns.
async fn noop(_job: u64, worker: WorkerContext) -> Result<(), BoxDynError> {
    if EXECUTED.fetch_add(1, Ordering::Relaxed) + 1 == TARGET.load(Ordering::Relaxed) {
        worker.stop()?;
    }
    Ok(())
}

/// Connection settings as Bildad's SQLite store has them: WAL, `synchronous = NORMAL`
/// (on every connection), a 5 s busy timeout.
fn options(file: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
}

async fn bench(a: &Args, file: &Path) -> Result<(f64, f64), Error> {
    // Migrations on a connection of their own: `setup` also sets `synchronous = OFF`,
    // which is per connection, and the measured pool must not have it on one connection
    // and not the others.
    let setup = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(file))
        .await?;
    SqliteStorage::setup(&setup).await?;
    setup.close().await;

    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(a.pool)
        .connect_with(options(file))
        .await?;
    let config = Config::default().queue("bench").batch_size(a.batch_size);
    let mut storage = SqliteStorage::<u64>::new(&pool).with_config(config);

    // Enqueue: `push_bulk`, the documented bulk path (one transaction per call, one
    // prepared INSERT per job), in chunks.
    let jobs: Vec<u64> = (0..a.n).collect();
    let started = Instant::now();
    for chunk in jobs.chunks(a.chunk_size) {
        storage.push_bulk(chunk.to_vec()).await?;
    }
    let enqueue = started.elapsed();

    TARGET.store(a.n, Ordering::Relaxed);
    let worker = WorkerBuilder::new("bench-worker")
        .backend(storage)
        .concurrency(a.concurrency)
        .build(noop);
    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(a.timeout_s), worker.run())
        .await
        .map_err(|_| format!("the jobs did not finish within {} s", a.timeout_s))??;
    let process = started.elapsed();

    let by_status: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, count(*) FROM Jobs GROUP BY status")
            .fetch_all(&pool)
            .await?;
    let done = by_status
        .iter()
        .find(|(s, _)| s == "Done")
        .map_or(0, |(_, c)| *c);
    if done as u64 != a.n || by_status.len() != 1 {
        return Err(format!("expected {} Done jobs, found {by_status:?}", a.n).into());
    }
    pool.close().await;
    Ok((
        a.n as f64 / enqueue.as_secs_f64(),
        a.n as f64 / process.as_secs_f64(),
    ))
}

#[tokio::main]
async fn main() {
    let result = async {
        let a = Args::parse()?;
        let dir = TempDir::create(&parent_dir(&a.database_url)?)?;
        let (enqueue, process) = bench(&a, &dir.0.join("apalis.db")).await?;
        println!(
            "apalis-sqlite enqueue_jobs_per_s={enqueue:.0} process_jobs_per_s={process:.0} \
             N={} concurrency={} batch={} pool={}",
            a.n, a.concurrency, a.batch_size, a.pool
        );
        Ok::<_, Error>(())
    }
    .await;
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
