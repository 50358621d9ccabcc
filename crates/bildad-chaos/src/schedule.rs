//! Periodic jobs under SIGKILL (SPEC §9): `bildad serve` nodes evaluate a per-second
//! schedule while they are killed and restarted one at a time, so that at least one
//! node is always up. The check reads the database with its own SQL: every fire time
//! from the schedule's first to its last has exactly one entry (in the queue or in the
//! history), with no gap.

use crate::db::{Db, Param};
use crate::node::{ServeProcess, log_dir};
use crate::plan::Rng;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The schedule the run creates.
pub const SCHEDULE: &str = "chaos-tick";

/// The settings of one schedule run.
#[derive(Debug, Clone)]
pub struct ScheduleChaosOptions {
    /// The `bildad` binary.
    pub bin: PathBuf,
    /// A migrated or empty PostgreSQL or MySQL/MariaDB database the run may use.
    pub database_url: String,
    /// `bildad serve` processes (at least 2: one is down at a time).
    pub nodes: usize,
    /// How long the schedule runs.
    pub duration: Duration,
    /// Mean time between two kills (each ±50 %).
    pub kill_every: Duration,
    /// The seed of the kills.
    pub seed: u64,
}

/// What a schedule run did and found.
#[derive(Debug, Clone)]
pub struct ScheduleReport {
    /// SIGKILLs sent.
    pub kills: usize,
    /// Fire times with an entry.
    pub fires: usize,
    /// The first and last fire time of the schedule.
    pub span: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Broken rules (empty when the run passed).
    pub violations: Vec<String>,
}

impl ScheduleReport {
    /// True when every fire time had exactly one entry.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl std::fmt::Display for ScheduleReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "schedule chaos: {} kills, {} fire times {:?}",
            self.kills, self.fires, self.span
        )?;
        for v in &self.violations {
            writeln!(f, "  VIOLATION {v}")?;
        }
        Ok(())
    }
}

