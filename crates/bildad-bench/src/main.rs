//! `bildad-bench`: the benchmark binary behind `cargo xtask bench`.

use anyhow::Result;
use bildad_bench::{BenchOptions, DEFAULT_URL};
use clap::Parser;

/// Enqueue and process no-op jobs on PostgreSQL or SQLite and print `bildad key=value`
/// lines.
#[derive(Debug, Parser)]
#[command(name = "bildad-bench")]
struct Args {
    /// `postgres://…`: an administrative URL; the bench creates (and drops) databases of
    /// its own there. `sqlite://<dir>`: a fresh SQLite file per scenario, in a directory
    /// of its own under `<dir>`, deleted afterwards.
    #[arg(long, default_value = DEFAULT_URL)]
    database_url: String,
    /// Jobs per throughput scenario.
    #[arg(long, default_value_t = 20_000)]
    n: u64,
    /// Nodes processing at once.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// `max_concurrent_jobs` per node.
    #[arg(long, default_value_t = 1000)]
    concurrency: u32,
    /// Entries per claim (`batch_size`) in the throughput scenarios.
    #[arg(long, default_value_t = 500)]
    batch: u32,
    /// Entries per `enqueue_many` call.
    #[arg(long, default_value_t = 5000)]
    enqueue_chunk: usize,
    /// Connections per node's pool [default: 10 on PostgreSQL, 4 on SQLite].
    #[arg(long)]
    pool: Option<usize>,
    /// Pickup latency samples per mode (0 skips).
    #[arg(long, default_value_t = 1000)]
    latency_samples: usize,
    /// Run-history sizes to compare, comma-separated ("none" skips).
    #[arg(long, default_value = "1000,1000000")]
    history: String,
    /// Concurrently sleeping jobs for the memory line (0 skips).
    #[arg(long, default_value_t = 10_000)]
    sleepers: u32,
    /// Count SQL statements per job with pg_stat_statements (PostgreSQL only).
    #[arg(long)]
    count_statements: bool,
    /// Spread the throughput scenario's jobs round-robin over this many queues `q0`…
    #[arg(long, default_value_t = 1)]
    queues: usize,
    /// With `--queues`: the global limit of `q0`.
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
    limited_queue_limit: Option<i32>,
    /// Only the throughput line (and the statement count, if asked).
    #[arg(long)]
    quick: bool,
}

fn main() -> Result<()> {
    let a = Args::parse();
    let history = if a.quick || a.history == "none" {
        Vec::new()
    } else {
        a.history
            .split(',')
            .map(|s| s.trim().replace('_', "").parse::<u64>())
            .collect::<Result<_, _>>()?
    };
    let opts = BenchOptions {
        database_url: a.database_url,
        n: a.n,
        nodes: a.nodes,
        concurrency: a.concurrency,
        batch: a.batch,
        enqueue_chunk: a.enqueue_chunk,
        pool: a.pool,
        latency_samples: if a.quick { 0 } else { a.latency_samples },
        history,
        sleepers: if a.quick { 0 } else { a.sleepers },
        count_statements: a.count_statements,
        queues: bildad_bench::QueueMix {
            count: a.queues,
            limit: a.limited_queue_limit,
        },
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bildad_bench::run(&opts))
}
