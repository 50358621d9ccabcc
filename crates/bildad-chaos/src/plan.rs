//! The jobs of a run: a seeded mix of the demo types, what each attempt must end with,
//! and the `chaos_plan` table that keeps the plan in the database beside the jobs.

use crate::db::{Db, Param};
use anyhow::{Context, Result};
use serde_json::{Value, json};

/// What a planned job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `demo.echo`: succeeds at once.
    Echo,
    /// `demo.sleep` shorter than its timeout: succeeds.
    Sleep,
    /// `demo.fail`: fails every attempt with its message.
    Fail,
    /// `demo.flaky`: fails `fail_times` attempts, then succeeds.
    Flaky,
    /// `demo.panic`: panics every attempt.
    Panic,
    /// `demo.sleep` longer than `timeout_seconds`: the killer ends every attempt.
    Timeout,
    /// `demo.spin` (process-isolated, a CPU loop) longer than `timeout_seconds`: the
    /// killer ends every attempt with SIGKILL (`Timeout (killed)`).
    Spin,
    /// `demo.block` (process-isolated, `std::thread::sleep`) shorter than its timeout:
    /// succeeds.
    Block,
}

impl Kind {
    /// The name stored in `chaos_plan.kind`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Echo => "echo",
            Kind::Sleep => "sleep",
            Kind::Fail => "fail",
            Kind::Flaky => "flaky",
            Kind::Panic => "panic",
            Kind::Timeout => "timeout",
            Kind::Spin => "spin",
            Kind::Block => "block",
        }
    }

    /// The kind stored as `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "echo" => Kind::Echo,
            "sleep" => Kind::Sleep,
            "fail" => Kind::Fail,
            "flaky" => Kind::Flaky,
            "panic" => Kind::Panic,
            "timeout" => Kind::Timeout,
            "spin" => Kind::Spin,
            "block" => Kind::Block,
            _ => return None,
        })
    }
}

/// One planned job.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    /// Its `job_run_identifier`.
    pub identifier: String,
    /// What it does.
    pub kind: Kind,
    /// Its `max_retries`.
    pub max_retries: i32,
    /// For `Flaky`: failures before the first success.
    pub fail_times: i32,
    /// For `Sleep` and `Timeout`: seconds slept.
    pub seconds: f64,
}

/// What one attempt must end with when nothing outside interferes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// `SUCCEEDED`.
    Success,
    /// `FAILED` with this reason.
    Failure(String),
}

/// The message of `demo.fail` and `demo.panic` jobs.
pub const FAIL_MESSAGE: &str = "chaos: planned failure";

/// The reason of a `Spin` run its node's killer ended: the run was finalized `Timeout`,
/// then its child process killed. A node killed between the two leaves `Timeout`.
pub const KILLED_TIMEOUT: &str = "Timeout (killed)";

/// Timeout of the `Timeout` jobs, in seconds (they sleep six times as long, so that a
/// killer tick delayed by a loaded machine still comes first).
pub const TIMEOUT_SECONDS: i32 = 1;

impl PlannedJob {
    /// The outcome of attempt `retry` when its node lives.
    pub fn expected(&self, retry: i32) -> Expected {
        match self.kind {
            Kind::Echo | Kind::Sleep | Kind::Block => Expected::Success,
            Kind::Fail => Expected::Failure(FAIL_MESSAGE.to_owned()),
            Kind::Panic => Expected::Failure(format!("panic: {FAIL_MESSAGE}")),
            Kind::Timeout => Expected::Failure("Timeout".to_owned()),
            Kind::Spin => Expected::Failure(KILLED_TIMEOUT.to_owned()),
            Kind::Flaky if retry < self.fail_times => Expected::Failure(format!(
                "flaky failure {} of {}",
                retry + 1,
                self.fail_times
            )),
            Kind::Flaky => Expected::Success,
        }
    }

    /// Runs the retry rule would give with no kill at all.
    pub fn runs_without_faults(&self) -> i32 {
        let mut retry = 0;
        loop {
            if self.expected(retry) == Expected::Success || retry >= self.max_retries {
                return retry + 1;
            }
            retry += 1;
        }
    }

