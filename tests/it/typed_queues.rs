//! Typed queues (SPEC §7, §8): a job type's default queue becomes its template's queue,
//! owned by the code, and the queue of its entries; an enqueue's option overrides it; a
//! bad name is `Invalid` and writes nothing. On every store, and through the
//! transactional enqueue on SQLite and PostgreSQL.

use bildad_core::{
    EnqueueOptions, ErrorKind, JobArgs, JobDefaults, JobError, JobRegistry, JobStore, Jobs,
    NewTemplate, RunInfo, TemplatePatch,
};
use bildad_store_diesel::testing::{TestMysql, TestPg, TestSqlite};
use bildad_store_diesel::{EnqueueIn, SqliteStore};
use bildad_tests::*;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::{Deserialize, Serialize};

/// A job type whose default queue is `media`.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Resize {
    id: u64,
}

impl JobArgs for Resize {
    const KIND: &'static str = "media.resize";
    fn defaults() -> JobDefaults {
        JobDefaults {
            queue: Some("media".into()),
            ..JobDefaults::default()
        }
    }
}

/// A job type that declares no queue: its template's queue is the operator's.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct Plain {
    id: u64,
}

impl JobArgs for Plain {
    const KIND: &'static str = "plain";
}

/// A job type whose default queue breaks the rule of a code.
#[derive(Serialize, Deserialize, schemars::JsonSchema)]
struct BadQueue {}

impl JobArgs for BadQueue {
    const KIND: &'static str = "bad.queue";
    fn defaults() -> JobDefaults {
        JobDefaults {
            queue: Some("has space".into()),
            ..JobDefaults::default()
        }
    }
}

async fn noop<A>(_: A, _: RunInfo) -> Result<(), JobError> {
    Ok(())
}

fn registry() -> JobRegistry {
    JobRegistry::new()
        .with_worker(noop::<Resize>)
        .with_worker(noop::<Plain>)
}

fn move_to(queue: &str) -> TemplatePatch {
    TemplatePatch {
        queue: Some(queue.into()),
        ..TemplatePatch::default()
    }
}

async fn a_job_types_queue_is_its_templates_and_its_entries(t: TestStore) {
    let (store, b) = (&t.store, t.backend);
    let registry = registry();
    let done = registry.ensure_templates(&**store).await.unwrap();
    assert_eq!(done.created.len(), 2, "{b}");
    assert_eq!(
        store.get_template(Resize::KIND).await.unwrap().queue,
        "media"
    );
    assert_eq!(
        store.get_template(Plain::KIND).await.unwrap().queue,
        "default"
    );

    // The code owns a declared queue: a start puts it back; an undeclared one is the
    // operator's and stays where they moved it.
    store
        .update_template(Resize::KIND, move_to("elsewhere"))
        .await
        .unwrap();
    store
        .update_template(Plain::KIND, move_to("slow"))
        .await
        .unwrap();
    let done = registry.ensure_templates(&**store).await.unwrap();
    assert_eq!(done.updated, [Resize::KIND], "{b}");
    assert_eq!(done.unchanged, [Plain::KIND], "{b}");
    assert_eq!(
        store.get_template(Resize::KIND).await.unwrap().queue,
        "media"
    );
    assert_eq!(store.get_template(Plain::KIND).await.unwrap().queue, "slow");
    let again = registry.ensure_templates(&**store).await.unwrap();
    assert_eq!(
        again.unchanged.len(),
        2,
        "an unchanged start writes nothing ({b})"
    );

    // Entries land in the job type's queue; an option overrides it.
    let jobs = Jobs::new(store.clone());
    let e = jobs.enqueue(Resize { id: 1 }).await.unwrap();
    assert_eq!(e.queue, "media", "{b}");
    let opts = EnqueueOptions::default().queue("bulk");
    let e = jobs
        .enqueue_with(Resize { id: 2 }, opts.clone())
        .await
        .unwrap();
    assert_eq!(e.queue, "bulk", "{b}");
    let e = jobs.enqueue(Plain { id: 3 }).await.unwrap();
    assert_eq!(e.queue, "slow", "no declared queue: the template's ({b})");
    let e = jobs
        .enqueue_with(Plain { id: 4 }, opts.clone())
        .await
        .unwrap();
    assert_eq!(e.queue, "bulk", "{b}");
    let many = jobs
        .enqueue_many_with([
            (Resize { id: 5 }, EnqueueOptions::default()),
            (Resize { id: 6 }, opts),
        ])
        .await
        .unwrap();
    let queues: Vec<&str> = many.iter().map(|e| e.queue.as_str()).collect();
    assert_eq!(queues, ["media", "bulk"], "{b}");
}

