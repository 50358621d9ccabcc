//! Hostile input for the HTTP API, driven by its OpenAPI document: for every documented
//! route, requests with odd path values, query values of the wrong type, bodies that
//! miss fields, carry wrong types, huge numbers, odd strings or random JSON, or are not
//! JSON at all. Zero 5xx (a panic would be a 500 from the catch-panic layer), every
//! error is the JSON envelope, and the store is unchanged by every rejected request
//! and by every read.
//!
//! It runs on every store (MemoryStore, SQLite, PostgreSQL) with the same number of
//! cases: `BILDAD_FUZZ_CASES` sets it (default 2,000).

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use bildad_core::{
    EntryStatus, JobRegistry, JobStore, NewEntry, NewTemplate, NodeRef, PageRequest, RunFilter,
    TemplateFilter,
};
use bildad_http::{ApiConfig, openapi_json, router};
use bildad_runtime::Engine;
use bildad_tests::TestStore;
use http_body_util::BodyExt;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value, json};
use std::rc::Rc;
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "fuzz-token";

/// One documented operation.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    /// `(name, in, schema)`.
    params: Vec<(String, String, Value)>,
    body: Option<Value>,
}

fn operations() -> Vec<Operation> {
    let doc: Value = serde_json::from_str(openapi_json()).expect("the OpenAPI document is JSON");
    let schemas = doc["components"]["schemas"].clone();
    let resolve = |s: &Value| -> Value {
        match s.get("$ref").and_then(Value::as_str) {
            Some(r) => schemas[r.trim_start_matches("#/components/schemas/")].clone(),
            None => s.clone(),
        }
    };
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            let params = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    (
                        p["name"].as_str().unwrap_or_default().to_owned(),
                        p["in"].as_str().unwrap_or_default().to_owned(),
                        resolve(&p["schema"]),
                    )
                })
                .collect();
            let body = op["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|s| resolve(&Value::Object(s.clone())));
            ops.push(Operation {
                method,
                path: path.clone(),
                params,
                body,
            });
        }
    }
    assert!(ops.len() >= 15, "the document lists every route: {ops:?}");
    ops
}