    /// The body of `POST /jobs/queue` for this job.
    pub fn request(&self, trigger_engine: bool) -> Value {
        let (template, context) = match self.kind {
            Kind::Echo => ("demo.echo", json!({"job": self.identifier})),
            Kind::Sleep | Kind::Timeout => ("demo.sleep", json!({"seconds": self.seconds})),
            Kind::Fail => ("demo.fail", json!({"message": FAIL_MESSAGE})),
            Kind::Panic => ("demo.panic", json!({"message": FAIL_MESSAGE})),
            Kind::Flaky => ("demo.flaky", json!({"fail_times": self.fail_times})),
            Kind::Spin => ("demo.spin", json!({"seconds": self.seconds})),
            Kind::Block => ("demo.block", json!({"seconds": self.seconds})),
        };
        let mut body = json!({
            "template": template,
            "context": context,
            "job_run_identifier": self.identifier,
            "max_retries": self.max_retries,
            "trigger_engine": trigger_engine,
        });
        if matches!(self.kind, Kind::Timeout | Kind::Spin) {
            body["timeout_seconds"] = json!(TIMEOUT_SECONDS);
        }
        body
    }
}

/// SplitMix64: a small seeded generator, so a run can be replayed with `--seed`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `jobs` planned jobs: 27 % echo, 20 % short sleeps, 10 % failures, 15 % flaky,
/// 5 % panics, 15 % timeouts, and of the process-isolated types 4 % short blocking
/// sleeps and 4 % CPU loops past their timeout. Identifiers are `<prefix>-<n>`.
pub fn generate(jobs: usize, prefix: &str, rng: &mut Rng) -> Vec<PlannedJob> {
    (0..jobs)
        .map(|i| {
            let roll = rng.below(100);
            let kind = match roll {
                0..27 => Kind::Echo,
                27..31 => Kind::Block,
                31..35 => Kind::Spin,
                35..55 => Kind::Sleep,
                55..65 => Kind::Fail,
                65..80 => Kind::Flaky,
                80..85 => Kind::Panic,
                _ => Kind::Timeout,
            };
            let (max_retries, fail_times, seconds) = match kind {
                Kind::Echo => (rng.below(3) as i32, 0, 0.0),
                Kind::Sleep => (1 + rng.below(3) as i32, 0, 0.05 + rng.unit() * 1.5),
                Kind::Fail => (rng.below(3) as i32, 0, 0.0),
                Kind::Flaky => (1 + rng.below(4) as i32, rng.below(4) as i32, 0.0),
                Kind::Panic => (rng.below(2) as i32, 0, 0.0),
                Kind::Timeout | Kind::Spin => {
                    (rng.below(2) as i32, 0, f64::from(TIMEOUT_SECONDS) * 6.0)
                }
                Kind::Block => (1 + rng.below(2) as i32, 0, 0.05 + rng.unit() * 0.5),
            };
            PlannedJob {
                identifier: format!("{prefix}-{i}"),
                kind,
                max_retries,
                fail_times,
                seconds,
            }
        })
        .collect()
}

/// Creates `chaos_plan` and stores `jobs` in it, so that the verdict needs nothing but
/// the database.
///
/// # Errors
/// On a database error.
pub async fn save(db: &Db, jobs: &[PlannedJob]) -> Result<()> {
    db.batch_execute(
        "CREATE TABLE IF NOT EXISTS chaos_plan (
             job_run_identifier VARCHAR(255) PRIMARY KEY,
             kind VARCHAR(16) NOT NULL,
             max_retries INTEGER NOT NULL,
             fail_times INTEGER NOT NULL,
             seconds DOUBLE PRECISION NOT NULL
         )",
    )
    .await
    .context("creating chaos_plan")?;
    for chunk in jobs.chunks(1000) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let n = i * 5;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4,
                    n + 5
                )
            })
            .collect();
        let params: Vec<Param<'_>> = chunk
            .iter()
            .flat_map(|j| {
                [
                    Param::Text(&j.identifier),
                    Param::Text(j.kind.name()),
                    Param::Int(j.max_retries),
                    Param::Int(j.fail_times),
                    Param::Float(j.seconds),
                ]
            })
            .collect();
        db.execute(
            &format!(
                "INSERT INTO chaos_plan (job_run_identifier, kind, max_retries, fail_times, seconds)
                 VALUES {}",
                rows.join(", ")
            ),
            &params,
        )
        .await
        .context("storing the plan")?;
    }
    Ok(())
}

/// The plan stored by [`save`].
///
/// # Errors
/// On a database error or an unknown kind.
pub async fn load(db: &Db) -> Result<Vec<PlannedJob>> {
    let rows = db
        .query(
            "SELECT job_run_identifier, kind, max_retries, fail_times, seconds FROM chaos_plan",
            &[],
        )
        .await
        .context("reading chaos_plan")?;
    rows.iter()
        .map(|r| {
            let kind: String = r.get(1)?;
            Ok(PlannedJob {
                identifier: r.get(0)?,
                kind: Kind::from_name(&kind).with_context(|| format!("unknown kind {kind}"))?,
                max_retries: r.get(2)?,
                fail_times: r.get(3)?,
                seconds: r.get(4)?,
            })
        })
        .collect()
}
