//! The route table of SPEC §4 and its handlers.
//!
//! [`table`] is the one list of routes: the router is built from it, and the test
//! that keeps the generated OpenAPI document (see [`crate::openapi`]) true reads it too.
//! Each handler carries its `#[utoipa::path]`.

use crate::dto::{
    CreateTemplateBody, DuplicateJson, EnqueueBody, EnqueuedJson, EntryDetailJson, EntryJson,
    PageJson, PatchTemplateBody, RunJson, StoppedJson, TemplateJson,
};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathText, QueryPairs};
#[allow(unused_imports)] // Named by the `utoipa::path` attributes only.
use crate::openapi::{
    CodePath, EngineReportJson, ErrorJson, HealthJson, IdentifierPath, PageParams, QueueQuery,
    RunIdPath, RunsQuery, TemplatesQuery,
};
use crate::schedules as sch;
use crate::state::{AppState, bounded};
use axum::Json;
use axum::extract::State;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post};
use bildad_core::{
    EntryStatus, MAX_NAME_CHARS, PageRequest, RunFilter, RunId, RunResult, RunStatus, StoreError,
    TemplateFilter, Violation,
};
use std::str::FromStr;

/// One route: method, path, whether it is open without a token, and its handler.
pub(crate) struct RouteDef {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) public: bool,
    pub(crate) handler: MethodRouter<AppState>,
}

fn route(method: Method, path: &'static str, handler: MethodRouter<AppState>) -> RouteDef {
    RouteDef {
        method,
        path,
        public: false,
        handler,
    }
}

/// Every route of the API.
pub(crate) fn table() -> Vec<RouteDef> {
    vec![
        route(Method::POST, "/jobs/engine/run", post(engine_run)),
        RouteDef {
            public: true,
            ..route(Method::GET, "/jobs/health", get(health))
        },
        route(Method::GET, "/jobs/openapi.json", get(openapi)),
        route(Method::POST, "/jobs/templates", post(create_template)),
        route(Method::GET, "/jobs/templates", get(list_templates)),
        route(Method::GET, "/jobs/templates/{code}", get(get_template)),
        route(
            Method::PATCH,
            "/jobs/templates/{code}",
            patch(patch_template),
        ),
        route(
            Method::DELETE,
            "/jobs/templates/{code}",
            delete(delete_template),
        ),
        route(Method::POST, "/jobs/queue", post(enqueue)),
        route(Method::GET, "/jobs/queue", get(list_entries)),
        route(
            Method::GET,
            "/jobs/queue/{job_run_identifier}",
            get(get_entry),
        ),
        route(
            Method::DELETE,
            "/jobs/queue/{job_run_identifier}",
            delete(remove_entry),
        ),
        route(
            Method::POST,
            "/jobs/queue/{job_run_identifier}/stop",
            post(stop_entry),
        ),
        route(Method::GET, "/jobs/runs", get(list_runs)),
        route(Method::GET, "/jobs/runs/{id}", get(get_run)),
        route(Method::GET, "/jobs/metrics", get(crate::metrics::metrics)),
        route(Method::POST, "/jobs/schedules", post(sch::create_schedule)),
        route(Method::GET, "/jobs/schedules", get(sch::list_schedules)),
        route(
            Method::GET,
            "/jobs/schedules/{name}",
            get(sch::get_schedule),
        ),
        route(
            Method::PATCH,
            "/jobs/schedules/{name}",
            patch(sch::patch_schedule),
        ),
        route(
            Method::DELETE,
            "/jobs/schedules/{name}",
            delete(sch::delete_schedule),
        ),
        route(Method::GET, "/jobs/queues", get(crate::queues::list_queues)),
        route(
            Method::GET,
            "/jobs/queues/{name}",
            get(crate::queues::get_queue),
        ),
        route(
            Method::PATCH,
            "/jobs/queues/{name}",
            patch(crate::queues::patch_queue),
        ),
    ]
}

// --- engine and health -------------------------------------------------------

/// Runs one engine pass on this node.
#[utoipa::path(post, path = "/jobs/engine/run", tag = "engine",
    responses((status = 200, description = "what the pass did", body = EngineReportJson)))]
pub(crate) async fn engine_run(State(s): State<AppState>) -> Result<Response, ApiError> {
    let engine = s.engine.clone();
    let report = s.call(async move { engine.run_once().await }).await?;
    Ok(Json(report).into_response())
}

/// Whether this node reaches its database (no token needed).
#[utoipa::path(get, path = "/jobs/health", tag = "engine",
    responses(
        (status = 200, description = "the database answers", body = HealthJson),
        (status = 503, description = "the database cannot be reached: the error envelope \
            with `status: unavailable`", body = ErrorJson),
    ))]
