//! The database goes away under load: two `bildad serve` nodes reach PostgreSQL through a
//! [`Proxy`](crate::proxy::Proxy) that is cut for a while, then restored.
//!
//! Meanwhile the nodes must stay up and answer 503 (never another 5xx), and afterwards
//! reconnect by themselves; jobs that were running finish or are retried; a job that
//! finished while the database was away records its outcome once it is back.
//!
//! [`run`] keeps `node_dead_after` (60 s) well above the outage (10 s by default);
//! [`run_with`] sets it, so that the outage can outlast it: every node's heartbeat is
//! then older than `node_dead_after` when the database returns, and still no live
//! node's run may expire (issue #12).

use crate::check::{self, Verdict};
use crate::db::{self, Db};
use crate::node::{self, ServeProcess};
use crate::plan::{self, Kind, PlannedJob, Rng};
use crate::proxy::{self, Proxy};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The settings of one outage run.
#[derive(Debug, Clone)]
pub struct OutageOptions {
    /// The `bildad` binary.
    pub bin: PathBuf,
    /// The database to use (fresh and empty), reached directly by the checks and through
    /// the proxy by the nodes.
    pub database_url: String,
    /// How long the database stays away.
    pub outage: Duration,
    /// Background jobs enqueued before and around the cut.
    pub jobs: usize,
    /// Seed of the job mix.
    pub seed: u64,
}

/// What the outage run saw.
#[derive(Debug, Clone)]
pub struct OutageReport {
    /// How long the database was away, and the nodes' `node_dead_after`.
    pub outage: Duration,
    /// See `outage`.
    pub node_dead_after: Duration,
    /// Answers during the outage, by status code (`0` = no answer).
    pub statuses_during: std::collections::BTreeMap<u16, usize>,
    /// Seconds from the restore until every node answered `/jobs/health` with 200.
    pub recovered_after: f64,
    /// Jobs that were running at the cut and finished while the database was away: each
    /// must have exactly one run, `SUCCEEDED`, recorded after the restore.
    pub finished_while_away: usize,
    /// Log lines of the nodes that mention the outage.
    pub outage_log_lines: usize,
    /// A sample of them.
    pub log_sample: Vec<String>,
    /// The checks of every job (the chaos verdict, no node killed).
    pub verdict: Verdict,
}

impl std::fmt::Display for OutageReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "outage of {:?} (node_dead_after {:?}): answers while away {:?}; healthy {:.1} s \
             after the restore; {} jobs finished while away and recorded after; \
             {} log lines about it",
            self.outage,
            self.node_dead_after,
            self.statuses_during,
            self.recovered_after,
            self.finished_while_away,
            self.outage_log_lines
        )?;
        for l in &self.log_sample {
            writeln!(f, "  log: {l}")?;
        }
        write!(f, "{}", self.verdict)
    }
}

/// The nodes' `node_dead_after` in [`run`].
pub const NODE_DEAD_AFTER: Duration = Duration::from_secs(60);