fn args(name: &str) -> Vec<String> {
    [
        "--node-name",
        name,
        "--scheduler-interval-seconds",
        "1",
        "--killer-interval-seconds",
        "1",
        "--node-dead-after-seconds",
        "4",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

async fn start(opts: &ScheduleChaosOptions, i: usize, log: PathBuf) -> Result<ServeProcess> {
    let (bin, url, args) = (
        opts.bin.clone(),
        opts.database_url.clone(),
        args(&format!("sched-{i}")),
    );
    tokio::task::spawn_blocking(move || ServeProcess::start(&bin, &url, &args, &log))
        .await
        .context("start task")?
}

/// Runs the scenario and checks it. An `Err` means it could not be carried out.
///
/// # Errors
/// When the database or the nodes cannot be set up.
pub async fn run(opts: ScheduleChaosOptions) -> Result<ScheduleReport> {
    if opts.nodes < 2 {
        bail!("a schedule run needs at least 2 nodes");
    }
    let logs = log_dir("schedule")?;
    let log = |i: usize| logs.join(format!("sched-{i}.log"));
    let mut nodes = Vec::new();
    for i in 0..opts.nodes {
        nodes.push(Some(start(&opts, i, log(i)).await?));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()?;
    let base = nodes[0]
        .as_ref()
        .map(|n| n.base.clone())
        .unwrap_or_default();
    let created = http
        .post(format!("{base}/jobs/schedules"))
        .json(
            &json!({"name": SCHEDULE, "cron": "* * * * * *", "template": "demo.echo",
                      "context": {"from": "schedule"}}),
        )
        .send()
        .await?;
    if created.status().as_u16() != 201 {
        bail!("creating the schedule answered {}", created.status());
    }
    let mut rng = Rng::new(opts.seed);
    let mut kills = 0;
    let end = Instant::now() + opts.duration;
    while Instant::now() < end {
        tokio::time::sleep(opts.kill_every.mul_f64(0.5 + rng.unit())).await;
        let i = rng.below(opts.nodes as u64) as usize;
        if let Some(p) = nodes[i].take() {
            p.kill();
            kills += 1;
            nodes[i] = Some(start(&opts, i, log(i)).await?);
        }
    }
    // Pause the schedule through a live node: no fire time after this.
    let base = nodes.iter().flatten().next().map(|n| n.base.clone());
    let paused = http
        .patch(format!(
            "{}/jobs/schedules/{SCHEDULE}",
            base.unwrap_or_default()
        ))
        .json(&json!({"active": false}))
        .send()
        .await?;
    if !paused.status().is_success() {
        bail!("pausing the schedule answered {}", paused.status());
    }
    for p in nodes.into_iter().flatten() {
        tokio::task::spawn_blocking(move || p.terminate(Duration::from_secs(30))).await?;
    }
    let client = Db::connect(&opts.database_url).await?;
    let (first, last) = span(&client).await?;
    let fires = fire_times(&client).await?;
    let violations = check(first, last, &fires);
    Ok(ScheduleReport {
        kills,
        fires: fires.len(),
        span: first.zip(last),
        violations,
    })
}

/// The schedule's first fire time (the second after its creation) and last one, as
/// stored.
async fn span(db: &Db) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>)> {
    let sql = format!(
        "SELECT floor({}) + 1, {} FROM bildad_schedules WHERE name = $1",
        db.epoch("inserted_at"),
        db.epoch("last_fire_at")
    );
    let row = db
        .query_one(&sql, &[Param::Text(SCHEDULE)])
        .await
        .context("reading the schedule")?;
    let at = |s: Option<f64>| s.and_then(|s| DateTime::from_timestamp(s as i64, 0));
    Ok((at(row.get(0)?), at(row.get(1)?)))
}

/// Every fire time with an entry: the identifiers in the queue and in the history
/// (several runs of one entry count once), with how many entries each has.
async fn fire_times(db: &Db) -> Result<Vec<(DateTime<Utc>, i64)>> {
    let prefix = format!("schedule:{SCHEDULE}:");
    let rows = db
        .query(
            "SELECT substr(job_run_identifier, length($1) + 1), count(*) FROM (
                 SELECT job_run_identifier FROM bildad_entries_v2
                 WHERE substr(job_run_identifier, 1, length($1)) = $1
                 UNION ALL
                 SELECT DISTINCT job_run_identifier FROM bildad_runs
                 WHERE substr(job_run_identifier, 1, length($1)) = $1
                   AND job_run_identifier NOT IN (SELECT job_run_identifier FROM bildad_entries_v2)
             ) ids GROUP BY 1 ORDER BY 1",
            &[Param::Text(&prefix)],
        )
        .await
        .context("reading the fire times")?;
    let mut out = Vec::new();
    for r in rows {
        let text: String = r.get(0)?;
        let t = DateTime::parse_from_rfc3339(&text)
            .with_context(|| format!("fire time {text:?}"))?
            .with_timezone(&Utc);
        out.push((t, r.get(1)?));
    }
    out.sort();
    Ok(out)
}

/// One entry per second from `first` to `last`: no gap, no fire time twice, none
/// outside the span.
pub fn check(
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    fires: &[(DateTime<Utc>, i64)],
) -> Vec<String> {
    let (Some(first), Some(last)) = (first, last) else {
        return vec!["the schedule never fired".into()];
    };
    let mut v = Vec::new();
    for (t, n) in fires {
        if *n != 1 {
            v.push(format!("fire time {t} has {n} entries"));
        }
        if *t < first || *t > last {
            v.push(format!("fire time {t} is outside {first}..{last}"));
        }
    }
    let mut expected = first;
    let mut have = fires.iter().map(|(t, _)| *t).peekable();
    while expected <= last {
        while have.next_if(|t| *t < expected).is_some() {}
        if have.peek() != Some(&expected) {
            v.push(format!("fire time {expected} has no entry"));
        }
        expected += chrono::Duration::seconds(1);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_gap_a_double_and_a_stray_are_each_reported() {
        let fires = [(t(0), 1), (t(1), 2), (t(3), 1), (t(9), 1)];
        let v = check(Some(t(0)), Some(t(3)), &fires);
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(
            v[0].contains("2 entries") && v[1].contains("outside"),
            "{v:?}"
        );
        assert!(v[2].contains("no entry"), "{v:?}");
        assert!(check(Some(t(0)), Some(t(1)), &[(t(0), 1), (t(1), 1)]).is_empty());
    }
}