/// Strings an attacker or a confused client sends.
fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("fz.echo".to_owned()),
        Just("fz-entry-1".to_owned()),
        Just("demo.echo".to_owned()),
        Just("../../etc/passwd".to_owned()),
        Just("' OR 1=1; DROP TABLE bildad_runs; --".to_owned()),
        Just("<script>alert(1)</script>".to_owned()),
        Just("\u{0}\u{1}\u{7f}".to_owned()),
        Just("ünïcödé ✓ 🚀 \u{202e}".to_owned()),
        Just("a".repeat(5000)),
        Just("%".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999999999".to_owned()),
        Just("1e309".to_owned()),
        Just("NaN".to_owned()),
        Just("true".to_owned()),
        Just("null".to_owned()),
        Just("2026-13-45T99:99:99Z".to_owned()),
        "\\PC{0,40}",
        "[a-z.\\-_0-9]{1,20}",
    ]
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(1e300)),
        Just(json!(-9_223_372_036_854_775_808_i64)),
        Just(json!(18_446_744_073_709_551_615_u64)),
        odd_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(odd_string(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The JSON type a schema declares: `"integer"`, or the non-null one of an OpenAPI
/// 3.1 `["integer", "null"]`; `oneOf` alternatives give their first type.
fn type_of(schema: &Value) -> Option<&str> {
    match &schema["type"] {
        Value::String(t) => Some(t.as_str()),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => schema["oneOf"]
            .as_array()
            .and_then(|alts| alts.iter().find_map(type_of)),
    }
}

/// A value for a field of `schema`: often valid, often not.
fn field_value(schema: &Value) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match type_of(schema) {
        Some("integer") => prop_oneof![
            6 => (0i64..10).prop_map(|n| json!(n)),
            3 => (-5i64..1005).prop_map(|n| json!(n)),
            1 => Just(json!(i64::MAX)),
            1 => Just(json!(u64::MAX)),
            1 => Just(json!(i64::MIN)),
            1 => Just(json!(2_147_483_648_i64)),
            1 => Just(json!(1.5)),
            1 => Just(json!("7")),
        ]
        .boxed(),
        Some("boolean") => {
            prop_oneof![any::<bool>().prop_map(Value::Bool), Just(json!("true"))].boxed()
        }
        Some("string") if schema["format"] == "date-time" => prop_oneof![
            Just(json!("2026-01-01T00:00:00Z")),
            Just(json!("2026-01-01T00:00:00+14:00")),
            Just(json!("+275760-09-13T00:00:00Z")),
            Just(json!("-0001-01-01T00:00:00Z")),
            odd_string().prop_map(Value::String),
        ]
        .boxed(),
        // Often a value that works, so that accepted requests are exercised too.
        Some("string") => prop_oneof![
            2 => Just(json!("fz.echo")),
            2 => "[a-z]{6,12}".prop_map(Value::String),
            5 => odd_string().prop_map(Value::String),
        ]
        .boxed(),
        Some("object") => prop_oneof![
            Just(json!({"type": "object"})),
            Just(json!({"type": "object", "properties": {"n": {"type": "integer"}}})),
            Just(json!({"$ref": "https://example.com/s.json"})),
            Just(json!({"$ref": "#/$defs/missing"})),
            Just(json!({"type": 12})),
            // PostgreSQL cannot store a NUL: a 422, never a 500 (SPEC §4).
            Just(json!({"type": "object", "description": "nul \u{0} inside"})),
            any_json(),
        ]
        .boxed(),
        _ => prop_oneof![
            Just(json!({})),
            Just(json!({"n": 1, "message": "x", "seconds": 0, "fail_times": 1})),
            Just(json!({"n": "nul \u{0} inside", "k\u{0}": [0]})),
            any_json(),
        ]
        .boxed(),
    };
    prop_oneof![8 => typed, 2 => any_json()].boxed()
}

/// A value of field `name` that the API accepts (mostly), for well-formed bodies.
fn valid_value(name: &str, schema: &Value) -> BoxedStrategy<Value> {
    match (name, type_of(schema)) {
        ("template" | "code" | "job_type", _) => Just(json!("fz.echo")).boxed(),
        ("context_schema", _) => prop_oneof![
            3 => Just(json!({"type": "object"})),
            1 => Just(json!({"type": "object", "title": "\u{0}"})),
        ]
        .boxed(),
        ("context", _) => prop_oneof![
            3 => Just(json!({"n": 1})),
            1 => Just(json!({"n": [1, "\u{0}"]})),
        ]
        .boxed(),
        (_, Some("integer")) => {
            let lo = schema["minimum"].as_i64().unwrap_or(0);
            (lo..lo + 10).prop_map(|n| json!(n)).boxed()
        }
        (_, Some("boolean")) => any::<bool>().prop_map(Value::Bool).boxed(),
        (_, Some("string")) if schema["format"] == "date-time" => {
            Just(json!("2026-01-01T00:00:00Z")).boxed()
        }
        _ => "[a-z]{6,12}".prop_map(Value::String).boxed(),
    }
}

/// A body for an operation with `schema`.
fn body_for(schema: Option<Value>) -> BoxedStrategy<Option<Vec<u8>>> {
    let raw = prop_oneof![
        Just(None),
        Just(Some(b"{".to_vec())),
        Just(Some(b"\xff\xfe not utf-8".to_vec())),
        Just(Some(b"[1,2,3]".to_vec())),
        Just(Some(b"{\"a\":1,\"a\":2}".to_vec())),
        Just(Some(
            format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes()
        )),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Some),
        any_json().prop_map(|v| Some(v.to_string().into_bytes())),
    ];
    let Some(schema) = schema else {
        return prop_oneof![3 => Just(None), 1 => raw].boxed();
    };
    let props: Vec<(String, Value)> = schema["properties"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = props
        .into_iter()
        .map(|(k, s)| {
            prop::option::weighted(0.7, field_value(&s).prop_map(move |v| (k.clone(), v))).boxed()
        })
        .collect();
    let object = (
        fields,
        prop::option::weighted(0.15, (odd_string(), any_json())),
    )
        .prop_map(|(fields, extra)| {
            let mut m = Map::new();
            for (k, v) in fields.into_iter().flatten() {
                m.insert(k, v);
            }
            if let Some((k, v)) = extra {
                m.insert(k, v);
            }
            Some(Value::Object(m).to_string().into_bytes())
        });
    let required: Vec<String> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let good: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, s)| {
            let (k, strat) = (k.clone(), valid_value(k, s));
            if required.contains(&k) {
                strat.prop_map(move |v| Some((k.clone(), v))).boxed()
            } else {
                prop::option::of(strat.prop_map(move |v| (k.clone(), v))).boxed()
            }
        })
        .collect();
    let well_formed = good.prop_map(|fields| {
        let m: Map<String, Value> = fields.into_iter().flatten().collect();
        Some(Value::Object(m).to_string().into_bytes())
    });
    prop_oneof![3 => object, 2 => well_formed, 1 => raw].boxed()
}

