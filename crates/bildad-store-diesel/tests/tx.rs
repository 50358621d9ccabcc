//! Enqueue inside the application's own transaction (SPEC §7), on real PostgreSQL and
//! SQLite: the job exists if and only if the transaction commits, the checks are those
//! of the normal enqueue, a failed enqueue leaves the transaction usable, the wake-up
//! comes on commit only; and stores built on the application's own pool.

use bildad_conformance::fixtures::template;
use bildad_core::{
    ClaimRequest, EnqueueOptions, ErrorKind, JobArgs, JobStore, JobTemplate, NewEntry, NodeRef,
    StoreError,
};
use bildad_store_diesel::testing::{TestPg, TestSqlite};
use bildad_store_diesel::{
    ClaimConnections, EnqueueIn, PgStore, SqliteConnectionWrapper, SqliteStore,
};
use diesel::sql_types::BigInt;
use diesel::{Connection, QueryableByName, SqliteConnection};
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures::{FutureExt, StreamExt};
use serde_json::json;
use std::time::{Duration, Instant};

/// The application's error in these tests: its database's, Bildad's, or a rollback it
/// asks for.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read by `Debug` when a test fails
enum AppError {
    Db(diesel::result::Error),
    Jobs(StoreError),
    Rollback,
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        AppError::Db(e)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Jobs(e)
    }
}

/// The arguments of a typed job.
#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
struct Welcome {
    email: String,
}

impl JobArgs for Welcome {
    const KIND: &'static str = "tx-welcome";
}

/// A template whose schema wants `{"email": <string>}`.
async fn email_template(store: &dyn JobStore) -> JobTemplate {
    template()
        .schema(json!({
            "type": "object",
            "required": ["email"],
            "properties": {"email": {"type": "string"}}
        }))
        .create(store)
        .await
}

/// Entries that break the rules in several ways at once.
fn invalid_batch(t: &JobTemplate) -> Vec<NewEntry> {
    vec![
        NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})),
        NewEntry::new(t.code.clone(), json!({"email": 7})),
        NewEntry::new("tx-no-such-template", json!({})),
        NewEntry::new(t.code.clone(), json!({"email": "x"})).identifier("has/slash"),
    ]
}

/// The violations of an `Invalid` error.
fn violations(e: StoreError) -> Vec<bildad_core::Violation> {
    match e {
        StoreError::Invalid(v) => v,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn claim_request(job_type: &str) -> ClaimRequest {
    ClaimRequest {
        node: NodeRef::new("tx-node"),
        job_types: vec![job_type.to_string()],
        limit: 10,
        expiry_grace: Duration::from_secs(600),
        only_identifier: None,
        queues: None,
        queue_caps: Default::default(),
    }
}

fn expect_not_found(r: Result<bildad_core::QueueEntry, StoreError>, what: &str) {
    match r {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

async fn pg_conn(db: &TestPg) -> AsyncPgConnection {
    AsyncPgConnection::establish(db.url())
        .await
        .expect("the application's connection")
}

// --- The same rules on every backend, generic over the application's connection ---

/// Rolled back: no job. Committed: the job, seen by the store only after the commit,
/// and claimable. With no transaction of the caller's: committed at once.
async fn job_exists_iff_committed<S, C>(store: &S, conn: &mut C)
where
    S: JobStore + EnqueueIn<C>,
    C: AsyncConnection + Send + 'static,
{
    let t = email_template(store).await;
    let entry = |id: &str| NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})).identifier(id);
    let r = conn
        .transaction::<(), AppError, _>(async |c| {
            let e = store.enqueue_in(c, entry("tx-rb")).await?;
            assert_eq!(e.job_run_identifier, "tx-rb");
            Err(AppError::Rollback)
        })
        .await;
    assert!(matches!(r, Err(AppError::Rollback)), "{r:?}");
    expect_not_found(store.get_entry("tx-rb").await, "after the rollback");
    assert_eq!(store.stats().await.unwrap().available, 0);

    conn.transaction::<(), AppError, _>(async |c| {
        store
            .enqueue_many_in(c, vec![entry("tx-1"), entry("tx-2")])
            .await?;
        expect_not_found(store.get_entry("tx-1").await, "before the commit");
        Ok(())
    })
    .await
    .unwrap();
    let claimed = store.claim(claim_request(&t.job_type)).await.unwrap();
    let ids: Vec<_> = claimed
        .iter()
        .map(|c| c.run.job_run_identifier.as_str())
        .collect();
    assert_eq!(ids, ["tx-1", "tx-2"]);

    // Outside any transaction of the caller's, the enqueue is its own transaction.
    store.enqueue_in(conn, entry("no-tx")).await.unwrap();
    store.get_entry("no-tx").await.unwrap();
}

/// Inside the transaction the checks are the normal enqueue's (the same violations, a
/// Conflict for a used identifier, the typed enqueue's missing template), and each
/// failure leaves the transaction usable: what succeeded in it commits.
async fn same_checks_and_the_transaction_stays_usable<S, C>(store: &S, conn: &mut C)
where
    S: JobStore + EnqueueIn<C>,
    C: AsyncConnection + Send + 'static,
{
    let t = email_template(store).await;
    let normal = violations(store.enqueue_many(invalid_batch(&t)).await.unwrap_err());
    conn.transaction::<(), AppError, _>(async |c| {
        let in_tx = violations(
            store
                .enqueue_many_in(c, invalid_batch(&t))
                .await
                .unwrap_err(),
        );
        assert_eq!(in_tx, normal);
        let taken = NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})).identifier("tx-ok");
        store.enqueue_in(c, taken.clone()).await?;
        let e = store.enqueue_in(c, taken).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
        let welcome = Welcome {
            email: "a@b.c".into(),
        };
        let e = store
            .enqueue_args_in(c, &welcome, EnqueueOptions::default())
            .await
            .unwrap_err();
        assert_eq!(violations(e)[0].pointer, "/template");
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(store.stats().await.unwrap().available, 1, "only tx-ok");
    store.get_entry("tx-ok").await.unwrap();
}

