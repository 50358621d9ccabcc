//! Transient database failures end to end: a PostgreSQL backend terminated under a call
//! (SQLSTATE 57P01 `admin_shutdown`, what a restart or a failover does) is
//! `Unavailable`, so it is retried where `Unavailable` is, and the API answers 503; and
//! the store serves the next call.

use bildad_core::{ErrorKind, JobStore, NewTemplate};
use bildad_store_diesel::testing::TestPg;
use bildad_store_diesel::{PgStore, PoolOptions};
use diesel::QueryableByName;
use diesel::sql_types::Integer;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use serde_json::json;
use std::time::Duration;

#[derive(QueryableByName)]
struct Pid {
    #[diesel(sql_type = Integer)]
    pid: i32,
}

/// The backend of `db` that waits on a lock, other than the admin's own.
async fn waiting_backend(admin: &mut AsyncPgConnection) -> Option<i32> {
    diesel::sql_query(
        "SELECT pid FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND wait_event_type = 'Lock'",
    )
    .load::<Pid>(admin)
    .await
    .expect("pg_stat_activity")
    .into_iter()
    .next()
    .map(|p| p.pid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_backend_terminated_mid_statement_is_unavailable() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    let store = PgStore::connect_with(
        db.url(),
        PoolOptions {
            max_size: 1,
            ..PoolOptions::default()
        },
    )
    .await
    .expect("connect");
    store
        .create_template(NewTemplate::new(
            "t",
            "t",
            "test.echo",
            json!({"type": "object"}),
        ))
        .await
        .expect("template");

    // Hold the template's row lock, so that the store's update (one statement, no
    // transaction) waits on it mid-statement.
    let mut admin = AsyncPgConnection::establish(db.url()).await.expect("admin");
    admin
        .batch_execute("BEGIN; SELECT id FROM bildad_templates WHERE code = 't' FOR UPDATE")
        .await
        .expect("lock the template");
    let updating = tokio::spawn({
        let store = store.clone();
        async move {
            let patch = bildad_core::TemplatePatch {
                name: Some("renamed".into()),
                ..Default::default()
            };
            store.update_template("t", patch).await
        }
    });
    let pid = loop {
        if let Some(pid) = waiting_backend(&mut admin).await {
            break pid;
        }
        assert!(
            !updating.is_finished(),
            "the update should wait on the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    diesel::sql_query(format!("SELECT pg_terminate_backend({pid})"))
        .execute(&mut admin)
        .await
        .expect("terminate");
    let err = updating
        .await
        .expect("task")
        .expect_err("the backend was terminated");
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err:?}");
    assert!(err.is_transient());
    let cause = std::error::Error::source(&err).and_then(|f| f.source());
    assert!(cause.is_some(), "the driver's error is kept: {err:?}");
    admin.batch_execute("ROLLBACK").await.expect("rollback");

    // A retry, as the callers of a transient error do, succeeds on a fresh connection.
    let mut tries = 0;
    loop {
        match store.get_template("t").await {
            Ok(t) => break assert_eq!(t.code, "t"),
            Err(e) if e.is_transient() && tries < 50 => tries += 1,
            Err(e) => panic!("the store did not recover: {e:?}"),
        }
    }
}
