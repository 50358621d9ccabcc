//! Every route with its success and error answers.

use crate::{Api, backends};
use axum::body::Body;
use axum::http::{Method, Request, header};
use bildad_conformance::{Fault, FaultStore};
use bildad_core::{JobStore, MemoryStore};
use bildad_http::ApiConfig;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

backends!(
    templates_crud,
    template_listing_filters_and_pages,
    enqueue_and_read_entries,
    enqueue_with_trigger_runs_the_job,
    stop_and_remove_a_running_entry,
    runs_history_and_filters,
    engine_run_reports,
);

pub(crate) async fn templates_crud(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    let body = json!({"code": "mail.send", "name": "Send mail", "job_type": "test.echo",
                      "context_schema": {"type": "object", "required": ["to"]}});
    let t = api.post("/jobs/templates", body.clone()).await.expect(201);
    assert_eq!(t["code"], "mail.send");
    assert_eq!(t["active"], true);
    assert_eq!(t["default_timeout_seconds"], 3600);
    assert_eq!(t["default_max_retries"], 3);
    assert_eq!(t["display_order"], 0);
    assert!(t["inserted_at"].as_str().unwrap().ends_with('Z'));

    let dup = api.post("/jobs/templates", body).await.expect(409);
    assert_eq!(dup["error"]["code"], "conflict");

    let bad = api
        .post(
            "/jobs/templates",
            json!({"code": "bad", "name": "x", "job_type": "test.echo",
                   "context_schema": {"type": "no-such-type"}}),
        )
        .await
        .expect(422);
    assert!(
        bad["error"]["details"][0]["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/context_schema")
    );
    let remote = api
        .post(
            "/jobs/templates",
            json!({"code": "remote", "name": "x", "job_type": "test.echo",
                   "context_schema": {"$ref": "https://example.com/schema.json"}}),
        )
        .await
        .expect(422);
    assert_eq!(remote["error"]["code"], "invalid");

    let got = api.get("/jobs/templates/mail.send").await.expect(200);
    assert_eq!(got["name"], "Send mail");
    api.get("/jobs/templates/nope").await.expect(404);

    let patched = api
        .call(
            Method::PATCH,
            "/jobs/templates/mail.send",
            Some(json!({"name": "Mail", "active": false, "default_max_retries": 0})),
        )
        .await
        .expect(200);
    assert_eq!(patched["name"], "Mail");
    assert_eq!(patched["active"], false);
    assert_eq!(patched["default_max_retries"], 0);
    api.call(
        Method::PATCH,
        "/jobs/templates/nope",
        Some(json!({"name": "x"})),
    )
    .await
    .expect(404);
    api.call(
        Method::PATCH,
        "/jobs/templates/mail.send",
        Some(json!({"default_timeout_seconds": 0})),
    )
    .await
    .expect(422);

    // An inactive template accepts no entries.
    api.post(
        "/jobs/queue",
        json!({"template": "mail.send", "context": {"to": "a"}}),
    )
    .await
    .expect(422);

    // A template with entries cannot be deleted.
    api.call(
        Method::PATCH,
        "/jobs/templates/mail.send",
        Some(json!({"active": true})),
    )
    .await
    .expect(200);
    api.post(
        "/jobs/queue",
        json!({"template": "mail.send", "context": {"to": "a"}, "job_run_identifier": "m1"}),
    )
    .await
    .expect(201);
    let busy = api
        .call(Method::DELETE, "/jobs/templates/mail.send", None)
        .await
        .expect(409);
    assert_eq!(busy["error"]["code"], "conflict");
    api.call(Method::DELETE, "/jobs/queue/m1", None)
        .await
        .expect(204);
    let gone = api
        .call(Method::DELETE, "/jobs/templates/mail.send", None)
        .await;
    assert_eq!(gone.status.as_u16(), 204);
    assert_eq!(gone.body, Value::Null);
    api.call(Method::DELETE, "/jobs/templates/mail.send", None)
        .await
        .expect(404);
}

