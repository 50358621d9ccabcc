//! The move model (migration 000005, docs/STORAGE.md): the upgrade of a live database
//! from the released migrations 000001–000004 with jobs running at that moment, on
//! PostgreSQL and SQLite; and the race of an enqueue against a claim of the same
//! identifier on PostgreSQL, where the queue's unique index no longer covers a running job.

use bildad_core::{
    Backoff, ClaimRequest, EntryFate, EntryStatus, ErrorKind, FailureKind, Finalize, JobStore,
    NewEntry, NodeRef, Outcome, PageRequest, RunStatus,
};
use bildad_store_diesel::testing::TestPg;
use bildad_store_diesel::{PgStore, SqliteStore};
use diesel::QueryableByName;
use diesel::sql_types::BigInt;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const JOB_TYPE: &str = "test.echo";

/// The released migrations before the move model, as (version, directory).
const RELEASED: [(&str, &str); 4] = [
    ("20261127000001", "2026-11-27-000001_create_bildad"),
    (
        "20261127000002",
        "2026-11-27-000002_runs_process_name_not_unique",
    ),
    (
        "20261127000003",
        "2026-11-27-000003_queue_template_reference_checked_by_store",
    ),
    ("20261202000004", "2026-12-02-000004_queue_uncounted_runs"),
];

/// The released migrations of `backend` (`postgres` or `sqlite`), then their versions in
/// diesel's table, as a store at 000004 would have left them.
fn released_schema(backend: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let mut sql = String::new();
    for (_, dir) in RELEASED {
        let up = root.join(backend).join(dir).join("up.sql");
        sql += &std::fs::read_to_string(&up).unwrap_or_else(|e| panic!("{}: {e}", up.display()));
        sql += ";\n";
    }
    sql += "CREATE TABLE __diesel_schema_migrations (
        version VARCHAR(50) PRIMARY KEY NOT NULL,
        run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);\n";
    for (version, _) in RELEASED {
        sql += &format!("INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}');\n");
    }
    sql
}

/// Six entries in the old model, written with the old statements: `up-1`…`up-5` running
/// (claimed by the claim of 000001–000004: a run inserted, the entry marked RUNNING with
/// a copy of the run's lease), `up-6` waiting. `up-4`'s run is past its timeout on
/// `old-node`; `up-5` runs on `gone-node`, past its expiry. `{now}` is the backend's
/// clock and `{s}` one second in its unit.
const OLD_MODEL_JOBS: &str = "
INSERT INTO bildad_templates (code, name, job_type, context_schema, inserted_at, updated_at)
VALUES ('old', 'old', 'test.echo', '{}', {now}, {now});
INSERT INTO bildad_queue (job_run_identifier, template_id, priority, timeout_seconds,
    max_retries, context, run_at, inserted_at, updated_at)
SELECT 'up-' || g.n, (SELECT id FROM bildad_templates), 5, 60, 3, '{\"n\": 1}', {now},
       {now} - (10 - g.n) * {s}, {now}
FROM (SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4
      UNION ALL SELECT 5 UNION ALL SELECT 6) g;
INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry,
    process_name, node, node_name, status, context, started_at, timeout_at, expires_at)
SELECT e.id, e.job_run_identifier, 'old', 'test.echo', e.attempts,
       'old-node/' || e.job_run_identifier || '/0',
       CASE WHEN e.job_run_identifier = 'up-5' THEN 'gone-node' ELSE 'old-node' END, 'old',
       'RUNNING', e.context, {now},
       CASE WHEN e.job_run_identifier IN ('up-4', 'up-5') THEN {now} - {s}
            ELSE {now} + 60 * {s} END,
       CASE WHEN e.job_run_identifier = 'up-5' THEN {now} - {s} ELSE {now} + 660 * {s} END
