//! Bildad's axum adapter: the engine trigger and the REST API of SPEC §4.
//!
//! ```no_run
//! # async fn demo(engine: bildad_runtime::Engine) {
//! use bildad_http::{ApiConfig, router};
//! let app = axum::Router::new()
//!     .merge(router(engine, ApiConfig::default().with_auth_token("s3cret")));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:4000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! With the `api-viewer` feature, [`VIEWER_PATH`] serves an interactive viewer of the
//! OpenAPI document.
//!
//! With the `dashboard` feature, the router also serves an HTML dashboard at
//! [`DASHBOARD_PATH`] (see docs/DASHBOARD.md): the same token signs in, and its pages
//! stay out of [`routes`] and the OpenAPI document.
//!
//! **Architecture invariant:** only this crate knows HTTP and the JSON wire shapes
//! (its `dto` module); it reaches the database only through the engine's
//! `Arc<dyn JobStore>`.

mod config;
#[cfg(feature = "dashboard")]
mod dashboard;
mod dto;
mod error;
mod extract;
pub mod metrics;
mod openapi;
mod origin;
mod queues;
mod routes;
mod schedules;
mod state;
mod trace;
#[cfg(feature = "api-viewer")]
mod viewer;

pub use config::ApiConfig;
pub use error::ApiError;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use bildad_runtime::Engine;
use state::AppState;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use tower_http::catch_panic::CatchPanicLayer;

/// Where the HTML dashboard is served (feature `dashboard`), relative to the router.
#[cfg(feature = "dashboard")]
pub const DASHBOARD_PATH: &str = dashboard::PREFIX;

/// Where the interactive OpenAPI viewer is served (feature `api-viewer`), relative to
/// the router. Like the dashboard, it stays out of [`routes`] and the document.
#[cfg(feature = "api-viewer")]
pub const VIEWER_PATH: &str = "/jobs/docs";

/// The API's routes as `(method, path)`, in the order of SPEC §4. Paths use axum's
/// (and OpenAPI's) `{param}` syntax.
pub fn routes() -> Vec<(Method, &'static str)> {
    routes::table()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect()
}

/// The OpenAPI 3.1 document served at `GET /jobs/openapi.json`, generated from the
/// wire types and the handlers (see docs/HTTP.md).
pub fn openapi_json() -> &'static str {
    openapi::document()
}

/// The Bildad API for `engine`'s node, to merge or nest into an application.
///
/// Every route lives under `/jobs/`. Every answer that is not a success is a JSON
/// error envelope, axum's own rejections (unknown route, wrong method, bad body)
/// included; a panic in a handler is a 500 envelope, logged.
pub fn router(engine: Engine, config: ApiConfig) -> Router {
    let body_limit = config.body_limit;
    let state = AppState {
        engine,
        config: Arc::new(config),
        gauges: Arc::default(),
    };
    metrics::prometheus_recorder();
    let mut public = Router::new();
    let mut protected = Router::new();
    for r in routes::table() {
        if r.public {
            public = public.route(r.path, r.handler);
        } else {
            protected = protected.route(r.path, r.handler);
        }
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), auth));
    #[cfg(feature = "dashboard")]
    let public = public.merge(dashboard::router(state.clone()));
    // The viewer holds the API's description only (the same for every node), never
    // job data: it needs no token, so that a browser can open it.
    #[cfg(feature = "api-viewer")]
    let public = public.route(VIEWER_PATH, axum::routing::get(viewer::page));
    public
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            origin::tokenless_guard,
        ))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panicked))
        .with_state(state)
}

async fn auth(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(expected) = &s.config.auth_token
        && !bearer_matches(&req, expected)
    {
        return ApiError::unauthorized().into_response();
    }
    next.run(req).await
}

fn bearer_matches(req: &Request, expected: &str) -> bool {
    let Some(value) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return false;
    };
    let token = token.trim();
    scheme.eq_ignore_ascii_case("bearer")
        && !expected.is_empty()
        && bool::from(token.as_bytes().ct_eq(expected.as_bytes()))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route; see GET /jobs/openapi.json")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %message, "a request handler panicked");
    ApiError::internal().into_response()
}