/// A unique job's key is taken in the caller's transaction (SPEC §8): a second enqueue in
/// it is a duplicate and leaves it usable; a rollback gives the key back; a commit keeps
/// it for every later enqueue.
async fn unique_keys_follow_the_transaction<S, C>(store: &S, conn: &mut C)
where
    S: JobStore + EnqueueIn<C>,
    C: AsyncConnection + Send + 'static,
{
    let t = email_template(store).await;
    let unique = |email: &str| {
        NewEntry::new(t.code.clone(), json!({"email": email})).unique_for_seconds(3600)
    };
    let r = conn
        .transaction::<(), AppError, _>(async |c| {
            let first = store.enqueue_in(c, unique("a@b.c")).await?;
            match store.enqueue_in(c, unique("a@b.c")).await {
                Err(StoreError::Duplicate {
                    job_run_identifier, ..
                }) => assert_eq!(job_run_identifier, first.job_run_identifier),
                other => panic!("expected a duplicate: {other:?}"),
            }
            store.enqueue_in(c, unique("d@e.f")).await?;
            Err(AppError::Rollback)
        })
        .await;
    assert!(matches!(r, Err(AppError::Rollback)), "{r:?}");
    assert_eq!(store.stats().await.unwrap().available, 0);

    let mut kept = String::new();
    conn.transaction::<(), AppError, _>(async |c| {
        kept = store
            .enqueue_in(c, unique("a@b.c"))
            .await?
            .job_run_identifier;
        Ok(())
    })
    .await
    .unwrap();
    match store.enqueue(unique("a@b.c")).await {
        Err(StoreError::Duplicate {
            job_run_identifier, ..
        }) => assert_eq!(job_run_identifier, kept),
        other => panic!("expected a duplicate of the committed job: {other:?}"),
    }
    assert_eq!(store.stats().await.unwrap().available, 1);
}

// --- PostgreSQL ---

#[tokio::test]
async fn pg_job_exists_iff_the_transaction_commits() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    job_exists_iff_committed(db.pg(), &mut pg_conn(&db).await).await;
}

#[tokio::test]
async fn pg_same_checks_and_the_transaction_stays_usable() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    same_checks_and_the_transaction_stays_usable(db.pg(), &mut pg_conn(&db).await).await;
}

#[tokio::test]
async fn pg_unique_keys_follow_the_transaction() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    unique_keys_follow_the_transaction(db.pg(), &mut pg_conn(&db).await).await;
}