/// A request for `op`: `(method, uri, body, content type, authorization)`.
type Case = (
    Method,
    String,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
);

fn request_for(op: Operation) -> BoxedStrategy<Case> {
    let path_params: Vec<String> = op
        .params
        .iter()
        .filter(|p| p.1 == "path")
        .map(|p| p.0.clone())
        .collect();
    let query: Vec<(String, Value)> = op
        .params
        .iter()
        .filter(|p| p.1 == "query")
        .map(|p| (p.0.clone(), p.2.clone()))
        .collect();
    let path_values = prop::collection::vec(odd_string(), path_params.len());
    let query_values: Vec<BoxedStrategy<Option<(String, String)>>> = query
        .into_iter()
        .map(|(k, s)| {
            let valid: BoxedStrategy<String> = match s["enum"].as_array() {
                Some(e) => {
                    let e: Vec<String> = e
                        .iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect();
                    prop::sample::select(e).boxed()
                }
                None if type_of(&s) == Some("integer") => {
                    (0u64..600).prop_map(|n| n.to_string()).boxed()
                }
                None => odd_string().boxed(),
            };
            prop::option::of(prop_oneof![valid, odd_string()].prop_map(move |v| (k.clone(), v)))
                .boxed()
        })
        .collect();
    let content_type = prop_oneof![
        8 => Just(Some("application/json".to_owned())),
        1 => Just(None),
        1 => Just(Some("text/plain".to_owned())),
    ];
    let auth = prop_oneof![
        18 => Just(Some(format!("Bearer {TOKEN}"))),
        1 => Just(None),
        1 => Just(Some("Bearer wrong".to_owned())),
    ];
    let method = op.method.clone();
    let template = op.path.clone();
    (
        path_values,
        query_values,
        body_for(op.body),
        content_type,
        auth,
    )
        .prop_map(move |(pv, qv, body, ct, auth)| {
            let mut path = template.clone();
            for (name, v) in path_params.iter().zip(pv) {
                path = path.replace(&format!("{{{name}}}"), &encode(&v));
            }
            let q: Vec<String> = qv
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{k}={}", encode(&v)))
                .collect();
            if !q.is_empty() {
                path = format!("{path}?{}", q.join("&"));
            }
            (method.clone(), path, body, ct, auth)
        })
        .boxed()
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Everything a request could change, read through the store.
async fn snapshot(store: &dyn JobStore) -> String {
    let page = PageRequest::new(0, 500).expect("page");
    let stats = store.stats().await.expect("stats");
    let templates = store
        .list_templates(TemplateFilter::All, page)
        .await
        .expect("templates");
    let available = store
        .list_entries(Some(EntryStatus::Available), page)
        .await
        .expect("entries");
    let running = store
        .list_entries(Some(EntryStatus::Running), page)
        .await
        .expect("entries");
    let runs = store
        .list_runs(RunFilter::default(), page)
        .await
        .expect("runs");
    format!("{stats:?}\n{templates:?}\n{available:?}\n{running:?}\n{runs:?}")
}

/// Which store the fuzzer runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Memory,
    Sqlite,
    Postgres,
    Mysql,
}

/// The API over a fresh store of `backend`, and the store (kept alive with it).
type Target = (Router, Arc<dyn JobStore>, Rc<TestStore>);

