//! A queue's global limit under SIGKILL (SPEC §8, issue #15): one queue gets a
//! `global_limit` through `PATCH /jobs/queues/{name}`, short sleeps are enqueued in it,
//! and `bildad serve` nodes are SIGKILLed in turn — each time one that holds a slot —
//! and restarted. A killed node's runs stay `RUNNING` (and keep their slots) until its
//! peers expire them; then the slots come back.
//!
//! The check reads the history with its own SQL: at no instant more than `limit` runs
//! of the queue with `started_at <= t < ended_at` (an expired run counts until it
//! expired), the queue drained (no leaked slot), and the usual no-loss verdict of
//! [`crate::check`].

use crate::check::Verdict;
use crate::db::{self, Db, Param};
use crate::node::{ServeProcess, log_dir};
use crate::plan::{Kind, PlannedJob, Rng};
use crate::{node_args, plan};
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The limited queue.
pub const QUEUE: &str = "chaos-limited";

/// The settings of one limit run.
#[derive(Debug, Clone)]
pub struct LimitChaosOptions {
    /// The `bildad` binary.
    pub bin: PathBuf,
    /// A migrated or empty PostgreSQL or MySQL/MariaDB database the run may use.
    pub database_url: String,
    /// `bildad serve` processes.
    pub nodes: usize,
    /// The queue's `global_limit`.
    pub limit: i32,
    /// Jobs enqueued (sleeps of 0.3 to 1 s, 8 retries each).
    pub jobs: usize,
    /// How long nodes are killed.
    pub duration: Duration,
    /// Mean time between two kills (each ±50 %).
    pub kill_every: Duration,
    /// How long the queue may take to drain after the last kill.
    pub drain_timeout: Duration,
    /// The seed of the sleeps and the kills.
    pub seed: u64,
}

/// What a limit run did and found.
#[derive(Debug, Clone)]
pub struct LimitReport {
    /// SIGKILLs sent.
    pub kills: usize,
    /// The queue's limit.
    pub limit: i32,
    /// The most runs of the queue running at one instant.
    pub peak: usize,
    /// The no-loss verdict, with the limit's violations added.
    pub verdict: Verdict,
}

impl LimitReport {
    /// True when no rule was broken.
    pub fn passed(&self) -> bool {
        self.verdict.passed()
    }
}

impl std::fmt::Display for LimitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "limit chaos: {} kills, global_limit {}, peak {} running at once",
            self.kills, self.limit, self.peak
        )?;
        write!(f, "{}", self.verdict)
    }
}

async fn start(opts: &LimitChaosOptions, i: usize, log: PathBuf) -> Result<ServeProcess> {
    let (bin, url) = (opts.bin.clone(), opts.database_url.clone());
    let mut args = node_args(&format!("limit-{i}"));
    args.extend(["--engine-interval-seconds".to_owned(), "1".to_owned()]);
    tokio::task::spawn_blocking(move || ServeProcess::start(&bin, &url, &args, &log))
        .await
        .context("start task")?
}