FROM bildad_queue e WHERE e.job_run_identifier <> 'up-6';
UPDATE bildad_queue
SET status = 'RUNNING', attempts = attempts + 1, updated_at = {now},
    current_run_id = (SELECT r.id FROM bildad_runs r WHERE r.entry_id = bildad_queue.id),
    node = (SELECT r.node FROM bildad_runs r WHERE r.entry_id = bildad_queue.id),
    timeout_at = (SELECT r.timeout_at FROM bildad_runs r WHERE r.entry_id = bildad_queue.id),
    expires_at = (SELECT r.expires_at FROM bildad_runs r WHERE r.entry_id = bildad_queue.id)
WHERE job_run_identifier <> 'up-6';
";

fn old_model_jobs(now: &str, second: &str) -> String {
    OLD_MODEL_JOBS.replace("{now}", now).replace("{s}", second)
}

/// A claim of up to `limit` entries (or of `only` alone) by a new node `node`.
fn claim_request(node: &str, limit: u32, only: Option<String>) -> ClaimRequest {
    ClaimRequest {
        node: NodeRef::new(node),
        job_types: vec![JOB_TYPE.into()],
        limit,
        expiry_grace: Duration::from_secs(600),
        only_identifier: only,
        queues: None,
        queue_caps: Default::default(),
    }
}

fn finalize(run_id: i64, outcome: Outcome) -> Finalize {
    Finalize {
        run_id,
        outcome,
        backoff: Backoff::immediate(),
    }
}

