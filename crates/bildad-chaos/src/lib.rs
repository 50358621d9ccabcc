//! Fault proof for Bildad, driven from outside: real `bildad serve` processes on one
//! PostgreSQL or MySQL/MariaDB database, SIGKILLed and restarted under load ([`chaos`]), or cut off from
//! the database by a TCP proxy ([`outage`]), then checked from the database alone
//! ([`check`]); and a per-second schedule evaluated by nodes being SIGKILLed
//! ([`schedule`]); and a queue's global limit while nodes holding its slots are
//! SIGKILLed ([`limit`]).
//!
//! `cargo xtask chaos` runs the full form; `crates/bildad/tests/it/chaos.rs` runs short
//! forms in CI against the binary cargo built for the test.
//!
//! The checks read the database with their own SQL on purpose: they judge the store
//! rather than trust it.

pub mod check;
pub mod db;
pub mod limit;
pub mod node;
pub mod outage;
pub mod plan;
pub mod proxy;
pub mod schedule;

use anyhow::{Context, Result, bail};
use node::ServeProcess;
use plan::{PlannedJob, Rng};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The settings of one chaos run.
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// The `bildad` binary.
    pub bin: PathBuf,
    /// A PostgreSQL or MySQL/MariaDB server URL: a fresh database is created on it (and dropped after a
    /// passing run unless `keep_database`).
    pub server_url: String,
    /// Use this database as it is instead of creating one (tests pass their own).
    pub database_url: Option<String>,
    /// `bildad serve` processes.
    pub nodes: usize,
    /// Jobs enqueued.
    pub jobs: usize,
    /// Mean seconds between two kills (each one ±50 %); 0 = no kills.
    pub kill_every: Duration,
    /// Kills before the run may end (enqueueing is spread over that time).
    pub min_kills: usize,
    /// The seed of the job mix and of the kills.
    pub seed: u64,
    /// How long the queue may take to drain after the last kill.
    pub drain_timeout: Duration,
    /// Keep the database after a passing run.
    pub keep_database: bool,
    /// Print progress to stderr.
    pub verbose: bool,
}

impl ChaosOptions {
    /// The defaults of `cargo xtask chaos`: 4 nodes, 10,000 jobs, a kill every 3 s,
    /// at least 50 kills.
    pub fn new(bin: PathBuf) -> Self {
        Self {
            bin,
            server_url: db::default_admin_url(),
            database_url: None,
            nodes: 4,
            jobs: 10_000,
            kill_every: Duration::from_secs(3),
            min_kills: 50,
            seed: seed_from_clock(),
            drain_timeout: Duration::from_secs(180),
            keep_database: false,
            verbose: true,
        }
    }
}

/// A seed from the clock.
pub fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// What a chaos run did and found.
#[derive(Debug, Clone)]
pub struct ChaosSummary {
    /// The seed (replay with `--seed`).
    pub seed: u64,
    /// Nodes.
    pub nodes: usize,
    /// SIGKILLs sent.
    pub kills: usize,
    /// Engine passes answered by the nodes.
    pub engine_passes: u64,
    /// Enqueue requests that had to be sent again (node killed or busy).
    pub enqueue_retries: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// The database the run used.
    pub database: String,
    /// Where the nodes' logs are.
    pub log_dir: PathBuf,
    /// The checks' result.
    pub verdict: check::Verdict,
}

impl ChaosSummary {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }
}

impl std::fmt::Display for ChaosSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "chaos: {} nodes, {} kills, {} engine passes, {} enqueue retries, {:.1} s, seed {}",
            self.nodes,
            self.kills,
            self.engine_passes,
            self.enqueue_retries,
            self.elapsed.as_secs_f64(),
            self.seed
        )?;
        writeln!(
            f,
            "database {} · logs {}",
            self.database,
            self.log_dir.display()
        )?;
        write!(f, "{}", self.verdict)
    }
}

/// One node's place: its process (none while it restarts) and its address.
#[derive(Default)]
struct Slot {
    process: Mutex<Option<ServeProcess>>,
    base: Mutex<Option<String>>,
}