pub(crate) async fn health(State(s): State<AppState>) -> Response {
    let store = s.engine.store().clone();
    match bounded(s.config.health_timeout, async move { store.ping().await }).await {
        Ok(()) => Json(HealthJson { status: "ok" }).into_response(),
        Err(e) => {
            let mut body = e.body();
            body["status"] = serde_json::Value::from("unavailable");
            // A failing ping is an outage whatever its kind.
            (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/jobs/openapi.json", tag = "engine",
    responses((status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

// --- templates ---------------------------------------------------------------

/// Creates a template.
#[utoipa::path(post, path = "/jobs/templates", tag = "templates", request_body = CreateTemplateBody,
    responses(
        (status = 201, description = "created", body = TemplateJson),
        (status = 409, description = "conflict: a template has this code", body = ErrorJson),
    ))]
pub(crate) async fn create_template(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateTemplateBody>,
) -> Result<Response, ApiError> {
    let store = s.engine.store().clone();
    let t = s
        .call(async move { store.create_template(body.into()).await })
        .await?;
    Ok((StatusCode::CREATED, Json(TemplateJson::from(t))).into_response())
}

/// Lists templates by `display_order`, then `code`.
#[utoipa::path(get, path = "/jobs/templates", tag = "templates", params(TemplatesQuery, PageParams),
    responses((status = 200, description = "one page", body = PageJson<TemplateJson>)))]
pub(crate) async fn list_templates(
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let mut v = Vec::new();
    let filter = parse_enum::<TemplateFilter>(&q, "filter", false, &mut v).unwrap_or_default();
    let page = page_request(&q, v)?;
    let store = s.engine.store().clone();
    let p = s
        .call(async move { store.list_templates(filter, page).await })
        .await?;
    Ok(Json(PageJson::from_page(p, TemplateJson::from)).into_response())
}

/// One template.
#[utoipa::path(get, path = "/jobs/templates/{code}", tag = "templates", params(CodePath),
    responses(
        (status = 200, description = "the template", body = TemplateJson),
        (status = 404, description = "no template has this code", body = ErrorJson),
    ))]
pub(crate) async fn get_template(
    State(s): State<AppState>,
    PathText(code): PathText,
) -> Result<Response, ApiError> {
    check_path_text("/code", &code)?;
    let store = s.engine.store().clone();
    let t = s
        .call(async move { store.get_template(&code).await })
        .await?;
    Ok(Json(TemplateJson::from(t)).into_response())
}

/// Changes the fields given; the others are kept.
#[utoipa::path(patch, path = "/jobs/templates/{code}", tag = "templates", params(CodePath),
    request_body = PatchTemplateBody,
    responses(
        (status = 200, description = "the template as changed", body = TemplateJson),
        (status = 404, description = "no template has this code", body = ErrorJson),
    ))]
pub(crate) async fn patch_template(
    State(s): State<AppState>,
    PathText(code): PathText,
    JsonBody(body): JsonBody<PatchTemplateBody>,
) -> Result<Response, ApiError> {
    check_path_text("/code", &code)?;
    let store = s.engine.store().clone();
    let t = s
        .call(async move { store.update_template(&code, body.into()).await })
        .await?;
    Ok(Json(TemplateJson::from(t)).into_response())
}

/// Deletes a template that no entry uses.
#[utoipa::path(delete, path = "/jobs/templates/{code}", tag = "templates", params(CodePath),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no template has this code", body = ErrorJson),
        (status = 409, description = "conflict: entries use this template", body = ErrorJson),
    ))]