/// After the upgrade: every job that ran at the upgrade shows as before and ends through
/// the new store by each path (success, retry, stop, the killer, the engine's expiry).
async fn check_upgraded(store: Arc<dyn JobStore>) {
    let page = PageRequest::default();
    let all = store.list_entries(None, page).await.unwrap();
    let shown: Vec<(&str, EntryStatus)> = all
        .items
        .iter()
        .map(|e| (e.job_run_identifier.as_str(), e.status))
        .collect();
    use EntryStatus::{Available, Running};
    assert_eq!(
        shown,
        [
            ("up-1", Running),
            ("up-2", Running),
            ("up-3", Running),
            ("up-4", Running),
            ("up-5", Running),
            ("up-6", Available)
        ]
    );
    let before: Vec<_> = all.items.clone();
    for e in &before[..5] {
        assert_eq!(e.attempts, 1, "{e:?}");
        let run = store.get_run(e.current_run_id.unwrap()).await.unwrap();
        assert_eq!(run.status, RunStatus::Running);
        assert_eq!(run.job_run_identifier, e.job_run_identifier);
        assert_eq!(
            store.entry_position(&e.job_run_identifier).await.unwrap(),
            None
        );
    }
    assert_eq!(store.entry_position("up-6").await.unwrap(), Some(1));
    assert_eq!(store.stats().await.unwrap().running, 5);
    // A running job's identifier is still taken.
    let err = store
        .enqueue(NewEntry::new("old", json!({})).identifier("up-1"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");

    let run_of = |i: usize| before[i].current_run_id.unwrap();
    // Success: the entry is gone with its run.
    let done = store
        .finalize(finalize(run_of(0), Outcome::succeeded(None)))
        .await
        .unwrap();
    assert!(done.won);
    assert_eq!(done.entry, EntryFate::Deleted);
    assert_eq!(
        store.get_entry("up-1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A failure with retries left: the same entry is back in line.
    let failed = store
        .finalize(finalize(
            run_of(1),
            Outcome::failed(FailureKind::Error, "boom"),
        ))
        .await
        .unwrap();
    assert!(
        matches!(failed.entry, EntryFate::Requeued { .. }),
        "{failed:?}"
    );
    // Stop: the same entry is back in line.
    store.stop_entry("up-3").await.unwrap();
    // The killer's lookup finds up-4 on its node, the engine's up-5 of a dead node.
    let kill = store.runs_to_kill("old-node").await.unwrap();
    assert_eq!(
        kill.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [run_of(3)]
    );
    let killed = store
        .finalize(finalize(run_of(3), Outcome::standard(FailureKind::Timeout)))
        .await
        .unwrap();
    assert!(matches!(killed.entry, EntryFate::Requeued { .. }));
    let expire = store
        .runs_to_expire(Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(
        expire.iter().map(|r| r.run_id).collect::<Vec<_>>(),
        [run_of(4)]
    );
    store
        .finalize(finalize(run_of(4), Outcome::standard(FailureKind::Expired)))
        .await
        .unwrap();
    for old in &before[1..5] {
        let now = store.get_entry(&old.job_run_identifier).await.unwrap();
        assert_eq!(now.status, Available, "{now:?}");
        assert_eq!(now.id, old.id, "same entry id");
        assert_eq!(now.inserted_at, old.inserted_at, "same place in line");
        assert_eq!(now.context, old.context);
        assert_eq!(now.attempts, 1);
        assert_eq!(now.current_run_id, None);
    }
    assert_eq!(store.stats().await.unwrap().running, 0);
    // Every one of them runs again, in its old order.
    let claimed = store
        .claim(claim_request("new-node", 10, None))
        .await
        .unwrap();
    let order: Vec<_> = claimed
        .iter()
        .map(|c| (c.run.job_run_identifier.as_str(), c.run.retry))
        .collect();
    assert_eq!(
        order,
        [
            ("up-2", 1),
            ("up-3", 1),
            ("up-4", 1),
            ("up-5", 1),
            ("up-6", 0)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_upgrade_with_running_jobs() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let mut c = AsyncPgConnection::establish(db.url()).await.unwrap();
    c.batch_execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        .await
        .unwrap();
    c.batch_execute(&released_schema("postgres")).await.unwrap();
    c.batch_execute(&old_model_jobs("now()", "interval '1 second'"))
        .await
        .unwrap();
    let store = PgStore::connect(db.url()).await.unwrap();
    store.migrate().await.unwrap();
    check_upgraded(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_upgrade_with_running_jobs() {
    let dir = std::env::temp_dir().join(format!("bildad-upgrade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{}.db", uuid_like()));
    {
        use diesel::Connection;
        use diesel::connection::SimpleConnection;
        let mut c = diesel::SqliteConnection::establish(&file.display().to_string()).unwrap();
        c.batch_execute(&released_schema("sqlite")).unwrap();
        let now = "(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)";
        c.batch_execute(&old_model_jobs(now, "1000000")).unwrap();
    }
    let url = format!("sqlite://{}", file.display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    check_upgraded(Arc::new(store.clone())).await;
    store.close();
    let _ = std::fs::remove_file(&file);
}

/// A file name no other test run uses.
fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("upgrade-{t}")
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The race the queue's unique index no longer closes: an enqueue of `X` passes its
/// identifier check, then (before its insert) another enqueue of `X` commits and a claim
/// moves that entry into its run; the first insert finds no entry `X` in the queue. The
/// test makes that interleaving certain: it holds a lock on the first enqueue's template,
/// so that enqueue waits inside its INSERT (after its check) while the other enqueue and
/// the claim run. The first enqueue must still be a conflict, and `X` must have one job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_enqueue_racing_a_claim_of_the_same_identifier_conflicts() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    for code in ["held", "free"] {
        bildad_conformance::fixtures::template()
            .code(code)
            .job_type(JOB_TYPE)
            .create(&*store)
            .await;
    }
    let mut admin = AsyncPgConnection::establish(db.url()).await.unwrap();
    for round in 0..5 {
        let x = format!("x-{round}");
        let mut lock = AsyncPgConnection::establish(db.url()).await.unwrap();
        lock.batch_execute("BEGIN; SELECT 1 FROM bildad_templates WHERE code = 'held' FOR UPDATE")
            .await
            .unwrap();
        let waiting = {
            let store = store.clone();
            let x = x.clone();
            tokio::spawn(async move {
                store
                    .enqueue(NewEntry::new("held", json!({})).identifier(x))
                    .await
            })
        };
        // Wait until that enqueue waits on the lock (it has passed its check).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let n = diesel::sql_query(
                "SELECT count(*) AS n FROM pg_stat_activity
                 WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO bildad_queue%'",
            )
            .get_result::<Count>(&mut admin)
            .await
            .unwrap()
            .n;
            if n > 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the enqueue never waited on the lock"
            );
            tokio::task::yield_now().await;
        }
        store
            .enqueue(NewEntry::new("free", json!({})).identifier(x.clone()))
            .await
            .unwrap();
        let claimed = store
            .claim(claim_request("n", 1, Some(x.clone())))
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        lock.batch_execute("ROLLBACK").await.unwrap();
        let late = waiting.await.unwrap();
        let err = late.expect_err("an enqueue of a running identifier must conflict");
        assert_eq!(err.kind(), ErrorKind::Conflict, "round {round}: {err}");
        let e = store.get_entry(&x).await.unwrap();
        assert_eq!(e.status, EntryStatus::Running);
        assert_eq!(e.template, "free");
        let in_queue = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM bildad_queue WHERE job_run_identifier = '{x}'"
        ))
        .get_result::<Count>(&mut admin)
        .await
        .unwrap()
        .n;
        assert_eq!(in_queue, 0, "round {round}: a second job of {x} is waiting");
    }
}

/// The engine's expiry lookup and the finalize on PostgreSQL do not grow with the runs
/// finalized since the last VACUUM. A finalize leaves the `RUNNING` version's entry in the partial
/// indexes on running runs until VACUUM removes it; an expiry that read the whole of
/// `bildad_runs_running` (a bitmap scan, which never marks entries dead) visited the
/// heap page of every one of them: 400 ms an expiry check after 400k jobs in the bench
/// (docs/PERFORMANCE.md, round 6). `bildad_runs_expire` makes it a range scan that stops
/// at the first run not yet expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_expiry_and_finalize_skip_finalized_runs() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.store();
    bildad_conformance::fixtures::template()
        .code("done")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    let mut admin = AsyncPgConnection::establish(db.url()).await.unwrap();
    // No VACUUM during the test: the dead index entries stay, as between two autovacuums.
    admin
        .batch_execute("ALTER TABLE bildad_runs SET (autovacuum_enabled = false)")
        .await
        .unwrap();
    let entries: Vec<NewEntry> = (0..2000)
        .map(|i| NewEntry::new("done", json!({"i": i, "pad": "x".repeat(200)})))
        .collect();
    store.enqueue_many(entries).await.unwrap();
    let node = NodeRef::new("n");
    store.heartbeat(&node).await.unwrap();
    for _ in 0..4 {
        let runs = store.claim(claim_request("n", 500, None)).await.unwrap();
        assert_eq!(runs.len(), 500);
        let done = runs
            .iter()
            .map(|r| finalize(r.run.id, Outcome::succeeded(None)))
            .collect();
        store.finalize_many(done).await.unwrap();
    }
    // 500 more running, for the finalize's plan.
    let entries: Vec<NewEntry> = (0..500)
        .map(|i| NewEntry::new("done", json!({"j": i})))
        .collect();
    store.enqueue_many(entries).await.unwrap();
    assert_eq!(
        store
            .claim(claim_request("n", 500, None))
            .await
            .unwrap()
            .len(),
        500
    );
    let plans = db
        .explain_hot_paths(vec![JOB_TYPE.into()], &node.instance_id)
        .await
        .unwrap();
    // The finalize probes its runs by primary key, never a partial index on the running
    // runs (which holds the finalized runs' dead entries too).
    let finalize = &plans
        .iter()
        .find(|(t, _)| t.starts_with("finalize"))
        .unwrap()
        .1;
    assert!(
        finalize.contains("bildad_runs_pkey")
            && !finalize.contains("bildad_runs_running")
            && !finalize.contains("bildad_runs_expire"),
        "{finalize}"
    );
    let expiry = &plans
        .iter()
        .find(|(t, _)| t.starts_with("expiry"))
        .unwrap()
        .1;
    // The statement's own buffers (the first `Buffers:` line is the top node's).
    let buffers: u64 = expiry
        .lines()
        .find_map(|l| l.trim().strip_prefix("Buffers: shared "))
        .unwrap_or_else(|| panic!("no buffers in\n{expiry}"))
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .filter(|(k, _)| matches!(*k, "hit" | "read"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    assert!(
        buffers < 30,
        "the expiry read {buffers} pages for no expired run:\n{expiry}"
    );
}