impl Slot {
    fn base(&self) -> Option<String> {
        self.base.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    fn set(&self, p: Option<ServeProcess>) {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = p.as_ref().map(|p| p.base.clone());
        *self.process.lock().unwrap_or_else(|e| e.into_inner()) = p;
    }
    fn take(&self) -> Option<ServeProcess> {
        *self.base.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.process
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// The flags every chaos node runs with: killer every second, dead after 4 s,
/// immediate retries, an expiry grace no live node reaches.
pub const NODE_DEAD_AFTER_SECS: u64 = 4;

pub(crate) fn node_args(name: &str) -> Vec<String> {
    [
        "--node-name",
        name,
        "--killer-interval-seconds",
        "1",
        "--node-dead-after-seconds",
        &NODE_DEAD_AFTER_SECS.to_string(),
        "--retry-backoff-seconds",
        "0",
        "--expiry-grace-seconds",
        "120",
        "--batch-size",
        "50",
        "--max-concurrent-jobs",
        "200",
        "--shutdown-grace-seconds",
        "10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn start_node(bin: PathBuf, url: String, name: String, log: PathBuf) -> Result<ServeProcess> {
    tokio::task::spawn_blocking(move || ServeProcess::start(&bin, &url, &node_args(&name), &log))
        .await
        .context("start task")?
}

/// Runs the chaos scenario and checks the result. An `Err` means the run could not be
/// carried out (no server, no binary); a broken rule is a summary that did not pass.
///
/// # Errors
/// When the database or the nodes cannot be set up.
pub async fn chaos(opts: ChaosOptions) -> Result<ChaosSummary> {
    if opts.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    let started = Instant::now();
    let fresh = match &opts.database_url {
        Some(_) => None,
        None => Some(db::FreshDatabase::create(&opts.server_url, "chaos").await?),
    };
    let url = opts
        .database_url
        .clone()
        .or_else(|| fresh.as_ref().map(|f| f.url.clone()))
        .context("no database")?;
    let client = db::Db::connect(&url).await?;
    let mut rng = Rng::new(opts.seed);
    let jobs = plan::generate(opts.jobs, "chaos", &mut rng);
    plan::save(&client, &jobs).await?;
    let log_dir = node::log_dir("chaos")?;
    if opts.verbose {
        eprintln!(
            "chaos: {} nodes, {} jobs, a kill every ~{:?} (at least {}), seed {}; database {}; logs {}",
            opts.nodes,
            opts.jobs,
            opts.kill_every,
            opts.min_kills,
            opts.seed,
            db::redact(&url),
            log_dir.display()
        );
    }

    // The first node migrates and creates the demo templates; the others follow.
    let slots: Arc<Vec<Slot>> = Arc::new((0..opts.nodes).map(|_| Slot::default()).collect());
    let name = |i: usize| format!("chaos-{i}");
    let log = |i: usize| log_dir.join(format!("chaos-{i}.log"));
    slots[0].set(Some(
        start_node(opts.bin.clone(), url.clone(), name(0), log(0)).await?,
    ));
    let rest = futures::future::try_join_all(
        (1..opts.nodes).map(|i| start_node(opts.bin.clone(), url.clone(), name(i), log(i))),
    )
    .await?;
    for (i, p) in rest.into_iter().enumerate() {
        slots[i + 1].set(Some(p));
    }

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let passes = Arc::new(AtomicU64::new(0));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));

    // Engines: two triggers per node, concurrently and repeatedly.
    let mut triggers = Vec::new();
    for i in 0..opts.nodes {
        for k in 0..2u64 {
            let (slots, http, stop, passes) =
                (slots.clone(), http.clone(), stop.clone(), passes.clone());
            let mut rng = Rng::new(opts.seed ^ (i as u64 * 31 + k + 1));
            triggers.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let ok = match slots[i].base() {
                        Some(base) => http
                            .post(format!("{base}/jobs/engine/run"))
                            .send()
                            .await
                            .is_ok_and(|r| r.status().is_success()),
                        None => false,
                    };
                    if ok {
                        passes.fetch_add(1, Ordering::Relaxed);
                    }
                    let pause = if ok { 10 + rng.below(40) } else { 100 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
    }

    // Enqueuers: spread over the kill phase so the load meets the kills.
    let spread = if opts.kill_every.is_zero() {
        Duration::ZERO
    } else {
        opts.kill_every.mul_f64(opts.min_kills as f64 * 0.8)
    };
    let jobs = Arc::new(jobs);
    let next = Arc::new(AtomicUsize::new(0));
    let enqueued = Arc::new(AtomicUsize::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let enqueue_start = Instant::now();
    let mut enqueuers = Vec::new();
    for w in 0..16u64 {
        let (slots, http, jobs, next, enqueued, retries, violations) = (
            slots.clone(),
            http.clone(),
            jobs.clone(),
            next.clone(),
            enqueued.clone(),
            retries.clone(),
            violations.clone(),
        );
        let mut rng = Rng::new(opts.seed ^ (0xE000 + w));
        enqueuers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let due = enqueue_start + spread.mul_f64(i as f64 / jobs.len() as f64);
                tokio::time::sleep_until(due.into()).await;
                enqueue(&http, &slots, job, &mut rng, &retries, &violations).await;
                enqueued.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // Invariant sampler: an entry RUNNING must point at a RUNNING run and back.
    let sampler = {
        let (stop, violations, url) = (stop.clone(), violations.clone(), url.clone());
        tokio::spawn(async move {
            let Ok(db) = db::Db::connect(&url).await else {
                return;
            };
            let sql = invariant_sql(db.backend());
            while !stop.load(Ordering::Relaxed) {
                if let Ok(rows) = db.query(&sql, &[]).await {
                    let mut v = violations.lock().unwrap_or_else(|e| e.into_inner());
                    for r in rows {
                        let id = r.get::<String>(0).unwrap_or_default();
                        let what = r.get::<String>(1).unwrap_or_default();
                        v.push(format!("{id}: {what} (seen while running)"));
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };

    // The kills.
    let mut kills = 0usize;
    let mut last_report = Instant::now();
    while kills < opts.min_kills || enqueued.load(Ordering::Relaxed) < opts.jobs {
        if opts.kill_every.is_zero() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        } else {
            let pause = opts.kill_every.mul_f64(0.5 + rng.unit());
            tokio::time::sleep(pause).await;
            let i = rng.below(opts.nodes as u64) as usize;
            if let Some(p) = slots[i].take() {
                p.kill();
                kills += 1;
                tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
                let p = start_node(opts.bin.clone(), url.clone(), name(i), log(i)).await?;
                slots[i].set(Some(p));
            }
        }
        if opts.verbose && last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            let (queued, running) = db::pending(&client).await.unwrap_or((-1, -1));
            eprintln!(
                "  t={:>5.0}s kills {kills:>3} enqueued {:>6}/{} queue {queued} running {running}",
                started.elapsed().as_secs_f64(),
                enqueued.load(Ordering::Relaxed),
                opts.jobs
            );
        }
    }
    for e in enqueuers {
        let _ = e.await;
    }

    // Drain: every node alive, engines still triggered, until nothing is left.
    let drain_deadline = Instant::now() + opts.drain_timeout;
    loop {
        let (queued, running) = db::pending(&client).await?;
        if queued == 0 && running == 0 {
            break;
        }
        if Instant::now() > drain_deadline {
            violations.lock().unwrap_or_else(|e| e.into_inner()).push(format!(
                "the queue did not drain within {:?} after the last kill: {queued} entries, {running} runs RUNNING",
                opts.drain_timeout
            ));
            break;
        }
        if opts.verbose && last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  t={:>5.0}s draining: queue {queued} running {running}",
                started.elapsed().as_secs_f64()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in triggers {
        let _ = t.await;
    }
    let _ = sampler.await;

    // Clean stops: every surviving instance records its departure, so the instances
    // without one are exactly the killed ones.
    let stops = (0..opts.nodes).filter_map(|i| slots[i].take()).map(|p| {
        tokio::task::spawn_blocking(move || (p.pid(), p.terminate(Duration::from_secs(30))))
    });
    for r in futures::future::join_all(stops).await {
        match r {
            Ok((_, true)) => {}
            Ok((pid, false)) => violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("node pid {pid} did not stop cleanly on SIGTERM")),
            Err(e) => violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("stopping a node: {e}")),
        }
    }

    let mut verdict = killed_nodes_verdict(&client, kills).await?;
    verdict.violations.extend(std::mem::take(
        &mut *violations.lock().unwrap_or_else(|e| e.into_inner()),
    ));

    let summary = ChaosSummary {
        seed: opts.seed,
        nodes: opts.nodes,
        kills,
        engine_passes: passes.load(Ordering::Relaxed),
        enqueue_retries: retries.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        database: fresh
            .as_ref()
            .map_or_else(|| db::redact(&url), |f| f.name.clone()),
        log_dir,
        verdict,
    };
    if let Some(f) = fresh
        && summary.passed()
        && !opts.keep_database
    {
        drop(client);
        f.drop_database().await?;
    }
    Ok(summary)
}

/// The checker's verdict on the database after a run in which `kills` node processes
/// were SIGKILLed: the no-loss rules of [`check::verdict`], and every killed instance
/// recorded as departed. Shared by every scenario that kills nodes.
pub(crate) async fn killed_nodes_verdict(client: &db::Db, kills: usize) -> Result<check::Verdict> {
    let mut verdict = check::verdict(
        &plan::load(client).await?,
        &db::runs(client).await?,
        &db::nodes(client).await?,
        &db::queue(client).await?,
        check::Rules {
            node_dead_after_secs: NODE_DEAD_AFTER_SECS as f64,
            expired_from_any_node: false,
            database_away: false,
        },
    );
    if verdict.killed_instances != kills {
        verdict.violations.push(format!(
            "{} instances never recorded a departure, but {kills} were killed",
            verdict.killed_instances
        ));
    }
    Ok(verdict)
}

/// Rows that break the move model's invariant (docs/STORAGE.md): a running job is its
/// `RUNNING` run and nothing else — no queue row is `RUNNING`, no waiting entry shares
/// its id or identifier with a `RUNNING` run, an identifier has at most one `RUNNING`
/// run — read in one snapshot. (MySQL's queue table has no `current_run_id` left.)
fn invariant_sql(backend: db::Backend) -> String {
    let queue_row_running = match backend {
        db::Backend::Postgres => "q.status <> 'AVAILABLE' OR q.current_run_id IS NOT NULL",
        db::Backend::Mysql => "q.status <> 'AVAILABLE'",
    };
    format!(
        "SELECT q.job_run_identifier, 'queue row RUNNING'
         FROM bildad_queue q
         WHERE {queue_row_running}
         UNION ALL
         SELECT q.job_run_identifier, 'entry waiting while its run runs'
         FROM bildad_queue q JOIN bildad_runs r
           ON (r.entry_id = q.id OR r.job_run_identifier = q.job_run_identifier)
          AND r.status = 'RUNNING'
         UNION ALL
         SELECT job_run_identifier, 'two RUNNING runs'
         FROM bildad_runs WHERE status = 'RUNNING'
         GROUP BY job_run_identifier HAVING count(*) > 1"
    )
}

/// Sends `job` to a live node until one accepts it. A 409 on a later attempt means an
/// earlier attempt got through before its node died.
async fn enqueue(
    http: &reqwest::Client,
    slots: &[Slot],
    job: &PlannedJob,
    rng: &mut Rng,
    retries: &AtomicU64,
    violations: &Mutex<Vec<String>>,
) {
    let body = job.request(rng.below(10) == 0);
    for attempt in 0u32.. {
        if attempt > 0 {
            retries.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let start = rng.below(slots.len() as u64) as usize;
        let Some(base) = (0..slots.len())
            .map(|k| &slots[(start + k) % slots.len()])
            .find_map(Slot::base)
        else {
            continue;
        };
        let Ok(r) = http
            .post(format!("{base}/jobs/queue"))
            .json(&body)
            .send()
            .await
        else {
            continue;
        };
        let status = r.status().as_u16();
        match status {
            201 => return,
            409 if attempt > 0 => return,
            503 => continue,
            _ => {
                let text: Value = r.json().await.unwrap_or(Value::Null);
                violations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(format!(
                        "{}: enqueue answered {status} {text}",
                        job.identifier
                    ));
                return;
            }
        }
    }
}
