//! `bildad-chaos`: the fault runs from the shell (`cargo xtask chaos` calls it).
//!
//! ```text
//! bildad-chaos [--nodes 4] [--jobs 10000] [--kill-every-secs 3] [--min-kills 50] [--runs 1]
//! bildad-chaos outage [--outage-secs 10] [--node-dead-after-secs 60] [--jobs 300]
//! bildad-chaos schedule [--nodes 3] [--seconds 60] [--kill-every-secs 2]
//! bildad-chaos limit [--nodes 3] [--limit 3] [--jobs 300] [--seconds 60] [--kill-every-secs 2]
//! ```

use anyhow::{Context, Result};
use bildad_chaos::{ChaosOptions, db, outage};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Kill `bildad serve` nodes under load, or cut their database, and check from the
/// database alone that nothing was lost and nothing ran twice.
#[derive(Debug, Parser)]
#[command(name = "bildad-chaos")]
struct Cli {
    /// The `bildad` binary (default: the one beside this program, as
    /// `cargo build --release -p bildad` leaves it).
    #[arg(long, global = true)]
    bin: Option<PathBuf>,

    /// The PostgreSQL (`postgres://…`) or MySQL/MariaDB (`mysql://…`) server; a fresh
    /// database is created on it for each run.
    #[arg(
        long,
        global = true,
        env = "BILDAD_TEST_DATABASE_URL",
        default_value = bildad_store_diesel::testing::DEFAULT_URL,
        hide_env_values = true
    )]
    database_url: String,

    /// Keep the database of a passing run (a failing one is always kept).
    #[arg(long, global = true)]
    keep_database: bool,

    /// The seed of the job mix and the kills (default: from the clock).
    #[arg(long, global = true)]
    seed: Option<u64>,

    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    chaos: ChaosArgs,
}