pub(crate) async fn delete_template(
    State(s): State<AppState>,
    PathText(code): PathText,
) -> Result<StatusCode, ApiError> {
    check_path_text("/code", &code)?;
    let store = s.engine.store().clone();
    s.call(async move { store.delete_template(&code).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --- queue -------------------------------------------------------------------

/// Enqueues a job. A unique job already enqueued within its window is 200 with
/// `duplicate: true` and the existing identifier; nothing is written (SPEC §8).
#[utoipa::path(post, path = "/jobs/queue", tag = "queue", request_body = EnqueueBody,
    params(("traceparent" = Option<String>, Header, description = "The W3C trace context \
        of the enqueuing request: the entry's runs link to it (an invalid one is ignored)")),
    responses(
        (status = 201, description = "enqueued", body = EnqueuedJson),
        (status = 200, description = "a duplicate of a unique job: nothing was written",
            body = DuplicateJson),
        (status = 409, description = "conflict: the identifier is taken", body = ErrorJson),
    ))]
pub(crate) async fn enqueue(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<EnqueueBody>,
) -> Result<Response, ApiError> {
    let trigger = body.trigger_engine;
    let mut entry = body.into_entry().map_err(|v| ApiError::invalid(vec![v]))?;
    entry.trace_context = crate::trace::traceparent(&headers);
    // The field rules first (NUL text included): a store may read by the template code
    // before it applies them, and PostgreSQL rejects a NUL in a query parameter.
    let mut v = Vec::new();
    entry.check_fields("", &mut v);
    if !v.is_empty() {
        return Err(ApiError::invalid(v));
    }
    let engine = s.engine.clone();
    // A duplicate is an answer, not an error: `Ok(identifier)` of the existing entry.
    let duplicate_of = s
        .call(async move {
            match engine.enqueue(entry).await {
                Ok(entry) => Ok(Err(entry)),
                Err(StoreError::Duplicate {
                    job_run_identifier, ..
                }) => Ok(Ok(job_run_identifier)),
                Err(e) => Err(e),
            }
        })
        .await?;
    // The answer is decided: a failing engine pass must not turn it into an error (a
    // retrying client would then meet a 409). The report is null instead.
    let engine = if trigger {
        let engine = s.engine.clone();
        match s.call(async move { engine.run_once().await }).await {
            Ok(report) => Some(Some(report)),
            Err(e) => {
                tracing::warn!(error = %e, "engine pass after enqueue failed");
                Some(None)
            }
        }
    } else {
        None
    };
    Ok(match duplicate_of {
        Ok(job_run_identifier) => {
            let answer = DuplicateJson {
                duplicate: true,
                job_run_identifier,
                engine,
            };
            (StatusCode::OK, Json(answer)).into_response()
        }
        Err(entry) => {
            let answer = EnqueuedJson {
                entry: entry.into(),
                engine,
                duplicate: false,
            };
            (StatusCode::CREATED, Json(answer)).into_response()
        }
    })
}

/// Lists entries in run order.
#[utoipa::path(get, path = "/jobs/queue", tag = "queue", params(QueueQuery, PageParams),
    responses((status = 200, description = "one page", body = PageJson<EntryJson>)))]
pub(crate) async fn list_entries(
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let mut v = Vec::new();
    let filter = bildad_core::EntryFilter {
        status: parse_enum::<EntryStatus>(&q, "status", true, &mut v),
        queue: text_param(&q, "queue", &mut v),
        ..Default::default()
    };
    let page = page_request(&q, v)?;
    let store = s.engine.store().clone();
    let p = s
        .call(async move { store.list_entries_where(filter, page).await })
        .await?;
    Ok(Json(PageJson::from_page(p, EntryJson::from)).into_response())
}

/// One entry and its place in the run order.
#[utoipa::path(get, path = "/jobs/queue/{job_run_identifier}", tag = "queue", params(IdentifierPath),
    responses(
        (status = 200, description = "the entry", body = EntryDetailJson),
        (status = 404, description = "no entry has this identifier", body = ErrorJson),
    ))]
pub(crate) async fn get_entry(
    State(s): State<AppState>,
    PathText(id): PathText,
) -> Result<Response, ApiError> {
    check_path_text("/job_run_identifier", &id)?;
    let store = s.engine.store().clone();
    let (entry, position) = s
        .call(async move {
            let entry = store.get_entry(&id).await?;
            let position = store.entry_position(&id).await?;
            Ok((entry, position))
        })
        .await?;
    // The entry may have been claimed between the two reads: a running entry has
    // no position.
    let position = match entry.status {
        EntryStatus::Running => None,
        EntryStatus::Available => position,
    };
    Ok(Json(EntryDetailJson {
        entry: entry.into(),
        position,
    })
    .into_response())
}

/// Removes an entry (its running run, if any, ends `Removed`).
#[utoipa::path(delete, path = "/jobs/queue/{job_run_identifier}", tag = "queue",
    params(IdentifierPath),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no entry has this identifier", body = ErrorJson),
    ))]
pub(crate) async fn remove_entry(
    State(s): State<AppState>,
    PathText(id): PathText,
) -> Result<StatusCode, ApiError> {
    check_path_text("/job_run_identifier", &id)?;
    let store = s.engine.store().clone();
    let removed = s.call(async move { store.remove_entry(&id).await }).await?;
    if let Some(run) = removed.stopped_run {
        crate::metrics::operator_ended(&s, run, bildad_core::FailureKind::Removed).await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Stops the entry's current run and keeps the entry.
#[utoipa::path(post, path = "/jobs/queue/{job_run_identifier}/stop", tag = "queue",
    params(IdentifierPath),
    responses(
        (status = 200, description = "stopped", body = StoppedJson),
        (status = 404, description = "no entry has this identifier", body = ErrorJson),
        (status = 409, description = "conflict: the entry is not running", body = ErrorJson),
    ))]