pub(crate) async fn template_listing_filters_and_pages(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    for (code, order, active) in [
        ("c", 1, true),
        ("a", 2, true),
        ("b", 1, false),
        ("d", 0, true),
    ] {
        api.post(
            "/jobs/templates",
            json!({"code": code, "name": code, "job_type": "test.echo",
                   "context_schema": {}, "display_order": order, "active": active}),
        )
        .await
        .expect(201);
    }
    let codes = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let active = api.get("/jobs/templates").await.expect(200);
    assert_eq!(codes(&active), ["d", "c", "a"]);
    assert_eq!(active["total"], 3);
    assert_eq!(active["page"], 0);
    assert_eq!(active["limit"], 25);
    let all = api.get("/jobs/templates?filter=all").await.expect(200);
    assert_eq!(codes(&all), ["d", "b", "c", "a"]);
    let inactive = api.get("/jobs/templates?filter=inactive").await.expect(200);
    assert_eq!(codes(&inactive), ["b"]);
    let page = api
        .get("/jobs/templates?filter=all&page=1&limit=2")
        .await
        .expect(200);
    assert_eq!(codes(&page), ["c", "a"]);
    assert_eq!(page["total"], 4);
    assert_eq!(page["page"], 1);
    assert_eq!(page["limit"], 2);
    let beyond = api.get("/jobs/templates?page=9").await.expect(200);
    assert_eq!(codes(&beyond), Vec::<String>::new());
}

pub(crate) async fn enqueue_and_read_entries(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let e = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"n": 1}}),
        )
        .await
        .expect(201);
    for key in [
        "job_run_identifier",
        "template",
        "status",
        "priority",
        "timeout_seconds",
        "max_retries",
        "context",
        "run_at",
        "inserted_at",
        "updated_at",
        "attempts",
        "current_run_id",
    ] {
        assert!(e.get(key).is_some(), "{key} missing in {e}");
    }
    assert_eq!(e["status"], "AVAILABLE");
    assert_eq!(e["priority"], 5);
    assert_eq!(e["max_retries"], 1);
    assert_eq!(e["context"], json!({"n": 1}));
    assert!(e.get("engine").is_none());
    let first = e["job_run_identifier"].as_str().unwrap().to_owned();

    let second = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {}, "job_run_identifier": "urgent",
                   "priority": 1, "timeout_seconds": 30, "max_retries": 0}),
        )
        .await
        .expect(201);
    assert_eq!(second["timeout_seconds"], 30);
    let later = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {}, "job_run_identifier": "later",
                   "run_at": "2999-01-01T00:00:00+02:00"}),
        )
        .await
        .expect(201);
    assert_eq!(later["run_at"], "2998-12-31T22:00:00Z");

    let dup = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {}, "job_run_identifier": "urgent"}),
        )
        .await
        .expect(409);
    assert_eq!(dup["error"]["code"], "conflict");
    let invalid = api
        .post(
            "/jobs/queue",
            json!({"template": "test.sleep", "context": {"seconds": "x"}}),
        )
        .await
        .expect(422);
    assert!(
        invalid["error"]["details"][0]["pointer"]
            .as_str()
            .unwrap()
            .starts_with("/context"),
        "{invalid}"
    );
    let missing = api
        .post("/jobs/queue", json!({"template": "nope", "context": {}}))
        .await;
    assert!([404, 422].contains(&missing.status.as_u16()), "{missing:?}");

    let one = api.get("/jobs/queue/urgent").await.expect(200);
    assert_eq!(one["position"], 1);
    let two = api.get(&format!("/jobs/queue/{first}")).await.expect(200);
    assert_eq!(two["position"], 2);
    api.get("/jobs/queue/nope").await.expect(404);

    let list = api.get("/jobs/queue").await.expect(200);
    assert_eq!(list["total"], 3);
    assert_eq!(list["items"][0]["job_run_identifier"], "urgent");
    let avail = api.get("/jobs/queue?status=AVAILABLE").await.expect(200);
    assert_eq!(avail["total"], 3);
    let running = api.get("/jobs/queue?status=running").await.expect(200);
    assert_eq!(running["total"], 0);

    api.call(Method::DELETE, "/jobs/queue/later", None)
        .await
        .expect(204);
    api.call(Method::DELETE, "/jobs/queue/later", None)
        .await
        .expect(404);
    let stop = api
        .call(Method::POST, "/jobs/queue/urgent/stop", None)
        .await
        .expect(409);
    assert_eq!(stop["error"]["code"], "conflict");
    api.call(Method::POST, "/jobs/queue/nope/stop", None)
        .await
        .expect(404);
}

pub(crate) async fn enqueue_with_trigger_runs_the_job(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let e = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {"hello": "world"},
                   "job_run_identifier": "t1", "trigger_engine": true}),
        )
        .await
        .expect(201);
    assert_eq!(e["engine"]["start"]["ok_count"], 1, "{e}");
    assert_eq!(e["engine"]["expire"]["error_count"], 0);
    let runs = api
        .wait_for("/jobs/runs?identifier=t1", |a| {
            a.body["items"][0]["status"] == "DONE"
        })
        .await
        .expect(200);
    let run = &runs["items"][0];
    assert_eq!(run["result"], "SUCCEEDED");
    assert_eq!(run["output"], json!({"hello": "world"}));
    assert_eq!(run["retry"], 0);
    api.get("/jobs/queue/t1").await.expect(404);
}