#[derive(QueryableByName)]
struct Waiting {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A conflict found by the insert itself (an identifier a concurrent transaction
/// committed meanwhile: the statement fails) leaves the caller's transaction usable:
/// the enqueue ran in a savepoint.
#[tokio::test]
async fn pg_failed_insert_rolls_back_to_its_savepoint_only() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.pg().clone();
    let t = email_template(&store).await;
    let entry = |id: &str| NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})).identifier(id);
    let (ready, ready_rx) = tokio::sync::oneshot::channel::<()>();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let (store, mut conn, e) = (store.clone(), pg_conn(&db).await, entry("tx-same"));
        tokio::spawn(async move {
            conn.transaction::<(), AppError, _>(async |c| {
                store.enqueue_in(c, e).await?;
                ready.send(()).unwrap();
                go_rx.await.unwrap();
                Ok(())
            })
            .await
            .unwrap();
        })
    };
    ready_rx.await.unwrap();
    let second = {
        let (store, mut conn) = (store.clone(), pg_conn(&db).await);
        let (same, other) = (entry("tx-same"), entry("tx-other"));
        tokio::spawn(async move {
            conn.transaction::<(), AppError, _>(async |c| {
                let e = store.enqueue_in(c, same).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
                store.enqueue_in(c, other).await?;
                Ok(())
            })
            .await
            .unwrap();
        })
    };
    // The second insert waits on the first's uncommitted identifier; then let it commit.
    let mut watch = pg_conn(&db).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let w: Waiting = diesel::sql_query(
            "SELECT count(*) AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .get_result(&mut watch)
        .await
        .unwrap();
        if w.n > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the second insert never waited");
        tokio::task::yield_now().await;
    }
    go.send(()).unwrap();
    first.await.unwrap();
    second.await.unwrap();
    store.get_entry("tx-same").await.unwrap();
    store.get_entry("tx-other").await.unwrap();
}

/// The wake-up (`pg_notify`) is delivered on commit, not before: a notification sent
/// by another session while the transaction is open arrives first.
#[tokio::test]
async fn pg_wake_up_is_delivered_on_commit_only() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.pg();
    let t = email_template(store).await;
    let mut listener = pg_conn(&db).await;
    listener
        .batch_execute("LISTEN bildad_enqueued")
        .await
        .unwrap();
    let mut other = pg_conn(&db).await;
    let mut conn = pg_conn(&db).await;
    let mut notifications = std::pin::pin!(listener.notifications_stream());
    conn.transaction::<(), AppError, _>(async |c| {
        store
            .enqueue_in(c, NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})))
            .await?;
        other
            .batch_execute("NOTIFY bildad_enqueued, 'marker'")
            .await
            .unwrap();
        let n = notifications.next().await.unwrap().unwrap();
        assert_eq!(
            n.payload, "marker",
            "the enqueue's wake-up came before its commit"
        );
        Ok(())
    })
    .await
    .unwrap();
    let n = notifications.next().await.unwrap().unwrap();
    assert_eq!(n.payload, "", "the enqueue's wake-up, after the commit");
}

/// A store on the application's own pool serves the whole contract; a typed enqueue
/// in a transaction on that pool's connection is claimed.
#[tokio::test]
async fn pg_store_on_the_application_pool() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(db.url());
    let pool = Pool::builder(manager).max_size(4).build().unwrap();
    let store = PgStore::from_pool(pool.clone(), ClaimConnections::own(db.url()))
        .await
        .unwrap();
    template()
        .code(Welcome::KIND)
        .job_type("tx.welcome")
        .create(&store)
        .await;
    let mut conn = pool.get().await.unwrap();
    conn.transaction::<(), AppError, _>(async |c| {
        store
            .enqueue_args_in(
                c,
                &Welcome {
                    email: "a@b.c".into(),
                },
                EnqueueOptions::default(),
            )
            .await?;
        Ok(())
    })
    .await
    .unwrap();
    drop(conn);
    let claimed = store.claim(claim_request("tx.welcome")).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].run.context, json!({"email": "a@b.c"}));
    // Claims on a pool of the application's, built for them.
    let claims = Pool::builder(PgStore::claim_manager(db.url()))
        .max_size(1)
        .build()
        .unwrap();
    let store = PgStore::from_pool(pool, ClaimConnections::Pool(claims))
        .await
        .unwrap();
    assert!(
        store
            .claim(claim_request("tx.welcome"))
            .await
            .unwrap()
            .is_empty()
    );
}

// --- SQLite ---

fn sqlite_pool(db: &TestSqlite) -> Pool<SqliteConnectionWrapper> {
    Pool::builder(SqliteStore::manager(db.sqlite().path()))
        .max_size(2)
        .build()
        .unwrap()
}

#[tokio::test]
async fn sqlite_job_exists_iff_the_transaction_commits() {
    let db = TestSqlite::fresh().await;
    let pool = sqlite_pool(&db);
    job_exists_iff_committed(db.sqlite(), &mut *pool.get().await.unwrap()).await;
}

#[tokio::test]
async fn sqlite_same_checks_and_the_transaction_stays_usable() {
    let db = TestSqlite::fresh().await;
    let pool = sqlite_pool(&db);
    same_checks_and_the_transaction_stays_usable(db.sqlite(), &mut *pool.get().await.unwrap())
        .await;
}