pub(crate) async fn stop_entry(
    State(s): State<AppState>,
    PathText(id): PathText,
) -> Result<Response, ApiError> {
    check_path_text("/job_run_identifier", &id)?;
    let store = s.engine.store().clone();
    let key = id.clone();
    let stopped = s.call(async move { store.stop_entry(&key).await }).await?;
    crate::metrics::operator_ended(&s, stopped.run_id, bildad_core::FailureKind::Stopped).await;
    Ok(Json(StoppedJson {
        job_run_identifier: id,
        stopped_run_id: stopped.run_id,
        node: stopped.node,
    })
    .into_response())
}

// --- runs --------------------------------------------------------------------

/// The run history, newest first.
#[utoipa::path(get, path = "/jobs/runs", tag = "runs", params(RunsQuery, PageParams),
    responses((status = 200, description = "one page", body = PageJson<RunJson>)))]
pub(crate) async fn list_runs(
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let mut v = Vec::new();
    let filter = RunFilter {
        identifier: text_param(&q, "identifier", &mut v),
        status: parse_enum::<RunStatus>(&q, "status", true, &mut v),
        result: parse_enum::<RunResult>(&q, "result", true, &mut v),
        template: text_param(&q, "template", &mut v),
        node: text_param(&q, "node", &mut v),
        queue: text_param(&q, "queue", &mut v),
    };
    let page = page_request(&q, v)?;
    let store = s.engine.store().clone();
    let p = s
        .call(async move { store.list_runs(filter, page).await })
        .await?;
    Ok(Json(PageJson::from_page(p, RunJson::from)).into_response())
}

/// One run.
#[utoipa::path(get, path = "/jobs/runs/{id}", tag = "runs", params(RunIdPath),
    responses(
        (status = 200, description = "the run", body = RunJson),
        (status = 404, description = "no run has this id", body = ErrorJson),
    ))]
pub(crate) async fn get_run(
    State(s): State<AppState>,
    PathText(id): PathText,
) -> Result<Response, ApiError> {
    let id: RunId = match id.parse::<RunId>() {
        Ok(n) if n > 0 => n,
        _ => return Err(ApiError::invalid_at("/id", "must be a positive integer")),
    };
    let store = s.engine.store().clone();
    let run = s.call(async move { store.get_run(id).await }).await?;
    Ok(Json(RunJson::from(run)).into_response())
}

// --- parameter rules ---------------------------------------------------------

/// A path identifier or code that no stored row can have is a 422, not a lookup.
pub(crate) fn check_path_text(pointer: &str, s: &str) -> Result<(), ApiError> {
    if s.chars().count() > MAX_NAME_CHARS {
        Err(ApiError::invalid_at(
            pointer,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ))
    } else if s.chars().any(char::is_control) {
        Err(ApiError::invalid_at(
            pointer,
            "must not contain control characters",
        ))
    } else {
        Ok(())
    }
}

fn text_param(q: &QueryPairs, key: &str, v: &mut Vec<Violation>) -> Option<String> {
    let s = q.get(key)?;
    match check_path_text(&format!("/{key}"), s) {
        Ok(()) => Some(s.to_owned()),
        Err(e) => {
            v.extend_from_slice(e.details());
            None
        }
    }
}

/// A wire enum from the query; case-insensitive. An unknown value (an empty one
/// included) is a violation that lists the accepted ones.
fn parse_enum<E>(q: &QueryPairs, key: &str, upper: bool, v: &mut Vec<Violation>) -> Option<E>
where
    E: FromStr<Err = bildad_core::UnknownValue>,
{
    let raw = q.raw(key)?;
    let text = if upper {
        raw.to_ascii_uppercase()
    } else {
        raw.to_ascii_lowercase()
    };
    match E::from_str(&text) {
        Ok(x) => Some(x),
        Err(e) => {
            v.push(Violation::new(
                format!("/{key}"),
                format!("must be one of {}", e.expected.join(", ")),
            ));
            None
        }
    }
}

/// `page` (from 0) and `limit` (1..=500, default 25), with every earlier violation.
pub(crate) fn page_request(q: &QueryPairs, mut v: Vec<Violation>) -> Result<PageRequest, ApiError> {
    let mut number = |key: &str, default: u32, rule: &str| match q.raw(key) {
        None => default,
        Some(s) => s.parse::<u32>().unwrap_or_else(|_| {
            v.push(Violation::new(format!("/{key}"), rule.to_owned()));
            default
        }),
    };
    let page = number("page", 0, "must be a whole number from 0");
    let limit = number(
        "limit",
        PageRequest::DEFAULT_LIMIT,
        "must be a whole number between 1 and 500",
    );
    if let Err(e) = PageRequest::new(page, limit) {
        v.extend_from_slice(e.violations());
    }
    if v.is_empty() {
        Ok(PageRequest { page, limit })
    } else {
        Err(ApiError::invalid(v))
    }
}
