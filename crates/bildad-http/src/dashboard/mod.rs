//! The HTML dashboard at `/jobs/dashboard` (feature `dashboard`): overview, queue,
//! runs, templates and schedules pages, rendered on the server with `maud` (which escapes every
//! interpolated value) and refreshed in place by a small script.
//!
//! The pages are not part of the REST API: they are not in [`crate::routes`] nor in the
//! OpenAPI document. They reach the database through the engine's store only, as the
//! API does. Security (sign-in cookie, same-origin checks, CSRF token, loopback-only
//! without a token) lives in [`auth`].

mod auth;
mod chart;
mod layout;
mod overview;
mod queue;
mod queues;
mod runs;
mod schedules;
mod session;
mod templates;

use crate::error::ApiError;
use crate::state::AppState;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use bildad_core::Violation;
use std::sync::Arc;

pub(crate) use auth::Ctx;
use auth::Keys;

/// Where the dashboard lives inside the router.
pub(crate) const PREFIX: &str = "/jobs/dashboard";

/// The most rows a dashboard page shows.
const MAX_PAGE_SIZE: u32 = 100;

/// The dashboard's state: the API's, and the keys derived from its token.
#[derive(Clone)]
pub(crate) struct Dash {
    pub(crate) app: AppState,
    keys: Arc<Keys>,
}

/// The dashboard's routes, to merge into the API router.
pub(crate) fn router(app: AppState) -> Router<AppState> {
    let keys = Arc::new(Keys::new(app.config.auth_token.as_deref()));
    let dash = Dash { app, keys };
    Router::new()
        .route(PREFIX, get(overview::page))
        .route("/jobs/dashboard/", get(to_overview))
        .route("/jobs/dashboard/queue", get(queue::page))
        .route(
            "/jobs/dashboard/queue/{job_run_identifier}/stop",
            get(queue::confirm_stop).post(queue::stop),
        )
        .route(
            "/jobs/dashboard/queue/{job_run_identifier}/remove",
            get(queue::confirm_remove).post(queue::remove),
        )
        .route("/jobs/dashboard/runs", get(runs::page))
        .route("/jobs/dashboard/runs/{id}", get(runs::detail))
        .route("/jobs/dashboard/templates", get(templates::page))
        .route(
            "/jobs/dashboard/templates/{code}",
            get(templates::form).post(templates::enqueue),
        )
        .route("/jobs/dashboard/schedules", get(schedules::page))
        .route(
            "/jobs/dashboard/schedules/{name}/active",
            post(schedules::set_active),
        )
        .route("/jobs/dashboard/queues", get(queues::page))
        .route("/jobs/dashboard/queues/{name}/pause", post(queues::pause))
        .route("/jobs/dashboard/queues/{name}/resume", post(queues::resume))
        .route("/jobs/dashboard/engine", post(engine_run))
        .route(
            "/jobs/dashboard/login",
            get(auth::login_page).post(auth::login),
        )
        .route("/jobs/dashboard/logout", post(auth::logout))
        .route("/jobs/dashboard/assets/app.css", get(css))
        .route("/jobs/dashboard/assets/app.js", get(js))
        .route_layer(middleware::from_fn_with_state(dash.clone(), auth::guard))
        .layer(middleware::map_response(security_headers))
        .with_state(dash)
}

/// Headers on every dashboard answer: no inline script or style, no framing, no
/// caching of pages that show job data.
async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

async fn to_overview(Extension(ctx): Extension<Ctx>) -> Redirect {
    Redirect::to(&ctx.base)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// `POST /jobs/dashboard/engine`: one engine pass on this node, then back to the page
/// the button was on.
async fn engine_run(
    State(d): State<Dash>,
    Extension(ctx): Extension<Ctx>,
    body: Bytes,
) -> Result<Response, DashError> {
    let form = ctx.read_form(&body)?;
    let engine = d.app.engine.clone();
    let report = d
        .app
        .call(async move { engine.run_once().await })
        .await
        .map_err(|e| ctx.error(e))?;
    // Only the pages that have the button: never a URL from the form.
    let back = form
        .get("back")
        .filter(|p| ["queue", "runs", "templates"].contains(p))
        .unwrap_or_default();
    let query = layout::query(&[
        ("notice", "engine"),
        ("started", &report.start.ok_count.to_string()),
        ("expired", &report.expire.ok_count.to_string()),
        (
            "errors",
            &(report.start.error_count + report.expire.error_count).to_string(),
        ),
    ]);
    Ok(see_other(&ctx.page_url(back, &query)))
}

/// A 303 to `location`: the answer to every successful action (post/redirect/get).
pub(crate) fn see_other(location: &str) -> Response {
    Redirect::to(location).into_response()
}

/// A dashboard failure, rendered as an HTML page.
#[derive(Debug)]
pub(crate) struct DashError {
    status: StatusCode,
    message: String,
    details: Vec<Violation>,
    base: String,
}

impl DashError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>, base: &str) -> Self {
        Self {
            status,
            message: message.into(),
            details: Vec::new(),
            base: base.to_owned(),
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let status = self.status;
        let markup = layout::error_page(status, &self.message, &self.details, &self.base);
        (status, markup).into_response()
    }
}

impl Ctx {
    /// Turns an API failure into an HTML error page.
    pub(crate) fn error(&self, e: ApiError) -> DashError {
        DashError {
            status: e.status(),
            message: e.message().to_owned(),
            details: e.details().to_vec(),
            base: self.base.clone(),
        }
    }

    /// A 404 page.
    pub(crate) fn not_found(&self, what: &str) -> DashError {
        DashError::new(
            StatusCode::NOT_FOUND,
            format!("{what} not found"),
            &self.base,
        )
    }
}
