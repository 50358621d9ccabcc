//! Bad input is a 4xx in the error envelope, never a 500.

use crate::{Api, backends};
use axum::body::Body;
use axum::http::{Method, Request, header};
use bildad_core::JobStore;
use bildad_http::ApiConfig;
use serde_json::{Value, json};
use std::sync::Arc;

backends!(
    bad_input_is_never_a_500,
    nul_text_is_a_422_naming_the_field,
    unknown_fields_are_named_once,
    whole_numbers_with_a_fraction_are_integers,
);

/// `(method, path, content type, body, expected status)`.
type Case = (&'static str, String, Option<&'static str>, String, u16);

fn cases() -> Vec<Case> {
    let json = Some("application/json");
    let q = |body: &str| -> String {
        format!(r#"{{"template": "test.echo", "context": {{}}, {body}}}"#)
    };
    let t = |body: &str| -> String {
        format!(
            r#"{{"code": "x1", "name": "x", "job_type": "test.echo", "context_schema": {{}}, {body}}}"#
        )
    };
    let mut v: Vec<Case> = vec![
        // Malformed bodies.
        ("POST", "/jobs/queue".into(), json, "{".into(), 400),
        ("POST", "/jobs/queue".into(), json, "".into(), 400),
        ("POST", "/jobs/queue".into(), json, "nul".into(), 400),
        ("POST", "/jobs/queue".into(), json, "\u{0}\u{1}".into(), 400),
        ("POST", "/jobs/templates".into(), json, "[1,".into(), 400),
        ("PATCH", "/jobs/templates/test.echo".into(), json, "{]".into(), 400),
        // Not JSON at all.
        ("POST", "/jobs/queue".into(), None, q(r#""priority": 1"#), 415),
        ("POST", "/jobs/queue".into(), Some("text/plain"), q(r#""priority": 1"#), 415),
        // Oversized.
        ("POST", "/jobs/queue".into(), json, format!(r#"{{"template": "{}"}}"#, "a".repeat(2 << 20)), 413),
        // Wrong shapes and types.
        ("POST", "/jobs/queue".into(), json, "[]".into(), 422),
        ("POST", "/jobs/queue".into(), json, "\"text\"".into(), 422),
        ("POST", "/jobs/queue".into(), json, "{}".into(), 422),
        ("POST", "/jobs/queue".into(), json, r#"{"template": "test.echo"}"#.into(), 422),
        ("POST", "/jobs/queue".into(), json, r#"{"template": 5, "context": {}}"#.into(), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""priority": "high""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""priority": 1.5"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""priority": 99999999999999999999"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""timeout_seconds": -1"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""timeout_seconds": 0"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""timeout_seconds": 2147483647"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""timeout_seconds": 1e300"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""max_retries": -1"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""max_retries": 4294967296"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""trigger_engine": "yes""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""prority": 1"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""run_at": "tomorrow""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""run_at": "2024-13-45T00:00:00Z""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""run_at": "2024-01-01""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""run_at": 1700000000"#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""run_at": "+275760-09-13T00:00:00Z""#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""job_run_identifier": """#), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""job_run_identifier": "a/b""#), 422),
        ("POST", "/jobs/queue".into(), json, q(&format!(r#""job_run_identifier": "{}""#, "x".repeat(300))), 422),
        ("POST", "/jobs/queue".into(), json, q(r#""job_run_identifier": "a\u0000b""#), 422),
        ("POST", "/jobs/queue".into(), json, r#"{"template": "x'; DROP TABLE job_queue;--", "context": {}}"#.into(), 422),
        ("POST", "/jobs/templates".into(), json, t(r#""default_timeout_seconds": -5"#), 422),
        ("POST", "/jobs/templates".into(), json, t(r#""default_max_retries": 100000"#), 422),
        ("POST", "/jobs/templates".into(), json, t(r#""display_order": 1e10"#), 422),
        ("POST", "/jobs/templates".into(), json, t(r#""active": "yes""#), 422),
        ("POST", "/jobs/templates".into(), json, r#"{"code": "a b", "name": "", "job_type": "test.echo", "context_schema": {}}"#.into(), 422),
        ("POST", "/jobs/templates".into(), json, r#"{"code": "s", "name": "s", "job_type": "t", "context_schema": {"$ref": "file:///etc/passwd"}}"#.into(), 422),
        ("POST", "/jobs/templates".into(), json, r#"{"code": "s", "name": "s", "job_type": "t", "context_schema": 12}"#.into(), 422),
        ("PATCH", "/jobs/templates/test.echo".into(), json, r#"{"code": "new"}"#.into(), 422),
        ("PATCH", "/jobs/templates/test.echo".into(), json, r#"{"default_max_retries": -1}"#.into(), 422),
        // Query parameters.
        ("GET", "/jobs/queue?status=DONE".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?status=".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?result=".into(), None, String::new(), 422),
        ("GET", "/jobs/templates?filter=".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?limit=".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?page=".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?identifier=&template=&node=".into(), None, String::new(), 200),
        ("GET", "/jobs/queue?status=%27%3B--".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?limit=0".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?limit=501".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?limit=-1".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?limit=abc".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?page=-1".into(), None, String::new(), 422),
        ("GET", "/jobs/queue?page=99999999999999".into(), None, String::new(), 422),
        ("GET", "/jobs/templates?filter=some".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?status=FAILED".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?result=MAYBE".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?identifier=%00".into(), None, String::new(), 422),
        ("GET", "/jobs/runs?identifier=x%27%20OR%201%3D1--".into(), None, String::new(), 200),
        ("GET", "/jobs/queue?page=%ZZ".into(), None, String::new(), 422),
        // Path parameters.
        ("GET", "/jobs/runs/abc".into(), None, String::new(), 422),
        ("GET", "/jobs/runs/-1".into(), None, String::new(), 422),
        ("GET", "/jobs/runs/0".into(), None, String::new(), 422),
        ("GET", "/jobs/runs/99999999999999999999999".into(), None, String::new(), 422),
        ("GET", "/jobs/runs/9223372036854775807".into(), None, String::new(), 404),
        ("GET", "/jobs/queue/x%27%3B%20DROP%20TABLE%20job_queue%3B--".into(), None, String::new(), 404),
        ("DELETE", "/jobs/queue/%27%20OR%20%271%27%3D%271".into(), None, String::new(), 404),
        ("POST", "/jobs/queue/%22%3B--/stop".into(), None, String::new(), 404),
        ("GET", "/jobs/templates/%27%20OR%201%3D1".into(), None, String::new(), 404),
        ("GET", format!("/jobs/queue/{}", "x".repeat(300)), None, String::new(), 422),
        ("GET", "/jobs/queue/a%00b".into(), None, String::new(), 422),
        ("GET", "/jobs/queue/%FF%FE".into(), None, String::new(), 400),
        // Routing.
        ("GET", "/jobs/nope".into(), None, String::new(), 404),
        ("GET", "/".into(), None, String::new(), 404),
        ("GET", "/jobs/queue/a/b/c".into(), None, String::new(), 404),
        ("PUT", "/jobs/queue".into(), json, "{}".into(), 405),
        ("DELETE", "/jobs/templates".into(), None, String::new(), 405),
        ("GET", "/jobs/engine/run".into(), None, String::new(), 405),
        ("POST", "/jobs/health".into(), None, String::new(), 405),
    ];
    v.retain(|c| !c.1.is_empty());
    v
}

pub(crate) async fn bad_input_is_never_a_500(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let mut failures = Vec::new();
    for (method, path, ct, body, expected) in cases() {
        let mut req = Request::builder().method(method).uri(&path);
        if let Some(ct) = ct {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let answer = api.send(req.body(Body::from(body.clone())).unwrap()).await;
        let short: String = body.chars().take(80).collect();
        if answer.status.as_u16() != expected {
            failures.push(format!(
                "{method} {} {short}: expected {expected}, got {} {}",
                &path[..path.len().min(80)],
                answer.status,
                answer.body
            ));
        } else if expected >= 400 {
            let e = &answer.body["error"];
            if !(e["code"].is_string() && e["message"].is_string() && e["details"].is_array()) {
                failures.push(format!("{method} {path}: no envelope: {}", answer.body));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A `\u0000` anywhere a caller sends text is a 422 whose pointer names the field, on
/// every store (PostgreSQL cannot store it: it used to be a 500 there).
pub(crate) async fn nul_text_is_a_422_naming_the_field(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let nul = "a\u{0}b";
    let entry = |extra: Value| {
        let mut b = json!({"template": "test.echo", "context": {}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let template = |extra: Value| {
        let mut b = json!({"code": "nul.t", "name": "n", "job_type": "test.echo",
                           "context_schema": {"type": "object"}});
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    let cases: Vec<(Method, &str, Value, &str)> = vec![
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"context": {"k": nul}})),
            "/context/k",
        ),
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"context": {"deep": [1, {"x": nul}]}})),
            "/context/deep/1/x",
        ),
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"context": {nul: 1}})),
            "/context",
        ),
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"context": nul})),
            "/context",
        ),
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"template": nul})),
            "/template",
        ),
        (
            Method::POST,
            "/jobs/queue",
            entry(json!({"job_run_identifier": nul})),
            "/job_run_identifier",
        ),
        (
            Method::POST,
            "/jobs/templates",
            template(json!({"context_schema": {"description": nul}})),
            "/context_schema/description",
        ),
        (
            Method::POST,
            "/jobs/templates",
            template(json!({"context_schema": {"properties": {nul: {}}}})),
            "/context_schema/properties",
        ),
        (
            Method::POST,
            "/jobs/templates",
            template(json!({"code": nul})),
            "/code",
        ),
        (
            Method::POST,
            "/jobs/templates",
            template(json!({"name": nul})),
            "/name",
        ),
        (
            Method::POST,
            "/jobs/templates",
            template(json!({"job_type": nul})),
            "/job_type",
        ),
        (
            Method::PATCH,
            "/jobs/templates/test.echo",
            json!({"context_schema": {"title": nul}}),
            "/context_schema/title",
        ),
        (
            Method::PATCH,
            "/jobs/templates/test.echo",
            json!({"name": nul}),
            "/name",
        ),
        (
            Method::PATCH,
            "/jobs/templates/test.echo",
            json!({"job_type": nul}),
            "/job_type",
        ),
    ];
    let mut failures = Vec::new();
    for (method, path, body, pointer) in cases {
        let a = api.call(method.clone(), path, Some(body.clone())).await;
        let pointers: Vec<&str> = a.body["error"]["details"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["pointer"].as_str())
            .collect();
        if a.status != 422 || !pointers.contains(&pointer) {
            failures.push(format!("{method} {path} {body}: {} {}", a.status, a.body));
        }
    }
    for path in [
        "/jobs/templates/a%00b",
        "/jobs/queue/a%00b",
        "/jobs/runs?template=a%00b",
    ] {
        let a = api.get(path).await;
        if a.status != 422 {
            failures.push(format!("GET {path}: {} {}", a.status, a.body));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// An unknown field is named once: `/queue`, not `/queue/queue`.
pub(crate) async fn unknown_fields_are_named_once(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let a = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {}, "queue": 1}),
        )
        .await
        .expect(422);
    assert_eq!(a["error"]["details"][0]["pointer"], "/queue", "{a}");
    let a = api
        .post("/jobs/queue", json!({"context": {}}))
        .await
        .expect(422);
    assert_eq!(a["error"]["details"][0]["pointer"], "/template", "{a}");
    let a = api
        .call(
            Method::PATCH,
            "/jobs/templates/test.echo",
            Some(json!({"a/b": 1})),
        )
        .await
        .expect(422);
    assert_eq!(a["error"]["details"][0]["pointer"], "/a~1b", "{a}");
}

/// JSON Schema's `integer` (the document's) includes `5.0`: it is 5. `1.5` is not.
pub(crate) async fn whole_numbers_with_a_fraction_are_integers(store: Arc<dyn JobStore>) {
    let api = Api::start(store, ApiConfig::default()).await;
    api.templates().await;
    let e = api
        .post(
            "/jobs/queue",
            json!({"template": "test.echo", "context": {}, "priority": 2.0,
                   "timeout_seconds": 6e1, "max_retries": 0.0}),
        )
        .await
        .expect(201);
    assert_eq!(
        (&e["priority"], &e["timeout_seconds"], &e["max_retries"]),
        (&json!(2), &json!(60), &json!(0))
    );
    let t = api
        .call(
            Method::PATCH,
            "/jobs/templates/test.echo",
            Some(json!({"default_max_retries": 500.0, "display_order": -3.0})),
        )
        .await
        .expect(200);
    assert_eq!(t["default_max_retries"], 500);
    assert_eq!(t["display_order"], -3);
    for bad in [
        json!(1.5),
        json!(3e9),
        json!(-3e9),
        json!(1e300),
        json!("1"),
    ] {
        let a = api
            .post(
                "/jobs/queue",
                json!({"template": "test.echo", "context": {}, "priority": bad}),
            )
            .await
            .expect(422);
        assert_eq!(a["error"]["details"][0]["pointer"], "/priority", "{a}");
    }
}
