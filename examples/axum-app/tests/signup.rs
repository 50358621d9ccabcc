//! The example app drives its own job to `SUCCEEDED` through its own HTTP route.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bildad_core::NodeConfig;
use bildad_example_app::{app, ensure_templates, registry};
use bildad_store_diesel::testing::{TestPg, TestSqlite};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
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

async fn signup_runs_the_welcome_job(store: Arc<dyn bildad_core::JobStore>) {
    ensure_templates(&store).await.unwrap();
    ensure_templates(&store).await.unwrap(); // idempotent
    let node = bildad_runtime::NodeRuntime::start(
        store,
        registry(),
        NodeConfig {
            node_name: "example-test".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let app = app(&node, Some("t0ken".into()));

    // A context that breaks the derived schema is refused by the app's route.
    let (status, _) = call(&app, "POST", "/signup", Some(json!({"email": "nope"}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, body) = call(
        &app,
        "POST",
        "/signup",
        Some(json!({"email": "ada@example.com", "name": "Ada"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["job"].as_str().unwrap().to_string();

    let deadline = Instant::now() + Duration::from_secs(10);
    let run = loop {
        let (status, runs) = call(&app, "GET", &format!("/jobs/runs?identifier={id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{runs}");
        if runs["items"][0]["status"] == "DONE" {
            break runs["items"][0].clone();
        }
        assert!(
            Instant::now() < deadline,
            "the welcome job did not finish: {runs}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run["result"], "SUCCEEDED", "{run}");
    assert_eq!(run["output"]["sent_to"], "ada@example.com");
    assert_eq!(run["output"]["subject"], "Welcome, Ada!");

    // Bildad's API is behind the app's token.
    let res = app
        .clone()
        .oneshot(Request::get("/jobs/runs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    node.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_on_sqlite() {
    let db = TestSqlite::fresh().await;
    signup_runs_the_welcome_job(db.store()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn signup_on_postgres() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    signup_runs_the_welcome_job(db.store()).await;
}