pub(crate) async fn stop_and_remove_a_running_entry(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    for id in ["s1", "s2"] {
        api.post(
            "/jobs/queue",
            json!({"template": "test.sleep", "context": {"seconds": 30},
                   "job_run_identifier": id}),
        )
        .await
        .expect(201);
    }
    let report = api
        .call(Method::POST, "/jobs/engine/run", None)
        .await
        .expect(200);
    assert_eq!(report["start"]["ok_count"], 2);
    let running = api.get("/jobs/queue/s1").await.expect(200);
    assert_eq!(running["status"], "RUNNING");
    assert_eq!(running["position"], Value::Null);
    assert!(running["current_run_id"].is_i64());

    let stopped = api
        .call(Method::POST, "/jobs/queue/s1/stop", None)
        .await
        .expect(200);
    assert_eq!(stopped["job_run_identifier"], "s1");
    assert_eq!(stopped["stopped_run_id"], running["current_run_id"]);
    let after = api.get("/jobs/queue/s1").await.expect(200);
    assert_eq!(after["status"], "AVAILABLE");
    let run = api
        .get(&format!("/jobs/runs/{}", stopped["stopped_run_id"]))
        .await
        .expect(200);
    assert_eq!(run["result"], "FAILED");
    assert_eq!(run["reason"], "Stopped");

    api.call(Method::DELETE, "/jobs/queue/s2", None)
        .await
        .expect(204);
    api.get("/jobs/queue/s2").await.expect(404);
    let removed = api.get("/jobs/runs?identifier=s2").await.expect(200);
    assert_eq!(removed["items"][0]["reason"], "Removed");
    api.node.shutdown(Duration::ZERO).await;
}

pub(crate) async fn runs_history_and_filters(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    api.post(
        "/jobs/queue",
        json!({"template": "test.echo", "context": {}, "job_run_identifier": "ok"}),
    )
    .await
    .expect(201);
    api.post(
        "/jobs/queue",
        json!({"template": "test.fail", "context": {"message": "boom"},
               "job_run_identifier": "ko", "max_retries": 0}),
    )
    .await
    .expect(201);
    api.call(Method::POST, "/jobs/engine/run", None)
        .await
        .expect(200);
    let done = api
        .wait_for("/jobs/runs?status=DONE", |a| a.body["total"] == 2)
        .await
        .expect(200);
    let run = &done["items"][0];
    for key in [
        "id",
        "job_run_identifier",
        "template",
        "retry",
        "node",
        "status",
        "result",
        "reason",
        "started_at",
        "timeout_at",
        "expires_at",
        "ended_at",
        "context",
        "output",
        "node_name",
        "job_type",
        "process_name",
    ] {
        assert!(run.get(key).is_some(), "{key} missing in {run}");
    }
    assert_eq!(run["node_name"], "http-test");
    let failed = api.get("/jobs/runs?result=FAILED").await.expect(200);
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["items"][0]["reason"], "boom");
    let ok = api
        .get("/jobs/runs?result=succeeded&identifier=ok")
        .await
        .expect(200);
    assert_eq!(ok["total"], 1);
    let by_template = api.get("/jobs/runs?template=test.fail").await.expect(200);
    assert_eq!(by_template["total"], 1);
    let id = ok["items"][0]["id"].as_i64().unwrap();
    let one = api.get(&format!("/jobs/runs/{id}")).await.expect(200);
    assert_eq!(one["job_run_identifier"], "ok");
    api.get("/jobs/runs/999999999").await.expect(404);
    let limited = api.get("/jobs/runs?limit=1").await.expect(200);
    assert_eq!(limited["items"].as_array().unwrap().len(), 1);
    assert_eq!(limited["total"], 2);
}

pub(crate) async fn engine_run_reports(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    let r = api
        .call(Method::POST, "/jobs/engine/run", None)
        .await
        .expect(200);
    assert_eq!(
        r,
        json!({"start": {"ok_count": 0, "error_count": 0},
               "expire": {"ok_count": 0, "error_count": 0}})
    );
    // A body, even a JSON one, is ignored.
    api.call(Method::POST, "/jobs/engine/run", Some(json!({})))
        .await
        .expect(200);
}

