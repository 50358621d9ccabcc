//! Short forms of the fault runs of `bildad-chaos` (the full ones are `cargo xtask chaos`
//! and `bildad-chaos outage`), on the binary cargo built for this test: nodes SIGKILLed
//! under load, the database cut away by a proxy for 10 s, a schedule and a limited queue
//! while nodes are killed.

use bildad_chaos::{ChaosOptions, outage};
use bildad_store_diesel::testing::{TestMysql, TestPg};
use std::path::PathBuf;
use std::time::Duration;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bildad"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_under_load_lose_nothing_and_run_nothing_twice() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    nodes_killed_under_load(pg.url()).await;
}

/// The same on MariaDB: the verdict reads `DATETIME(6)` columns with its own SQL.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_killed_under_load_lose_nothing_and_run_nothing_twice_on_mysql() {
    let Some(db) = TestMysql::fresh().await else {
        return;
    };
    nodes_killed_under_load(db.url()).await;
}

async fn nodes_killed_under_load(url: &str) {
    let mut opts = ChaosOptions::new(bin());
    opts.database_url = Some(url.to_owned());
    opts.nodes = 3;
    opts.jobs = 400;
    opts.kill_every = Duration::from_secs(2);
    opts.min_kills = 5;
    opts.drain_timeout = Duration::from_secs(60);
    opts.verbose = false;
    let summary = bildad_chaos::chaos(opts).await.expect("chaos run");
    eprintln!("{summary}");
    assert!(summary.passed(), "{summary}");
    assert!(summary.kills >= 5);
    assert!(summary.verdict.expired > 0 || summary.verdict.killed_instances == summary.kills);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn database_outage_answers_503_then_recovers_and_records_late_outcomes() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    database_outage(pg.url()).await;
}

/// The same on MariaDB: a connection lost in the outage is not handed out again, and
/// the driver's lost-connection errors are 503s from the first request on. Ignored in CI:
/// on the 2-core machine a debug build takes 60-90 s here and twice in four runs its
/// background load outlasted the 30 s the spanning jobs get to start; run it with
/// `cargo test -p bildad --test it -- --ignored database_outage`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "60-90 s on MariaDB in a debug build; run with --ignored"]
async fn database_outage_answers_503_then_recovers_and_records_late_outcomes_on_mysql() {
    let Some(db) = TestMysql::fresh().await else {
        return;
    };
    let report = database_outage(db.url()).await;
    let others: Vec<_> = report
        .statuses_during
        .keys()
        .filter(|s| **s != 503)
        .collect();
    assert!(others.is_empty(), "only 503s while away: {report}");
}

async fn database_outage(url: &str) -> outage::OutageReport {
    let report = outage::run(outage::OutageOptions {
        bin: bin(),
        database_url: url.to_owned(),
        outage: Duration::from_secs(10),
        jobs: 150,
        seed: bildad_chaos::seed_from_clock(),
    })
    .await
    .expect("outage run");
    eprintln!("{report}");
    assert!(report.verdict.passed(), "{report}");
    assert_eq!(report.finished_while_away, 10);
    assert!(report.statuses_during.get(&503).copied().unwrap_or(0) > 0);
    report
}

/// A per-second schedule while nodes are SIGKILLed and restarted one at a time: one
/// entry per fire time, no gap (at least one node is always up).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedule_fires_once_per_second_while_nodes_are_killed() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let report = bildad_chaos::schedule::run(bildad_chaos::schedule::ScheduleChaosOptions {
        bin: bin(),
        database_url: pg.url().to_owned(),
        nodes: 3,
        duration: Duration::from_secs(12),
        kill_every: Duration::from_secs(2),
        seed: bildad_chaos::seed_from_clock(),
    })
    .await
    .expect("schedule chaos run");
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.kills >= 3 && report.fires >= 10, "{report}");
}

/// A queue with a global limit of 3 while nodes holding its slots are SIGKILLed: never
/// more than 3 of its runs at once (a dead node's runs count until they expire), every
/// job finished (no leaked slot), nothing lost or run twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn global_limit_holds_and_slots_come_back_while_nodes_are_killed() {
    let Some(pg) = TestPg::fresh().await else {
        return;
    };
    let report = bildad_chaos::limit::run(bildad_chaos::limit::LimitChaosOptions {
        bin: bin(),
        database_url: pg.url().to_owned(),
        nodes: 3,
        limit: 3,
        jobs: 40,
        duration: Duration::from_secs(10),
        kill_every: Duration::from_secs(2),
        drain_timeout: Duration::from_secs(60),
        seed: bildad_chaos::seed_from_clock(),
    })
    .await
    .expect("limit chaos run");
    eprintln!("{report}");
    assert!(report.passed(), "{report}");
    assert!(report.kills >= 3 && report.verdict.expired > 0, "{report}");
    assert_eq!(report.peak, 3, "{report}");
}
