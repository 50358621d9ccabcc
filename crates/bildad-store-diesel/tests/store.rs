//! Focused tests of the diesel stores beyond the conformance suite: claim atomicity under
//! many claimers, finalize races, expiry, the run/entry invariant checked in SQL, SQLite
//! writers on several connections, migrations, URL handling, outages, and (ignored by
//! default) the query plans with a million runs of history.

use bildad_conformance::fixtures::template;
use bildad_core::{
    ClaimRequest, EntryFate, ErrorKind, FailureKind, Finalize, JobStore, NewEntry, NodeRef,
    Outcome, RunStatus,
};
use bildad_store_diesel::testing::{TestPg, TestSqlite};
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
async fn pg_eight_claimers_take_2000_entries_each_exactly_once() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("bulk")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "bulk", "e", 2000).await;

    let claimed = claim_all(store.clone(), 8, 37).await;
    assert_each_once(&claimed, 2000);

    let stats = store.stats().await.unwrap();
    assert_eq!((stats.available, stats.running), (0, 2000));
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

/// The queue's template reference is kept by the store, not by a foreign key (migration
/// 000003): enqueues racing the deletion of their template either all lose (the delete
/// went first) or the delete loses with a conflict; no entry ever points at a missing
/// template.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_template_deletion_racing_enqueues_leaves_no_orphan() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    let (mut deleted, mut refused) = (0, 0);
    for round in 0..40 {
        let code = format!("race-{round}");
        template()
            .code(&code)
            .job_type(JOB_TYPE)
            .create(&*store)
            .await;
        let barrier = Arc::new(tokio::sync::Barrier::new(5));
        let enqueuers: Vec<_> = (0..4)
            .map(|k| {
                let (store, barrier, code) = (store.clone(), barrier.clone(), code.clone());
                tokio::spawn(async move {
                    let batch: Vec<NewEntry> = (0..20)
                        .map(|i| {
                            NewEntry::new(code.clone(), json!({}))
                                .identifier(format!("{code}-{k}-{i}"))
                        })
                        .collect();
                    barrier.wait().await;
                    store.enqueue_many(batch).await
                })
            })
            .collect();
        barrier.wait().await;
        let deletion = store.delete_template(&code).await;
        let mut enqueued = 0;
        for e in enqueuers {
            match e.await.unwrap() {
                Ok(entries) => enqueued += entries.len(),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Invalid, "{e}"),
            }
        }
        match deletion {
            Ok(()) => {
                deleted += 1;
                assert_eq!(
                    enqueued, 0,
                    "round {round}: template deleted under {enqueued} entries"
                );
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                refused += 1;
                assert!(
                    enqueued > 0,
                    "round {round}: deletion refused with no entries"
                );
            }
        }
        let mut c = AsyncPgConnection::establish(db.url())
            .await
            .expect("connect");
        let orphans = diesel::sql_query(
            "SELECT count(*) AS n FROM bildad_entries e
             WHERE NOT EXISTS (SELECT 1 FROM bildad_templates t WHERE t.id = e.template_id)",
        )
        .get_result::<Count>(&mut c)
        .await
        .expect("orphan query")
        .n;
        assert_eq!(orphans, 0, "round {round}");
    }
    eprintln!("template deleted first in {deleted} rounds, refused in {refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_two_finalizers_race_exactly_one_wins() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("race")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "race", "r", 60).await;
    let node = NodeRef::new("n");
    let claimed = store.claim(claim_request(&node, 60)).await.unwrap();
    assert_eq!(claimed.len(), 60);

    for c in claimed {
        let run_id = c.run.id;
        let success = Finalize {
            run_id,
            outcome: Outcome::succeeded(Some(json!({"ok": true}))),
            backoff: bildad_core::Backoff::immediate(),
        };
        let timeout = Finalize {
            run_id,
            outcome: Outcome::standard(FailureKind::Timeout),
            backoff: bildad_core::Backoff::immediate(),
        };
        let (a, b) = tokio::join!(store.finalize(success), store.finalize(timeout));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.won ^ b.won, "exactly one finalize wins: {a:?} {b:?}");
        let loser = if a.won { &b } else { &a };
        assert_eq!(loser.entry, EntryFate::Untouched);

        let run = store.get_run(run_id).await.unwrap();
        assert_eq!(run.status, RunStatus::Done);
        let entry = store.get_entry(&c.run.job_run_identifier).await;
        if a.won {
            assert_eq!(a.entry, EntryFate::Deleted);
            assert_eq!(run.result, Some(bildad_core::RunResult::Succeeded));
            assert_eq!(entry.unwrap_err().kind(), ErrorKind::NotFound);
        } else {
            assert!(matches!(b.entry, EntryFate::Requeued { .. }), "{b:?}");
            assert_eq!(run.reason.as_deref(), Some("Timeout"));
            let e = entry.unwrap();
            assert_eq!(e.status, bildad_core::EntryStatus::Available);
            assert_eq!(e.current_run_id, None);
        }
    }
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_finalize_many_batches_mixed_outcomes() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    template()
        .code("batch")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    enqueue_n(&*store, "batch", "b", 300).await;
    let node = NodeRef::new("n");
    let claimed = store.claim(claim_request(&node, 300)).await.unwrap();
    let mut reqs: Vec<Finalize> = claimed
        .iter()
        .enumerate()
        .map(|(i, c)| Finalize {
            run_id: c.run.id,
            outcome: if i % 2 == 0 {
                Outcome::succeeded(None)
            } else {
                Outcome::failed(FailureKind::Error, "boom")
            },
            backoff: bildad_core::Backoff::from_secs(10),
        })
        .collect();
    // A repeated run id loses, as if the finalizes ran one after the other.
    reqs.push(reqs[0].clone());
    let out = store.finalize_many(reqs).await.unwrap();
    assert_eq!(out.len(), 301);
    let now = store.now().await.unwrap();
    for (i, r) in out.iter().take(300).enumerate() {
        assert!(r.won);
        match (i % 2, &r.entry) {
            (0, EntryFate::Deleted) => {}
            (1, EntryFate::Requeued { run_at }) => {
                let d = (*run_at - now).num_milliseconds();
                assert!(
                    (8_000..=11_000).contains(&d),
                    "backoff ~10 s ±10 %, got {d} ms"
                );
            }
            other => panic!("entry {i}: {other:?}"),
        }
    }
    assert!(!out[300].won);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.running, stats.scheduled), (0, 150));
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

