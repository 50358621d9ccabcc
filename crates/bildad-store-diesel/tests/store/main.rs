//! Focused tests of the diesel stores beyond the conformance suite: the helpers they
//! share and the run/entry invariant checked in SQL; migrations, URL handling, outages and
//! (ignored by default) the query plans with a million runs of history here; claims and
//! finalizes under concurrency in `races`, expiry in `expiry`.

mod expiry;
mod races;

use bildad_conformance::fixtures::template;
use bildad_core::{ClaimRequest, ErrorKind, JobStore, NewEntry, NodeRef};
use bildad_store_diesel::testing::TestPg;
use bildad_store_diesel::{PgStore, PoolOptions, SqliteStore};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOB_TYPE: &str = "test.echo";

fn claim_request(node: &NodeRef, limit: u32) -> ClaimRequest {
    ClaimRequest {
        node: node.clone(),
        job_types: vec![JOB_TYPE.to_string()],
        limit,
        expiry_grace: Duration::from_secs(600),
        only_identifier: None,
        queues: None,
        queue_caps: Default::default(),
    }
}

async fn enqueue_n(store: &dyn JobStore, code: &str, prefix: &str, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let batch = chunk
            .iter()
            .map(|i| NewEntry::new(code, json!({"i": i})).identifier(format!("{prefix}-{i}")))
            .collect();
        store.enqueue_many(batch).await.expect("enqueue_many");
    }
}

/// Runs `claimers` tasks that claim until the queue is empty; returns every identifier
/// claimed, with repeats.
async fn claim_all(store: Arc<dyn JobStore>, claimers: usize, limit: u32) -> Vec<String> {
    let mut tasks = Vec::new();
    for k in 0..claimers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let node = NodeRef::new(format!("claimer-{k}"));
            let mut mine = Vec::new();
            loop {
                let got = store
                    .claim(claim_request(&node, limit))
                    .await
                    .expect("claim");
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.run.job_run_identifier));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("claimer task"));
    }
    all
}

fn assert_each_once(claimed: &[String], n: usize) {
    let unique: HashSet<_> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "an entry was claimed twice");
    assert_eq!(claimed.len(), n, "some entries were not claimed");
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The move model's invariant (docs/STORAGE.md): a running entry is its RUNNING run and
/// nothing else — no queue row is RUNNING, no waiting entry shares its id or identifier
/// with a RUNNING run, and an identifier has at most one RUNNING run.
const BROKEN_INVARIANT: &str = "
SELECT (SELECT count(*) FROM bildad_queue e
        WHERE e.status <> 'AVAILABLE' OR e.current_run_id IS NOT NULL)
     + (SELECT count(*) FROM bildad_queue e JOIN bildad_runs r
            ON (r.entry_id = e.id OR r.job_run_identifier = e.job_run_identifier)
           AND r.status = 'RUNNING')
     + (SELECT count(*) FROM (SELECT job_run_identifier FROM bildad_runs
            WHERE status = 'RUNNING' GROUP BY 1 HAVING count(*) > 1) x)
     AS n";

async fn pg_broken_invariants(url: &str) -> i64 {
    let mut c = AsyncPgConnection::establish(url).await.expect("connect");
    diesel::sql_query(BROKEN_INVARIANT)
        .get_result::<Count>(&mut c)
        .await
        .expect("invariant query")
        .n
}