/// A template created by hand (over HTTP, say) in another queue: the job type's queue
/// still holds for its entries.
async fn a_job_types_queue_holds_on_a_hand_made_template(t: TestStore) {
    let store = &t.store;
    let schema = Resize::context_schema();
    let hand = NewTemplate::new(Resize::KIND, "by hand", Resize::KIND, schema);
    assert_eq!(hand.queue, "default");
    store.create_template(hand).await.unwrap();
    let e = Jobs::new(store.clone())
        .enqueue(Resize { id: 1 })
        .await
        .unwrap();
    assert_eq!(e.queue, "media", "{}", t.backend);
}

async fn a_bad_queue_name_is_invalid_and_writes_nothing(t: TestStore) {
    let (store, b) = (&t.store, t.backend);
    // In the job type's defaults: the start fails at `/queue`, no template.
    let bad = JobRegistry::new().with_worker(noop::<BadQueue>);
    let e = bad.ensure_templates(&**store).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{b}");
    assert_eq!(e.violations()[0].pointer, "/queue", "{b}: {e}");
    let e = store.get_template(BadQueue::KIND).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{b}");

    // In an enqueue's options: `Invalid` at `/queue`, nothing written.
    registry().ensure_templates(&**store).await.unwrap();
    let jobs = Jobs::new(store.clone());
    for name in ["has space", "", "é"] {
        let opts = EnqueueOptions::default().queue(name);
        let e = jobs.enqueue_with(Resize { id: 1 }, opts).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid, "{name:?} on {b}");
        assert_eq!(e.violations()[0].pointer, "/queue", "{b}: {e}");
    }
    let e = jobs
        .enqueue_many_with([
            (Resize { id: 1 }, EnqueueOptions::default()),
            (Resize { id: 2 }, EnqueueOptions::default().queue("a/b")),
        ])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{b}");
    assert_eq!(e.violations()[0].pointer, "/1/queue", "{b}: {e}");
    assert_eq!(store.stats().await.unwrap().available, 0, "{b}");
}

on_every_store!(
    a_job_types_queue_is_its_templates_and_its_entries,
    a_job_types_queue_holds_on_a_hand_made_template,
    a_bad_queue_name_is_invalid_and_writes_nothing,
);

/// The transactional enqueue (SPEC §7) puts a typed job where `Jobs` would: the job
/// type's queue or the option's; a bad name is `Invalid` and the transaction goes on.
async fn in_a_transaction<S, C>(store: &S, conn: &mut C, backend: &str)
where
    S: JobStore + EnqueueIn<C>,
    C: AsyncConnection + Send + 'static,
{
    registry().ensure_templates(store).await.unwrap();
    let (kept, over, bad) = conn
        .transaction::<_, diesel::result::Error, _>(async |c| {
            let kept = store.enqueue_args_in(c, &Resize { id: 1 }, EnqueueOptions::default());
            let kept = kept.await;
            let opts = EnqueueOptions::default().queue("bulk");
            let over = store.enqueue_args_in(c, &Resize { id: 2 }, opts).await;
            let opts = EnqueueOptions::default().queue("a b");
            let bad = store.enqueue_args_in(c, &Resize { id: 3 }, opts).await;
            Ok((kept, over, bad))
        })
        .await
        .unwrap();
    assert_eq!(kept.unwrap().queue, "media", "{backend}");
    assert_eq!(over.unwrap().queue, "bulk", "{backend}");
    let e = bad.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid, "{backend}");
    assert_eq!(e.violations()[0].pointer, "/queue", "{backend}: {e}");
    assert_eq!(store.stats().await.unwrap().available, 2, "{backend}");
}

#[tokio::test]
async fn a_typed_queue_in_a_postgres_transaction() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let mut conn = AsyncPgConnection::establish(db.url()).await.unwrap();
    in_a_transaction(db.pg(), &mut conn, "postgres").await;
}

#[tokio::test]
async fn a_typed_queue_in_a_sqlite_transaction() {
    let db = TestSqlite::fresh().await;
    let pool = diesel_async::pooled_connection::deadpool::Pool::builder(SqliteStore::manager(
        db.sqlite().path(),
    ))
    .max_size(1)
    .build()
    .unwrap();
    in_a_transaction(db.sqlite(), &mut *pool.get().await.unwrap(), "sqlite").await;
}

#[tokio::test]
async fn a_typed_queue_in_a_mysql_transaction() {
    let Some(db) = TestMysql::fresh().await else {
        return;
    };
    let pool = diesel_async::pooled_connection::deadpool::Pool::builder(
        bildad_store_diesel::MysqlStore::manager(db.url()),
    )
    .max_size(1)
    .build()
    .unwrap();
    in_a_transaction(db.mysql(), &mut *pool.get().await.unwrap(), "mysql").await;
}