/// Waits (polling the database clock, which is what expiry reads) until `t` has passed.
async fn until_db_clock_passes(store: &dyn JobStore, t: bildad_core::Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.now().await.unwrap() <= t {
        assert!(Instant::now() < deadline, "database clock never passed {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn expiry_by_time_and_heartbeat(store: Arc<dyn JobStore>) {
    template()
        .code("exp")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    let alive = NodeRef::new("alive");
    let dead = NodeRef::new("dead");
    store.heartbeat(&dead).await.unwrap();
    store
        .enqueue_many(vec![
            NewEntry::new("exp", json!({}))
                .identifier("by-time")
                .timeout_seconds(1),
            NewEntry::new("exp", json!({})).identifier("by-heartbeat"),
        ])
        .await
        .unwrap();
    let mut req = claim_request(&alive, 1);
    req.expiry_grace = Duration::ZERO;
    req.only_identifier = Some("by-time".into());
    let by_time = store.claim(req).await.unwrap().remove(0).run;
    let mut req = claim_request(&dead, 1);
    req.only_identifier = Some("by-heartbeat".into());
    let by_heartbeat = store.claim(req).await.unwrap().remove(0).run;
    store.heartbeat(&alive).await.unwrap();

    // Nothing is expired yet (a generous dead-after keeps the heartbeat fresh).
    assert!(
        store
            .runs_to_expire(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .runs_to_kill(&alive.instance_id)
            .await
            .unwrap()
            .is_empty()
    );

    until_db_clock_passes(&*store, by_time.expires_at).await;
    let ids = |v: Vec<bildad_core::RunRef>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .runs_to_expire(Duration::from_secs(3600))
            .await
            .unwrap()),
        vec![by_time.id]
    );
    // Killer: only the owning node sees its timed-out run.
    assert_eq!(
        ids(store.runs_to_kill(&alive.instance_id).await.unwrap()),
        vec![by_time.id]
    );
    assert!(
        store
            .runs_to_kill(&dead.instance_id)
            .await
            .unwrap()
            .is_empty()
    );

    // The dead node's heartbeat is older than a tiny dead-after; the alive node just beat.
    let last = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.instance_id == dead.instance_id)
        .unwrap()
        .last_heartbeat_at;
    until_db_clock_passes(&*store, last + chrono::Duration::milliseconds(50)).await;
    store.heartbeat(&alive).await.unwrap();
    let mut expired = ids(store
        .runs_to_expire(Duration::from_millis(50))
        .await
        .unwrap());
    expired.sort();
    assert_eq!(expired, vec![by_time.id, by_heartbeat.id]);

    let fin = store
        .finalize(Finalize {
            run_id: by_heartbeat.id,
            outcome: Outcome::standard(FailureKind::Expired),
            backoff: bildad_core::Backoff::immediate(),
        })
        .await
        .unwrap();
    assert!(fin.won);
    assert_eq!(
        ids(store
            .runs_to_expire(Duration::from_millis(50))
            .await
            .unwrap()),
        vec![by_time.id]
    );
    assert_eq!(
        store
            .runs_finalized(&[by_time.id, by_heartbeat.id])
            .await
            .unwrap(),
        vec![by_heartbeat.id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_expiry_by_time_and_by_stale_heartbeat() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    expiry_by_time_and_heartbeat(db.store()).await;
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_writers_on_several_connections_serialise() {
    let db = TestSqlite::fresh().await;
    let store = db.store();
    template()
        .code("bulk")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    // Enqueuers and claimers at once, each on its own pooled connection.
    let enqueuers: Vec<_> = (0..3)
        .map(|k| {
            let store = store.clone();
            tokio::spawn(async move { enqueue_n(&*store, "bulk", &format!("w{k}"), 200).await })
        })
        .collect();
    let early = tokio::spawn(claim_all(store.clone(), 3, 7));
    for e in enqueuers {
        e.await.expect("enqueuer");
    }
    let mut claimed = early.await.expect("early claimers");
    claimed.extend(claim_all(store.clone(), 6, 11).await);
    assert_each_once(&claimed, 600);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.available, stats.running), (0, 600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_expiry_by_time_and_by_stale_heartbeat() {
    let db = TestSqlite::fresh().await;
    expiry_by_time_and_heartbeat(db.store()).await;
}

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