/// Runs the scenario and checks it. An `Err` means it could not be carried out.
///
/// # Errors
/// When the database or the nodes cannot be set up.
pub async fn run(opts: LimitChaosOptions) -> Result<LimitReport> {
    if opts.nodes < 2 || opts.limit < 1 {
        bail!("a limit run needs at least 2 nodes and a limit of at least 1");
    }
    let logs = log_dir("limit")?;
    let log = |i: usize| logs.join(format!("limit-{i}.log"));
    let mut nodes = vec![Some(start(&opts, 0, log(0)).await?)];
    for i in 1..opts.nodes {
        nodes.push(Some(start(&opts, i, log(i)).await?));
    }
    let client = Db::connect(&opts.database_url).await?;
    let mut rng = Rng::new(opts.seed);
    let jobs: Vec<PlannedJob> = (0..opts.jobs)
        .map(|i| PlannedJob {
            identifier: format!("limit-{i}"),
            kind: Kind::Sleep,
            max_retries: 8,
            fail_times: 0,
            seconds: 0.3 + rng.unit() * 0.7,
        })
        .collect();
    plan::save(&client, &jobs).await?;

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let base = nodes[0]
        .as_ref()
        .map(|n| n.base.clone())
        .unwrap_or_default();
    let patched = http
        .patch(format!("{base}/jobs/queues/{QUEUE}"))
        .json(&json!({"global_limit": opts.limit}))
        .send()
        .await?;
    if !patched.status().is_success() {
        bail!("setting the queue's limit answered {}", patched.status());
    }
    for job in &jobs {
        let mut body = job.request(false);
        body["queue"] = json!(QUEUE);
        let r = http
            .post(format!("{base}/jobs/queue"))
            .json(&body)
            .send()
            .await?;
        if r.status().as_u16() != 201 {
            bail!("enqueueing {} answered {}", job.identifier, r.status());
        }
    }

    let mut kills = 0;
    let end = Instant::now() + opts.duration;
    while Instant::now() < end {
        tokio::time::sleep(opts.kill_every.mul_f64(0.5 + rng.unit())).await;
        let holders = slot_holders(&client).await?;
        let i = match holders.as_slice() {
            [] => rng.below(opts.nodes as u64) as usize,
            h => h[rng.below(h.len() as u64) as usize],
        };
        if let Some(p) = nodes.get_mut(i).and_then(Option::take) {
            p.kill();
            kills += 1;
            nodes[i] = Some(start(&opts, i, log(i)).await?);
        }
    }

    let mut late = Vec::new();
    let deadline = Instant::now() + opts.drain_timeout;
    loop {
        let (queued, running) = db::pending(&client).await?;
        if queued == 0 && running == 0 {
            break;
        }
        if Instant::now() > deadline {
            late.push(format!(
                "the queue did not drain within {:?} after the last kill: {queued} entries, \
                 {running} runs RUNNING (a leaked slot?)",
                opts.drain_timeout
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for p in nodes.into_iter().flatten() {
        let pid = p.pid();
        let clean =
            tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(30))).await?;
        if !clean {
            late.push(format!("node pid {pid} did not stop cleanly on SIGTERM"));
        }
    }

    let mut verdict = crate::killed_nodes_verdict(&client, kills).await?;
    let spans = spans(&client).await?;
    let (peak, over) = check_limit(opts.limit, &spans);
    verdict.violations.extend(over);
    verdict.violations.extend(late);
    Ok(LimitReport {
        kills,
        limit: opts.limit,
        peak,
        verdict,
    })
}

/// The indexes of the nodes (`limit-<i>`) with an instance that holds a running run of
/// the queue and beat in the last 3 s (heartbeats come every second; an instance killed
/// less than 3 s ago may still be taken for its node's new one: a miss only makes the
/// kill a plain one).
async fn slot_holders(db: &Db) -> Result<Vec<usize>> {
    let sql = format!(
        "SELECT DISTINCT n.name FROM bildad_runs r
         JOIN bildad_nodes n ON n.instance_id = r.node
         WHERE r.status = 'RUNNING' AND r.queue = $1 AND n.stopped_at IS NULL
           AND {} > {} - 3",
        db.epoch("n.last_heartbeat_at"),
        db.epoch("CURRENT_TIMESTAMP(6)")
    );
    let rows = db
        .query(&sql, &[Param::Text(QUEUE)])
        .await
        .context("reading the slot holders")?;
    Ok(rows
        .iter()
        .filter_map(|r| {
            r.get::<String>(0)
                .ok()?
                .strip_prefix("limit-")?
                .parse()
                .ok()
        })
        .collect())
}

/// `(started_at, ended_at)` of every run of the queue, seconds since the epoch.
async fn spans(db: &Db) -> Result<Vec<(f64, Option<f64>)>> {
    let sql = format!(
        "SELECT {}, {} FROM bildad_runs WHERE queue = $1",
        db.epoch("started_at"),
        db.epoch("ended_at")
    );
    let rows = db
        .query(&sql, &[Param::Text(QUEUE)])
        .await
        .context("reading the queue's runs")?;
    rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
}

/// The most runs with `started_at <= t < ended_at` at one instant `t` (a run without
/// `ended_at` never ends), and one violation per instant the count rises above `limit`.
pub fn check_limit(limit: i32, spans: &[(f64, Option<f64>)]) -> (usize, Vec<String>) {
    // At one instant, ends come before starts: a slot freed at t may be taken at t.
    let mut events: Vec<(f64, i32)> = spans
        .iter()
        .flat_map(|&(s, e)| [Some((s, 1)), e.map(|e| (e, -1))])
        .flatten()
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut peak, mut violations) = (0i32, 0usize, Vec::new());
    for (t, delta) in events {
        now += delta;
        peak = peak.max(now.max(0) as usize);
        if delta > 0 && now > limit {
            violations.push(format!(
                "{now} runs of queue {QUEUE} running at {t:.6} (global_limit {limit})"
            ));
        }
    }
    (peak, violations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_over_the_limit_is_reported_and_back_to_back_runs_are_not() {
        // Three slots: a run that starts as another ends takes its slot.
        let ok = [
            (0.0, Some(2.0)),
            (0.5, Some(3.0)),
            (1.0, Some(4.0)),
            (2.0, Some(5.0)),
            (3.0, None),
        ];
        assert_eq!(check_limit(3, &ok), (3, vec![]));
        // A fourth run while three run (one of them never ended: a leaked slot that
        // should have expired).
        let over = [
            (0.0, None),
            (0.5, Some(3.0)),
            (1.0, Some(4.0)),
            (2.5, Some(2.6)),
        ];
        let (peak, v) = check_limit(3, &over);
        assert_eq!(peak, 4);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].starts_with("4 runs") && v[0].contains("2.5"), "{v:?}");
    }
}