#[tokio::test]
async fn health_answers_ok_then_503_when_the_database_is_down_or_hangs() {
    let store = FaultStore::new(Arc::new(MemoryStore::new()));
    let mut config = ApiConfig::default().with_store_timeout(Duration::from_millis(300));
    config.health_timeout = Duration::from_millis(300);
    let api = Api::start(store.clone(), config).await;
    assert_eq!(
        api.get("/jobs/health").await.expect(200),
        json!({"status": "ok"})
    );

    store.fail_every_call(Fault::Unavailable);
    let down = api.get("/jobs/health").await.expect(503);
    assert_eq!(down["status"], "unavailable");
    assert_eq!(down["error"]["code"], "unavailable");
    let list = api.get("/jobs/templates").await.expect(503);
    assert!(
        !list["error"]["message"]
            .as_str()
            .unwrap()
            .contains("refused")
    );
    api.call(Method::POST, "/jobs/engine/run", None)
        .await
        .expect(503);

    store.fail_every_call(Fault::Hang);
    let started = std::time::Instant::now();
    api.get("/jobs/health").await.expect(503);
    api.get("/jobs/queue").await.expect(503);
    assert!(started.elapsed() < Duration::from_secs(5));

    // Other database failures are 500s whose message reveals nothing.
    store.fail_every_call(Fault::Broken);
    let broken = api.get("/jobs/runs").await.expect(500);
    assert!(!broken.to_string().contains("secret_table"), "{broken}");
    store.heal();
    api.get("/jobs/health").await.expect(200);
}

#[tokio::test]
async fn bearer_token_guards_every_route_but_health() {
    let mut api = Api::start(
        Arc::new(MemoryStore::new()),
        ApiConfig::default().with_auth_token("s3cret"),
    )
    .await;
    api.get("/jobs/templates").await.expect(200);
    api.get("/jobs/openapi.json").await.expect(200);
    let token = api.token.take();
    for (method, path) in bildad_http::routes() {
        let uri = path
            .replace("{code}", "x")
            .replace("{job_run_identifier}", "x")
            .replace("{id}", "1");
        let a = api.call(method.clone(), &uri, Some(json!({}))).await;
        if path == "/jobs/health" {
            a.expect(200);
        } else {
            let body = a.expect(401);
            assert_eq!(body["error"]["code"], "unauthorized", "{method} {path}");
        }
    }
    for bad in [
        "Bearer wrong",
        "Bearer s3cret2",
        "Basic s3cret",
        "s3cret",
        "Bearer ",
    ] {
        let req = Request::get("/jobs/templates")
            .header(header::AUTHORIZATION, bad)
            .body(Body::empty())
            .unwrap();
        api.send(req).await.expect(401);
    }
    let req = Request::get("/jobs/templates")
        .header(header::AUTHORIZATION, "bearer s3cret")
        .body(Body::empty())
        .unwrap();
    api.send(req).await.expect(200);
    api.token = token;
}

#[tokio::test]
async fn openapi_document_lists_exactly_the_routes() {
    let api = Api::start(Arc::new(MemoryStore::new()), ApiConfig::default()).await;
    let doc = api.get("/jobs/openapi.json").await.expect(200);
    assert_eq!(
        doc,
        serde_json::from_str::<Value>(bildad_http::openapi_json()).unwrap()
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = bildad_http::routes()
        .into_iter()
        .map(|(m, p)| (m.to_string(), p.to_owned()))
        .collect();
    assert_eq!(documented, routed);
}

#[tokio::test]
async fn the_api_answers_over_a_real_tcp_listener() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let api = Api::start(store, ApiConfig::default().with_auth_token("tok")).await;
    let app = axum::Router::new().nest("/api", api.app.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let base = format!("http://{addr}/api");

    let health = http
        .get(format!("{base}/jobs/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let denied = http.get(format!("{base}/jobs/queue")).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let created = http
        .post(format!("{base}/jobs/templates"))
        .bearer_auth("tok")
        .json(
            &json!({"code": "test.echo", "name": "Echo", "job_type": "test.echo",
                      "context_schema": {"type": "object"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let queued = http
        .post(format!("{base}/jobs/queue"))
        .bearer_auth("tok")
        .json(&json!({"template": "test.echo", "context": {"a": 1}, "trigger_engine": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(queued.status(), 201);
    let body: Value = queued.json().await.unwrap();
    assert_eq!(body["engine"]["start"]["ok_count"], 1);
    let huge = http
        .post(format!("{base}/jobs/queue"))
        .bearer_auth("tok")
        .header("content-type", "application/json")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    server.abort();
}