#[tokio::test]
async fn sqlite_unique_keys_follow_the_transaction() {
    let db = TestSqlite::fresh().await;
    let pool = sqlite_pool(&db);
    unique_keys_follow_the_transaction(db.sqlite(), &mut *pool.get().await.unwrap()).await;
}

/// On SQLite the store cannot see the caller's commit: `enqueue_in` wakes nobody, and
/// `notify_enqueued` after the commit does.
#[tokio::test]
async fn sqlite_wake_up_only_when_the_application_says_it_committed() {
    let db = TestSqlite::fresh().await;
    let store = db.sqlite();
    let t = email_template(store).await;
    let mut listener = store.listen_for_enqueues().await.unwrap().unwrap();
    let pool = sqlite_pool(&db);
    let mut conn = pool.get().await.unwrap();
    conn.transaction::<(), AppError, _>(async |c| {
        store
            .enqueue_in(c, NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})))
            .await?;
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(listener.wait().now_or_never(), None, "woken by enqueue_in");
    store.notify_enqueued();
    assert_eq!(listener.wait().now_or_never(), Some(true));
}

/// Plain (synchronous) diesel: the same enqueue on a `SqliteConnection` in its
/// transaction.
#[tokio::test]
async fn sqlite_blocking_enqueue_in_a_plain_diesel_transaction() {
    let db = TestSqlite::fresh().await;
    let store = db.sqlite();
    let t = email_template(store).await;
    let mut conn = SqliteConnection::establish(store.path()).unwrap();
    diesel::connection::SimpleConnection::batch_execute(
        &mut conn,
        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
    )
    .unwrap();
    let entry = |id: &str| NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})).identifier(id);
    let r = conn.transaction::<(), AppError, _>(|c| {
        store.enqueue_many_in_blocking(c, vec![entry("tx-rb")])?;
        Err(AppError::Rollback)
    });
    assert!(matches!(r, Err(AppError::Rollback)), "{r:?}");
    conn.transaction::<(), AppError, _>(|c| {
        store.enqueue_many_in_blocking(c, vec![entry("tx-1"), entry("tx-2")])?;
        Ok(())
    })
    .unwrap();
    expect_not_found(store.get_entry("tx-rb").await, "after the rollback");
    assert_eq!(store.stats().await.unwrap().available, 2);
}

/// A store on the application's pool; a pool whose connections lack the store's
/// settings is refused.
#[tokio::test]
async fn sqlite_store_on_the_application_pool() {
    let db = TestSqlite::fresh().await;
    let store = SqliteStore::from_pool(sqlite_pool(&db)).await.unwrap();
    assert_eq!(store.path(), db.sqlite().path());
    let t = email_template(&store).await;
    store
        .enqueue(NewEntry::new(t.code.clone(), json!({"email": "a@b.c"})))
        .await
        .unwrap();
    assert_eq!(
        store.claim(claim_request(&t.job_type)).await.unwrap().len(),
        1
    );
    let plain = Pool::builder(
        AsyncDieselConnectionManager::<SqliteConnectionWrapper>::new(db.sqlite().path()),
    )
    .build()
    .unwrap();
    let e = SqliteStore::from_pool(plain).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e:?}");
}

/// What the transactional path costs beside the pool's (ignored: a measurement, not a
/// rule): `cargo test -p bildad-store-diesel --test tx -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn pg_enqueue_in_cost() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = db.pg();
    let t = email_template(store).await;
    let entry = || NewEntry::new(t.code.clone(), json!({"email": "a@b.c"}));
    let n = 500;
    let mut conn = pg_conn(&db).await;
    let started = Instant::now();
    for _ in 0..n {
        store.enqueue(entry()).await.unwrap();
    }
    let pool = started.elapsed();
    let started = Instant::now();
    for _ in 0..n {
        store.enqueue_in(&mut conn, entry()).await.unwrap();
    }
    let own = started.elapsed();
    let started = Instant::now();
    for _ in 0..n {
        conn.transaction::<_, AppError, _>(async |c| Ok(store.enqueue_in(c, entry()).await?))
            .await
            .unwrap();
    }
    let in_tx = started.elapsed();
    let per = |d: Duration| d.as_micros() / n;
    println!(
        "per enqueue: pool {} µs, app connection alone {} µs, in the app's transaction \
         (BEGIN, SAVEPOINT, RELEASE, COMMIT included) {} µs",
        per(pool),
        per(own),
        per(in_tx)
    );
}