fn node_args(name: &str, node_dead_after: Duration) -> Vec<String> {
    [
        "--node-name",
        name,
        "--killer-interval-seconds",
        "1",
        "--node-dead-after-seconds",
        &node_dead_after.as_secs().to_string(),
        "--retry-backoff-seconds",
        "0",
        "--expiry-grace-seconds",
        "120",
        "--batch-size",
        "20",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// Runs the scenario with `node_dead_after` = [`NODE_DEAD_AFTER`]; violations are in the
/// report's verdict.
///
/// # Errors
/// When it cannot be set up.
pub async fn run(opts: OutageOptions) -> Result<OutageReport> {
    run_with(opts, NODE_DEAD_AFTER).await
}

/// Runs the scenario with nodes that count a node dead after `node_dead_after` (whole
/// seconds, more than the 1 s killer interval). An outage longer than that must expire
/// no live node's run: the verdict flags any `Expired` run of a node that heartbeated
/// within `node_dead_after` of it, and every job that finished while the database was
/// away must still have one `SUCCEEDED` run.
///
/// # Errors
/// When it cannot be set up, or `node_dead_after` is not over 1 s.
pub async fn run_with(opts: OutageOptions, node_dead_after: Duration) -> Result<OutageReport> {
    if node_dead_after.as_secs() < 2 {
        bail!("node_dead_after must be at least 2 s (the killer ticks every second)");
    }
    let upstream = proxy::host_port(&opts.database_url).context("no host in the URL")?;
    let proxy = Proxy::start(upstream).await?;
    let node_url = proxy::via(&opts.database_url, proxy.addr).context("bad URL")?;
    let client = Db::connect(&opts.database_url).await?;
    let log_dir = node::log_dir("outage")?;

    let mut rng = Rng::new(opts.seed);
    let mut jobs = plan::generate(opts.jobs, "bg", &mut rng);
    // Running at the cut, done while the database is away.
    let spanning: Vec<PlannedJob> = (0..10)
        .map(|i| PlannedJob {
            identifier: format!("span-{i}"),
            kind: Kind::Sleep,
            max_retries: 2,
            fail_times: 0,
            seconds: 3.0,
        })
        .collect();
    jobs.extend(spanning.iter().cloned());
    plan::save(&client, &jobs).await?;

    let start = |name: &'static str| {
        let (bin, url, log) = (
            opts.bin.clone(),
            node_url.clone(),
            log_dir.join(format!("{name}.log")),
        );
        tokio::task::spawn_blocking(move || {
            ServeProcess::start(&bin, &url, &node_args(name, node_dead_after), &log)
        })
    };
    let mut nodes = vec![start("outage-a").await??, start("outage-b").await??];
    let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()?;

    let stop = Arc::new(AtomicBool::new(false));
    let mut triggers = Vec::new();
    for base in &bases {
        let (http, stop, base) = (http.clone(), stop.clone(), base.clone());
        triggers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = http.post(format!("{base}/jobs/engine/run")).send().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // Background load, then the spanning jobs, started for sure before the cut.
    let bg = jobs.len() - spanning.len();
    for (i, job) in jobs[..bg].iter().enumerate() {
        post_until_accepted(&http, &bases[i % 2], job).await?;
    }
    for (i, job) in spanning.iter().enumerate() {
        post_until_accepted(&http, &bases[i % 2], job).await?;
    }
    wait_running(&client, spanning.len()).await?;

    let cut_at = db::now(&client).await?;
    proxy.cut();
    let cut_clock = Instant::now();
    let mut statuses = std::collections::BTreeMap::new();
    let mut violations = Vec::new();
    let mut probe = 0;
    while cut_clock.elapsed() < opts.outage {
        for base in &bases {
            probe += 1;
            let answers = [
                http.get(format!("{base}/jobs/health")).send().await,
                http.get(format!("{base}/jobs/queue")).send().await,
                http.post(format!("{base}/jobs/queue"))
                    .json(&json!({"template": "demo.echo", "context": {},
                                  "job_run_identifier": format!("probe-{probe}")}))
                    .send()
                    .await,
            ];
            for a in answers {
                let s = a.map_or(0, |r| r.status().as_u16());
                *statuses.entry(s).or_insert(0) += 1;
                // The first fraction of a second may still see a pooled connection.
                if s != 503 && cut_clock.elapsed() > Duration::from_secs(1) {
                    violations.push(format!("{base} answered {s} while the database was away"));
                }
            }
        }
        for n in &mut nodes {
            if !n.is_alive() {
                bail!("a node exited during the outage; see {}", log_dir.display());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    proxy.restore();
    let restore_clock = Instant::now();
    let restore_at = db::now(&client).await?;
    for base in &bases {
        loop {
            let ok = http
                .get(format!("{base}/jobs/health"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if restore_clock.elapsed() > Duration::from_secs(60) {
                bail!("{base} did not recover within 60 s of the restore");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let recovered_after = restore_clock.elapsed().as_secs_f64();

    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (queued, running) = db::pending(&client).await?;
        if queued == 0 && running == 0 {
            break;
        }
        if Instant::now() > deadline {
            violations.push(format!(
                "not drained 120 s after the restore: {queued} entries, {running} running"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in triggers {
        let _ = t.await;
    }
    for n in nodes {
        if !tokio::task::spawn_blocking(move || n.terminate(Duration::from_secs(30))).await? {
            violations.push("a node did not stop cleanly".into());
        }
    }

    let runs = db::runs(&client).await?;
    let mut verdict = check::verdict(
        &jobs,
        &runs,
        &db::nodes(&client).await?,
        &db::queue(&client).await?,
        check::Rules {
            node_dead_after_secs: node_dead_after.as_secs() as f64,
            expired_from_any_node: false,
            database_away: true,
        },
    );
    let mut finished_while_away = 0;
    for s in &spanning {
        let mine: Vec<_> = runs
            .iter()
            .filter(|r| r.identifier == s.identifier)
            .collect();
        let ok = mine.len() == 1
            && mine[0].result.as_deref() == Some("SUCCEEDED")
            && mine[0].started_at < cut_at
            && mine[0].ended_at.is_some_and(|e| e >= restore_at);
        if ok {
            finished_while_away += 1;
        } else {
            violations.push(format!(
                "{}: running at the cut, should have one SUCCEEDED run recorded after the \
                 restore: {mine:?}",
                s.identifier
            ));
        }
    }
    // Rejected probes wrote nothing.
    let probes = db::count(
        &client,
        "SELECT count(*) FROM bildad_entries_v2 WHERE job_run_identifier LIKE 'probe-%'",
        &[],
    )
    .await?;
    if probes > 0 && !statuses.contains_key(&201) {
        violations.push(format!("{probes} probe entries written although refused"));
    }
    verdict.violations.extend(violations);

    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&log_dir)?.flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        lines.extend(
            text.lines()
                .filter(|l| {
                    let l = l.to_lowercase();
                    l.contains("unavailable") || l.contains("database")
                })
                .map(str::to_owned),
        );
    }
    if lines.is_empty() {
        verdict
            .violations
            .push("the nodes logged nothing about the outage".into());
    }
    Ok(OutageReport {
        outage: opts.outage,
        node_dead_after,
        statuses_during: statuses,
        recovered_after,
        finished_while_away,
        outage_log_lines: lines.len(),
        log_sample: lines.iter().take(4).cloned().collect(),
        verdict,
    })
}

async fn post_until_accepted(http: &reqwest::Client, base: &str, job: &PlannedJob) -> Result<()> {
    let r = http
        .post(format!("{base}/jobs/queue"))
        .json(&job.request(true))
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("enqueue {} answered {}", job.identifier, r.status());
    }
    Ok(())
}

async fn wait_running(client: &Db, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = db::count(
            client,
            "SELECT count(*) FROM bildad_runs
             WHERE job_run_identifier LIKE 'span-%' AND status = 'RUNNING'",
            &[],
        )
        .await?;
        if running as usize >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the spanning jobs did not all start within 30 s ({running}/{n})");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
