//! The example app on PostgreSQL and SQLite: a sign-up commits the user and its welcome
//! job together, the job runs to `SUCCEEDED` with the app's mailer, a duplicate e-mail or
//! a refused job writes nothing, a rolled-back transaction leaves no job.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bildad_core::{JobStore, NodeConfig, PageRequest, RunFilter, RunResult};
use bildad_example_app::db::users;
use bildad_example_app::signup::{sign_up_pg, sign_up_sqlite};
use bildad_example_app::{Database, Mail, Mailer, app, registry};
use bildad_runtime::NodeRuntime;
use bildad_store_diesel::testing::{TestPg, TestSqlite};
use diesel::QueryDsl;
use diesel_async::{AsyncConnection, RunQueryDsl};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer t0ken");
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
    (status, value)
}

/// `POST /signup` with `email`.
async fn sign_up(app: &axum::Router, email: &str) -> (StatusCode, Value) {
    call(app, "POST", "/signup", Some(json!({ "email": email }))).await
}

/// The number of users, read on the app's own pool.
async fn users_count(db: &Database) -> i64 {
    match db {
        Database::Postgres { pool, .. } => {
            let mut c = pool.get().await.unwrap();
            users::table.count().get_result(&mut c).await.unwrap()
        }
        Database::Sqlite { pool, .. } => {
            let mut c = pool.get().await.unwrap();
            users::table.count().get_result(&mut c).await.unwrap()
        }
    }
}

/// Entries waiting plus runs recorded: every trace a job leaves.
async fn jobs_count(store: &dyn JobStore) -> u64 {
    let stats = store.stats().await.unwrap();
    let runs = store
        .list_runs(RunFilter::default(), PageRequest::default())
        .await
        .unwrap();
    stats.available + stats.scheduled + stats.running + runs.total
}

async fn start(url: &str, mailer: Mailer) -> (Database, NodeRuntime, axum::Router) {
    let db = Database::connect(url).await.unwrap();
    db.migrate().await.unwrap();
    db.migrate().await.unwrap(); // nothing left to apply
    let node = NodeRuntime::start(
        db.store(),
        registry(mailer),
        NodeConfig {
            node_name: "example-test".into(),
            wake_on_enqueue: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let router = app(db.clone(), &node, Some("t0ken".into()));
    (db, node, router)
}

async fn signup_commits_user_and_job_together(url: &str) {
    let mailer = Mailer::default();
    let (db, node, app) = start(url, mailer.clone()).await;
    let store = db.store();

    let (status, body) = sign_up(&app, "ada@example.com").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["job"].as_str().unwrap().to_string();

    // The job runs (woken by the commit) and the worker used the app's mailer.
    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let runs = store
            .list_runs(
                RunFilter {
                    identifier: Some(id.clone()),
                    ..RunFilter::default()
                },
                PageRequest::default(),
            )
            .await
            .unwrap();
        if let Some(run) = runs.items.into_iter().find(|r| r.result.is_some()) {
            break run;
        }
        assert!(Instant::now() < deadline, "the welcome job did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.result, Some(RunResult::Succeeded), "{run:?}");
    assert_eq!(run.output.as_ref().unwrap()["to"], "ada@example.com");
    assert_eq!(
        mailer.sent(),
        [Mail {
            to: "ada@example.com".into(),
            subject: "Welcome!".into()
        }]
    );

    // A second sign-up with the same e-mail: 409, and no second job.
    let (status, body) = sign_up(&app, "ada@example.com").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    // An e-mail the job's schema refuses: 422, and the user's insert is rolled back too.
    let (status, body) = sign_up(&app, "no-at-sign").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["violations"][0]["pointer"], "/context/email", "{body}");
    assert_eq!(users_count(&db).await, 1);
    assert_eq!(jobs_count(&*store).await, 1);

    // Bildad's API is nested under /jobs, behind the app's token.
    let (status, _) = call(&app, "GET", &format!("/jobs/runs?identifier={id}"), None).await;
    assert_eq!(status, StatusCode::OK);
    node.shutdown(Duration::from_secs(5)).await;
}

/// The sign-up inside a transaction that the app then rolls back: no user, no job.
async fn rolled_back_signup_leaves_no_job(db: &Database) {
    #[derive(Debug)]
    enum Abort {
        Rollback,
        Failed(#[allow(dead_code)] String),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Failed(e.to_string())
        }
    }
    // The template, as a node's start would create it.
    registry(Mailer::default())
        .ensure_templates(&*db.store())
        .await
        .unwrap();
    let r = match db {
        Database::Postgres { pool, store } => {
            let mut c = pool.get().await.unwrap();
            c.transaction::<(), Abort, _>(async |c| {
                sign_up_pg(store, c, "bob@example.com").await.unwrap();
                Err(Abort::Rollback)
            })
            .await
        }
        Database::Sqlite { pool, store } => {
            let mut c = pool.get().await.unwrap();
            c.transaction::<(), Abort, _>(async |c| {
                sign_up_sqlite(store, c, "bob@example.com").await.unwrap();
                Err(Abort::Rollback)
            })
            .await
        }
    };
    assert!(matches!(r, Err(Abort::Rollback)), "{r:?}");
    assert_eq!(users_count(db).await, 0);
    assert_eq!(jobs_count(&*db.store()).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_on_sqlite() {
    let db = TestSqlite::fresh().await;
    signup_commits_user_and_job_together(db.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_on_postgres() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    signup_commits_user_and_job_together(db.url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_signup_on_sqlite() {
    let test = TestSqlite::fresh().await;
    let db = Database::connect(test.url()).await.unwrap();
    db.migrate().await.unwrap();
    rolled_back_signup_leaves_no_job(&db).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolled_back_signup_on_postgres() {
    let Some(test) = TestPg::fresh().await else {
        return;
    };
    let db = Database::connect(test.url()).await.unwrap();
    db.migrate().await.unwrap();
    rolled_back_signup_leaves_no_job(&db).await;
}
