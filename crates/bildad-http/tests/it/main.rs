//! The HTTP API through the router (`oneshot`) and through a real TCP listener.
//!
//! Every test body takes a store, so the same checks run on every backend the test
//! binary can reach (see `backends!`).

mod bad_input;
#[cfg(feature = "dashboard")]
mod dashboard;
mod metrics;
mod origin;
mod queues;
mod routes;
mod schedules;
mod unique;
#[cfg(feature = "api-viewer")]
mod viewer;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use bildad_core::{JobContext, JobError, JobRegistry, JobStore, NodeConfig};
use bildad_http::{ApiConfig, router};
use bildad_runtime::NodeRuntime;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// A node on `store` with test jobs, and its API.
pub(crate) struct Api {
    pub(crate) app: Router,
    pub(crate) node: NodeRuntime,
    pub(crate) token: Option<String>,
}

/// An answer: status and JSON body (`Null` when empty).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// Asserts the status, and for errors the envelope with `code`.
    #[track_caller]
    pub(crate) fn expect(self, status: u16) -> Value {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        if status >= 400 {
            let e = &self.body["error"];
            assert!(e["code"].is_string(), "no error envelope: {}", self.body);
            assert!(e["message"].is_string(), "no error message: {}", self.body);
            assert!(e["details"].is_array(), "no error details: {}", self.body);
        }
        self.body
    }
}

pub(crate) fn registry() -> JobRegistry {
    async fn echo(ctx: JobContext) -> Result<Option<Value>, JobError> {
        Ok(Some(ctx.context))
    }
    async fn sleep(ctx: JobContext) -> Result<Option<Value>, JobError> {
        let s = ctx.context["seconds"].as_f64().unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs_f64(s)).await;
        Ok(None)
    }
    async fn fail(ctx: JobContext) -> Result<Option<Value>, JobError> {
        Err(JobError::msg(
            ctx.context["message"].as_str().unwrap_or("failed"),
        ))
    }
    JobRegistry::new()
        .with("test.echo", echo)
        .with("test.sleep", sleep)
        .with("test.fail", fail)
}

impl Api {
    pub(crate) async fn start(store: Arc<dyn JobStore>, config: ApiConfig) -> Self {
        // RUST_LOG=warn shows what the API logs (e.g. the cause of a 500).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let node_config = NodeConfig {
            node_name: "http-test".into(),
            backoff: bildad_core::Backoff::immediate(),
            ..NodeConfig::default()
        };
        let node = NodeRuntime::start(store, registry(), node_config)
            .await
            .expect("node starts");
        let token = config.auth_token.clone();
        let app = router(node.engine().clone(), config);
        Self { app, node, token }
    }

    /// A request with a JSON body (when given) and the configured token.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.send(req.unwrap()).await
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let text = res
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"text/plain"));
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else if text {
            // The metrics' exposition format: the text as one string.
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
        };
        Answer { status, body }
    }

    pub(crate) async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Creates the templates of the test job types (code = type name).
    pub(crate) async fn templates(&self) {
        for (code, schema) in [
            ("test.echo", json!({"type": "object"})),
            (
                "test.sleep",
                json!({"type": "object", "required": ["seconds"],
                       "properties": {"seconds": {"type": "number", "minimum": 0}}}),
            ),
            (
                "test.fail",
                json!({"type": "object", "properties": {"message": {"type": "string"}}}),
            ),
        ] {
            self.post(
                "/jobs/templates",
                json!({"code": code, "name": code, "job_type": code, "context_schema": schema,
                       "default_max_retries": 1}),
            )
            .await
            .expect(201);
        }
    }

    /// Polls `GET path` until `done` holds, for at most 10 s.
    pub(crate) async fn wait_for(&self, path: &str, done: impl Fn(&Answer) -> bool) -> Answer {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let a = self.get(path).await;
            if done(&a) {
                return a;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting on {path}: {a:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Instantiates each listed `async fn(Arc<dyn JobStore>)` once per backend.
#[macro_export]
macro_rules! backends {
    ($($name:ident),+ $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(std::sync::Arc::new(bildad_core::MemoryStore::new())).await;
                }
            )+
        }
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = bildad_store_diesel::testing::TestSqlite::fresh().await;
                    super::$name(db.store()).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = bildad_store_diesel::testing::TestPg::fresh().await else {
                        return;
                    };
                    super::$name(db.store()).await;
                }
            )+
        }
    };
}