/// A store with a template and an entry to aim at, and the API over it. The engine
/// knows no job type, so nothing runs in the background and the store changes only by
/// requests. `None` when PostgreSQL is out of reach (and not required).
async fn api(backend: Backend) -> Option<Target> {
    let keep = match backend {
        Backend::Memory => bildad_tests::memory(),
        Backend::Sqlite => bildad_tests::sqlite().await,
        Backend::Postgres => bildad_tests::postgres().await?,
        Backend::Mysql => bildad_tests::mysql().await?,
    };
    let store = keep.store.clone();
    let mut t = NewTemplate::new("fz.echo", "fuzz", "fz.echo", json!({"type": "object"}));
    t.default_max_retries = 1;
    store.create_template(t).await.expect("template");
    let mut e = NewEntry::new("fz.echo", json!({"n": 1}));
    e.job_run_identifier = Some("fz-entry-1".into());
    store.enqueue(e).await.expect("entry");
    let config = bildad_tests::fast_config("fuzz");
    let (engine, _executor) = Engine::with_tokio_executor(
        store.clone(),
        JobRegistry::new(),
        config,
        NodeRef::new("fuzz"),
    );
    let app = router(engine, ApiConfig::default().with_auth_token(TOKEN));
    Some((app, store, Rc::new(keep)))
}

fn cases(default: u32) -> u32 {
    std::env::var("BILDAD_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn http_api_survives_hostile_requests() {
    fuzz(Backend::Memory);
}

#[test]
fn http_api_survives_hostile_requests_on_sqlite() {
    fuzz(Backend::Sqlite);
}

#[test]
fn http_api_survives_hostile_requests_on_postgres() {
    fuzz(Backend::Postgres);
}

#[test]
fn http_api_survives_hostile_requests_on_mysql() {
    fuzz(Backend::Mysql);
}

fn fuzz(backend: Backend) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ops = operations();
    let strategy = prop::sample::select(ops).prop_flat_map(request_for);
    let n = cases(2000);
    let mut runner = TestRunner::new(Config {
        cases: n,
        failure_persistence: None,
        ..Config::default()
    });
    let Some(first) = rt.block_on(api(backend)) else {
        eprintln!("http fuzz: PostgreSQL unreachable, skipped");
        return;
    };
    let state = std::sync::Mutex::new((first, 0u32));
    let seen = std::sync::Mutex::new(std::collections::BTreeMap::<u16, u32>::new());
    let result = runner.run(&strategy, |(method, uri, body, ct, auth)| {
        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
        // A fresh store now and then keeps snapshots cheap.
        guard.1 += 1;
        if guard.1.is_multiple_of(500) {
            guard.0 = rt
                .block_on(api(backend))
                .expect("the store is still reachable");
        }
        let (app, store, _keep) = guard.0.clone();
        let is_read = method == Method::GET;
        let (status, envelope, changed) = rt.block_on(async {
            let before = snapshot(&*store).await;
            let mut req = Request::builder().method(method.clone()).uri(&uri);
            if let Some(ct) = &ct {
                req = req.header("content-type", ct);
            }
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let req = req
                .body(body.clone().map_or_else(Body::empty, Body::from))
                .expect("request");
            let res = app.oneshot(req).await.expect("infallible");
            let status = res.status().as_u16();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            let envelope = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .is_some_and(|v| {
                    v["error"]["code"].is_string() && v["error"]["message"].is_string()
                });
            let after = snapshot(&*store).await;
            (status, envelope, before != after)
        });
        *seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_insert(0) += 1;
        let shown = || {
            let b = body
                .as_deref()
                .map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned());
            format!("{method} {uri} ct={ct:?} auth={auth:?} body={b:?}")
        };
        if status >= 500 {
            return Err(TestCaseError::fail(format!("{status} for {}", shown())));
        }
        if status >= 400 && !envelope {
            return Err(TestCaseError::fail(format!(
                "{status} without the error envelope for {}",
                shown()
            )));
        }
        if changed && (status >= 400 || is_read) {
            return Err(TestCaseError::fail(format!(
                "{status} changed the store: {}",
                shown()
            )));
        }
        Ok(())
    });
    let seen = seen.into_inner().unwrap_or_default();
    eprintln!("http fuzz on {backend:?}: {n} cases, answers by status {seen:?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    // The generator reaches both sides of the API.
    assert!(seen.keys().any(|s| *s < 300), "no success at all: {seen:?}");
    assert!(seen.keys().any(|s| *s == 422), "no 422 at all: {seen:?}");
    assert!(seen.contains_key(&201), "nothing ever created: {seen:?}");
}