// --- PostgreSQL -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_migrations_are_idempotent_and_may_run_at_once() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let a = PgStore::connect(db.url()).await.unwrap();
    let b = PgStore::connect(db.url()).await.unwrap();
    let (ra, rb) = tokio::join!(a.migrate(), b.migrate());
    ra.unwrap();
    rb.unwrap();
    bildad_store_diesel::migrate(db.url()).await.unwrap();
    let store = bildad_store_diesel::connect(db.url()).await.unwrap();
    store.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_unreachable_server_is_unavailable_quickly() {
    let started = Instant::now();
    let err = PgStore::connect_with(
        "postgres://postgres@127.0.0.1:1/nothing",
        PoolOptions {
            max_size: 2,
            wait_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(started.elapsed() < Duration::from_secs(6));
    let err = bildad_store_diesel::connect("postgres://postgres@127.0.0.1:1/nothing")
        .await
        .err()
        .expect("no server");
    assert!(err.is_transient(), "{err}");
}

#[tokio::test]
async fn unknown_scheme_is_invalid() {
    let err = bildad_store_diesel::connect("oracle://x/y")
        .await
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("sqlite://"), "{err}");
    assert!(err.to_string().contains("mysql://"), "{err}");
}

/// Fills a database with a million runs of history and a realistic queue, then prints
/// (and checks) the plans of the hot statements. The plans in docs/STORAGE.md come from
/// this test. Ignored by default: it takes about a minute.
///
/// `cargo test -p bildad-store-diesel --test store -- --ignored --nocapture explain`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "inserts a million rows; run by hand to refresh docs/STORAGE.md"]
async fn pg_explain_hot_paths_with_a_million_runs() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("hist")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    let mut c = AsyncPgConnection::establish(db.url()).await.unwrap();
    // 1,000,000 finished runs of history, 100 distinct nodes.
    diesel::sql_query(
        "INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry,
            process_name, node, node_name, status, result, context, started_at, timeout_at,
            expires_at, ended_at)
         SELECT g, 'hist-' || g, 'hist', 'test.echo', 0, 'old-' || (g % 100) || '/hist-' || g || '/0',
                'old-' || (g % 100), 'old', 'DONE', 'SUCCEEDED', '{}',
                now() - g * interval '1 second', now(), now(), now() - g * interval '1 second'
         FROM generate_series(1, 1000000) g",
    )
    .execute(&mut c)
    .await
    .unwrap();
    // 20,000 entries waiting, then 2,000 of them running on four nodes.
    enqueue_n(&*store, "hist", "q", 20_000).await;
    let nodes: Vec<NodeRef> = (0..4).map(|i| NodeRef::new(format!("node-{i}"))).collect();
    for n in &nodes {
        store.heartbeat(n).await.unwrap();
        store.claim(claim_request(n, 500)).await.unwrap();
    }
    diesel::sql_query("VACUUM ANALYZE")
        .execute(&mut c)
        .await
        .unwrap();

    let plans = db
        .explain_hot_paths(vec![JOB_TYPE.into()], &nodes[0].instance_id)
        .await
        .unwrap();
    for (title, plan) in &plans {
        println!("### {title}\n\n```\n{plan}\n```\n");
    }
    let plan = |t: &str| &plans.iter().find(|(x, _)| x.starts_with(t)).unwrap().1;
    assert!(
        plan("claim").contains("bildad_queue_claim"),
        "{}",
        plan("claim")
    );
    assert!(
        plan("kill").contains("bildad_runs_running"),
        "{}",
        plan("kill")
    );
    assert!(
        plan("expiry").contains("bildad_runs_expire"),
        "{}",
        plan("expiry")
    );
    assert!(
        plan("finalize").contains("bildad_runs_pkey"),
        "{}",
        plan("finalize")
    );
    for (title, plan) in &plans {
        assert!(!plan.contains("Seq Scan on bildad_runs"), "{title}: {plan}");
    }
}

// --- SQLite ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_connect_creates_the_file_and_migrates_once() {
    let dir = std::env::temp_dir().join(format!("bildad-connect-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = bildad_store_diesel::connect(&url).await.unwrap();
    assert!(path.exists());
    template()
        .code("kept")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    drop(store);
    bildad_store_diesel::migrate(&url).await.unwrap();
    // A plain path works too, and the data survived the second migrate.
    let again = SqliteStore::connect(path.to_str().unwrap()).await.unwrap();
    again.migrate().await.unwrap();
    assert_eq!(again.get_template("kept").await.unwrap().code, "kept");
    again.close();
    std::fs::remove_dir_all(&dir).unwrap();
}

fn uuid_like() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}