#[derive(Debug, clap::Args)]
struct ChaosArgs {
    /// `bildad serve` processes.
    #[arg(long, default_value_t = 4)]
    nodes: usize,
    /// Jobs enqueued per run.
    #[arg(long, default_value_t = 10_000)]
    jobs: usize,
    /// Mean seconds between SIGKILLs (0 = none).
    #[arg(long, default_value_t = 3.0)]
    kill_every_secs: f64,
    /// SIGKILLs before a run may end.
    #[arg(long, default_value_t = 50)]
    min_kills: usize,
    /// Runs in a row; stops at the first failure.
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Seconds the queue may take to drain after the last kill.
    #[arg(long, default_value_t = 180)]
    drain_timeout_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cut the database away from two nodes under load through a TCP proxy, then
    /// restore it.
    Outage {
        /// Seconds the database stays away.
        #[arg(long, default_value_t = 10)]
        outage_secs: u64,
        /// The nodes' `node_dead_after`, in seconds (at least 2): below `--outage-secs`,
        /// the outage outlasts it and still no live node's run may expire.
        #[arg(long, default_value_t = 60)]
        node_dead_after_secs: u64,
        /// Background jobs.
        #[arg(long, default_value_t = 300)]
        jobs: usize,
    },
    /// A per-second schedule while nodes are SIGKILLed one at a time: one entry per
    /// fire time, no gap.
    Schedule {
        /// `bildad serve` processes (at least 2).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Seconds the schedule runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Mean seconds between SIGKILLs.
        #[arg(long, default_value_t = 2.0)]
        kill_every_secs: f64,
    },
    /// A queue with a global limit while nodes holding its slots are SIGKILLed: never
    /// more than the limit running at once, and the slots of dead nodes come back.
    Limit {
        /// `bildad serve` processes (at least 2).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// The queue's `global_limit`.
        #[arg(long, default_value_t = 3)]
        limit: i32,
        /// Jobs enqueued in the limited queue (sleeps of 0.3 to 1 s).
        #[arg(long, default_value_t = 300)]
        jobs: usize,
        /// Seconds nodes are killed.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Mean seconds between SIGKILLs.
        #[arg(long, default_value_t = 2.0)]
        kill_every_secs: f64,
        /// Seconds the queue may take to drain after the last kill.
        #[arg(long, default_value_t = 180)]
        drain_timeout_secs: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn default_bin() -> Result<PathBuf> {
    let me = std::env::current_exe().context("locating this program")?;
    let bin = me
        .parent()
        .context("no parent directory")?
        .join(format!("bildad{}", std::env::consts::EXE_SUFFIX));
    anyhow::ensure!(
        bin.exists(),
        "{} not found: build it (cargo build --release -p bildad) or pass --bin",
        bin.display()
    );
    Ok(bin)
}

/// Drops the run's database when it passed (unless asked to keep it); says where it is
/// otherwise. Returns `passed`.
async fn conclude(fresh: db::FreshDatabase, passed: bool, keep: bool) -> Result<bool> {
    if passed && !keep {
        fresh.drop_database().await?;
    } else {
        println!("database kept: {}", fresh.name);
    }
    Ok(passed)
}

async fn run(cli: Cli) -> Result<bool> {
    let bin = match cli.bin {
        Some(b) => b,
        None => default_bin()?,
    };
    match cli.command {
        Some(Command::Outage {
            outage_secs,
            node_dead_after_secs,
            jobs,
        }) => {
            let fresh = db::FreshDatabase::create(&cli.database_url, "outage").await?;
            let opts = outage::OutageOptions {
                bin,
                database_url: fresh.url.clone(),
                outage: Duration::from_secs(outage_secs),
                jobs,
                seed: cli.seed.unwrap_or_else(bildad_chaos::seed_from_clock),
            };
            let dead_after = Duration::from_secs(node_dead_after_secs);
            let report = outage::run_with(opts, dead_after).await?;
            println!("{report}");
            conclude(fresh, report.verdict.passed(), cli.keep_database).await
        }
        Some(Command::Schedule {
            nodes,
            seconds,
            kill_every_secs,
        }) => {
            let fresh = db::FreshDatabase::create(&cli.database_url, "schedule").await?;
            let report =
                bildad_chaos::schedule::run(bildad_chaos::schedule::ScheduleChaosOptions {
                    bin,
                    database_url: fresh.url.clone(),
                    nodes,
                    duration: Duration::from_secs(seconds),
                    kill_every: Duration::from_secs_f64(kill_every_secs.max(0.1)),
                    seed: cli.seed.unwrap_or_else(bildad_chaos::seed_from_clock),
                })
                .await?;
            println!("{report}");
            conclude(fresh, report.passed(), cli.keep_database).await
        }
        Some(Command::Limit {
            nodes,
            limit,
            jobs,
            seconds,
            kill_every_secs,
            drain_timeout_secs,
        }) => {
            let fresh = db::FreshDatabase::create(&cli.database_url, "limit").await?;
            let report = bildad_chaos::limit::run(bildad_chaos::limit::LimitChaosOptions {
                bin,
                database_url: fresh.url.clone(),
                nodes,
                limit,
                jobs,
                duration: Duration::from_secs(seconds),
                kill_every: Duration::from_secs_f64(kill_every_secs.max(0.1)),
                drain_timeout: Duration::from_secs(drain_timeout_secs),
                seed: cli.seed.unwrap_or_else(bildad_chaos::seed_from_clock),
            })
            .await?;
            println!("{report}");
            conclude(fresh, report.passed(), cli.keep_database).await
        }
        None => {
            let a = cli.chaos;
            let mut all = true;
            for n in 1..=a.runs {
                let mut opts = ChaosOptions::new(bin.clone());
                opts.server_url = cli.database_url.clone();
                opts.nodes = a.nodes;
                opts.jobs = a.jobs;
                opts.kill_every = Duration::from_secs_f64(a.kill_every_secs.max(0.0));
                opts.min_kills = a.min_kills;
                opts.drain_timeout = Duration::from_secs(a.drain_timeout_secs);
                opts.keep_database = cli.keep_database;
                if let Some(s) = cli.seed {
                    opts.seed = s.wrapping_add(n as u64 - 1);
                }
                let summary = bildad_chaos::chaos(opts).await?;
                println!("run {n}/{}:\n{summary}", a.runs);
                if !summary.passed() {
                    all = false;
                    break;
                }
            }
            Ok(all)
        }
    }
}
