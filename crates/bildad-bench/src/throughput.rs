//! The throughput scenario: enqueue `n` no-op jobs with `enqueue_many`, then process
//! them on `nodes` nodes, spread over the queues of a [`QueueMix`].

use crate::queues::QueueMix;
use crate::{BenchDb, BenchOptions, StatementCounter, create_template, node_config, noop_registry};
use anyhow::{Result, bail};
use bildad_runtime::NodeRuntime;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// One throughput measurement.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// Jobs enqueued per second (`enqueue_many` in chunks).
    pub enqueue_per_s: f64,
    /// Jobs claimed, run and finalized per second.
    pub process_per_s: f64,
    /// Statements executed in the bench database while enqueuing, if counted.
    pub enqueue_statements: Option<u64>,
    /// Statements executed in the bench database while processing, if counted.
    pub process_statements: Option<u64>,
    /// With a limited queue: the rates of that queue and of the others.
    pub queue_rates: Option<crate::queues::QueueRates>,
}

/// Enqueues `opts.n` no-op jobs over the queues of `mix`, then processes them on
/// `opts.nodes` nodes.
pub(crate) async fn throughput(
    db: &BenchDb,
    opts: &BenchOptions,
    mix: &QueueMix,
    stats: Option<&StatementCounter>,
) -> Result<Throughput> {
    let store = db.connect(opts.pool_size()).await?;
    create_template(&*store, "bench.noop").await?;
    mix.apply(&*store).await?;
    db.checkpoint().await;

    // The chunks are built before the clock starts, and handed over whole, as an
    // application hands over a batch it made (no copy inside the timing).
    let mut entries = (0..opts.n).map(|i| mix.entry("bench.noop", i));
    let chunks: Vec<Vec<_>> = std::iter::from_fn(|| {
        let c: Vec<_> = entries.by_ref().take(opts.enqueue_chunk.max(1)).collect();
        (!c.is_empty()).then_some(c)
    })
    .collect();
    if let Some(s) = stats {
        s.reset().await?;
    }
    let started = Instant::now();
    for c in chunks {
        store.enqueue_many(c).await?;
    }
    let enqueue = started.elapsed();
    let enqueue_statements = match stats {
        Some(s) => s.read(&db.name).await?,
        None => None,
    };

    let executed = Arc::new(AtomicU64::new(0));
    let mut nodes = Vec::with_capacity(opts.nodes);
    for k in 0..opts.nodes {
        // Each node has its own pool, as separate processes would.
        let store = if k == 0 {
            store.clone()
        } else {
            db.connect(opts.pool_size()).await?
        };
        let node = NodeRuntime::start(
            store,
            noop_registry(executed.clone()),
            node_config(&format!("bench-{k}"), opts.concurrency, opts.batch),
        )
        .await?;
        nodes.push(node);
    }
    if let Some(s) = stats {
        s.reset().await?;
    }
    let started = Instant::now();
    let drivers: Vec<_> = nodes
        .iter()
        .map(|node| {
            let node = node.clone();
            let executed = executed.clone();
            let n = opts.n;
            tokio::spawn(async move { drive(&node, &executed, n).await })
        })
        .collect();
    for d in drivers {
        d.await??;
    }
    let process = started.elapsed();
    let process_statements = match stats {
        Some(s) => s.read(&db.name).await?,
        None => None,
    };
    for node in &nodes {
        node.shutdown(Duration::from_secs(5)).await;
    }
    let stats_now = store.stats().await?;
    // History rows, if any, are SUCCEEDED too.
    if stats_now.succeeded < opts.n
        || stats_now.failed != 0
        || stats_now.available + stats_now.scheduled + stats_now.running != 0
    {
        bail!(
            "expected {} more succeeded runs and an empty queue, found {stats_now:?}",
            opts.n
        );
    }
    Ok(Throughput {
        enqueue_per_s: opts.n as f64 / enqueue.as_secs_f64(),
        process_per_s: opts.n as f64 / process.as_secs_f64(),
        enqueue_statements,
        process_statements,
        queue_rates: match mix.limit {
            Some(_) if mix.spread() => Some(crate::queues::rates(db).await?),
            _ => None,
        },
    })
}

/// Keeps `node`'s engine claiming until `n` jobs ran and every local run is finalized.
async fn drive(node: &NodeRuntime, executed: &AtomicU64, n: u64) -> Result<()> {
    let engine = node.engine();
    loop {
        engine.run_until_idle().await?;
        if executed.load(Ordering::Relaxed) >= n {
            break;
        }
        // Another node holds the rest, or a claim raced: look again shortly.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // A slot frees only after its run's finalize came back.
    while node.executor().running_count() > 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    Ok(())
}
