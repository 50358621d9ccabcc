//! Schedules over HTTP (SPEC §9): `POST/GET /jobs/schedules`,
//! `GET/PATCH/DELETE /jobs/schedules/{name}`, their wire shapes and handlers, in one
//! place. The store checks every rule (422 naming each field, 409 for a taken name,
//! 404 for an unknown one).

use crate::dto::{PageJson, ts, whole_i32};
use crate::error::ApiError;
use crate::extract::{JsonBody, PathText, QueryPairs};
#[allow(unused_imports)] // Named by the `utoipa::path` attributes only.
use crate::openapi::{ErrorJson, PageParams};
use crate::routes::{check_path_text, page_request};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bildad_core::{NewSchedule, Schedule, ScheduleOptions, SchedulePatch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

/// A schedule on the wire.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Schedule)]
pub(crate) struct ScheduleJson {
    name: String,
    cron: String,
    timezone: String,
    template: String,
    #[schema(value_type = Object)]
    context: Value,
    priority: Option<i32>,
    queue: Option<String>,
    max_retries: Option<i32>,
    timeout_seconds: Option<i32>,
    active: bool,
    /// The latest fire time enqueued; null before the first.
    #[schema(format = DateTime)]
    last_fire_at: Option<String>,
    /// The next fire time; null when the expression never fires again.
    #[schema(format = DateTime)]
    next_fire_at: Option<String>,
    #[schema(format = DateTime)]
    inserted_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

impl From<Schedule> for ScheduleJson {
    fn from(s: Schedule) -> Self {
        Self {
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            template: s.template,
            context: s.context,
            priority: s.options.priority,
            queue: s.options.queue,
            max_retries: s.options.max_retries,
            timeout_seconds: s.options.timeout_seconds,
            active: s.active,
            last_fire_at: s.last_fire_at.map(ts),
            next_fire_at: s.next_fire_at.map(ts),
            inserted_at: ts(s.inserted_at),
            updated_at: ts(s.updated_at),
        }
    }
}

/// The body of `POST /jobs/schedules`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly-digest", "cron": "0 7 * * *",
    "timezone": "Europe/Paris", "template": "demo.echo", "context": {"kind": "digest"}}))]
pub(crate) struct CreateScheduleBody {
    /// Unique name: ASCII letters, digits and `_ . : -`.
    #[schema(min_length = 1, max_length = 205, pattern = "^[A-Za-z0-9_.:-]+$")]
    name: String,
    /// 5 fields (minute hour day month weekday), or 6 with seconds first.
    #[schema(min_length = 1, max_length = 255)]
    cron: String,
    /// IANA time zone name (default `UTC`).
    #[schema(max_length = 255)]
    timezone: Option<String>,
    /// The template's code.
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    template: String,
    /// Every entry's context (default `{}`), checked against the template's schema.
    #[schema(value_type = Object)]
    #[serde(default = "empty_object")]
    context: Value,
    /// Entries' priority (default 5; lower runs first).
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_i32")]
    priority: Option<i32>,
    /// Entries' queue (SPEC §8).
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    queue: Option<String>,
    /// Entries' `max_retries` (default: the template's).
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_i32")]
    max_retries: Option<i32>,
    /// Entries' `timeout_seconds` (default: the template's).
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    timeout_seconds: Option<i32>,
    /// Default true.
    active: Option<bool>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl From<CreateScheduleBody> for NewSchedule {
    fn from(b: CreateScheduleBody) -> Self {
        NewSchedule {
            name: b.name,
            cron: b.cron,
            timezone: b.timezone.unwrap_or_else(|| "UTC".into()),
            template: b.template,
            context: b.context,
            options: ScheduleOptions {
                priority: b.priority,
                queue: b.queue,
                max_retries: b.max_retries,
                timeout_seconds: b.timeout_seconds,
            },
            active: b.active.unwrap_or(true),
        }
    }
}

/// The body of `PATCH /jobs/schedules/{name}`: absent fields are kept. A new `cron`
/// or `timezone`, or `active: true` on an inactive schedule, moves `next_fire_at` to
/// the first fire time after now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"active": false}))]
pub(crate) struct PatchScheduleBody {
    #[schema(min_length = 1, max_length = 255)]
    cron: Option<String>,
    #[schema(max_length = 255)]
    timezone: Option<String>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    template: Option<String>,
    #[schema(value_type = Option<Object>)]
    context: Option<Value>,
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    #[serde(default, deserialize_with = "whole_i32")]
    priority: Option<i32>,
    #[schema(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    queue: Option<String>,
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "whole_i32")]
    max_retries: Option<i32>,
    #[schema(minimum = 1, maximum = 31_622_400)]
    #[serde(default, deserialize_with = "whole_i32")]
    timeout_seconds: Option<i32>,
    active: Option<bool>,
}

impl From<PatchScheduleBody> for SchedulePatch {
    fn from(b: PatchScheduleBody) -> Self {
        SchedulePatch {
            cron: b.cron,
            timezone: b.timezone,
            template: b.template,
            context: b.context,
            priority: b.priority,
            queue: b.queue,
            max_retries: b.max_retries,
            timeout_seconds: b.timeout_seconds,
            active: b.active,
        }
    }
}

/// A schedule name in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct NamePath {
    /// The schedule's name.
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]+$"
    )]
    name: String,
}

/// Saves a schedule; its first fire time is the first after now.
#[utoipa::path(post, path = "/jobs/schedules", tag = "schedules", request_body = CreateScheduleBody,
    responses(
        (status = 201, description = "saved", body = ScheduleJson),
        (status = 409, description = "conflict: a schedule has this name", body = ErrorJson),
    ))]
pub(crate) async fn create_schedule(
    State(s): State<AppState>,
    JsonBody(body): JsonBody<CreateScheduleBody>,
) -> Result<Response, ApiError> {
    let store = s.engine.store().clone();
    let x = s
        .call(async move { store.create_schedule(body.into()).await })
        .await?;
    Ok((StatusCode::CREATED, Json(ScheduleJson::from(x))).into_response())
}

/// Lists schedules by name.
#[utoipa::path(get, path = "/jobs/schedules", tag = "schedules", params(PageParams),
    responses((status = 200, description = "one page", body = PageJson<ScheduleJson>)))]
pub(crate) async fn list_schedules(
    State(s): State<AppState>,
    q: QueryPairs,
) -> Result<Response, ApiError> {
    let page = page_request(&q, Vec::new())?;
    let store = s.engine.store().clone();
    let p = s
        .call(async move { store.list_schedules(page).await })
        .await?;
    Ok(Json(PageJson::from_page(p, ScheduleJson::from)).into_response())
}

/// One schedule, with its last and next fire times.
#[utoipa::path(get, path = "/jobs/schedules/{name}", tag = "schedules", params(NamePath),
    responses(
        (status = 200, description = "the schedule", body = ScheduleJson),
        (status = 404, description = "no schedule has this name", body = ErrorJson),
    ))]
pub(crate) async fn get_schedule(
    State(s): State<AppState>,
    PathText(name): PathText,
) -> Result<Response, ApiError> {
    check_path_text("/name", &name)?;
    let store = s.engine.store().clone();
    let x = s
        .call(async move { store.get_schedule(&name).await })
        .await?;
    Ok(Json(ScheduleJson::from(x)).into_response())
}

/// Changes the fields given; the others are kept.
#[utoipa::path(patch, path = "/jobs/schedules/{name}", tag = "schedules", params(NamePath),
    request_body = PatchScheduleBody,
    responses(
        (status = 200, description = "the schedule as changed", body = ScheduleJson),
        (status = 404, description = "no schedule has this name", body = ErrorJson),
    ))]
pub(crate) async fn patch_schedule(
    State(s): State<AppState>,
    PathText(name): PathText,
    JsonBody(body): JsonBody<PatchScheduleBody>,
) -> Result<Response, ApiError> {
    check_path_text("/name", &name)?;
    let store = s.engine.store().clone();
    let x = s
        .call(async move { store.update_schedule(&name, body.into()).await })
        .await?;
    Ok(Json(ScheduleJson::from(x)).into_response())
}

/// Deletes a schedule (its entries and runs stay).
#[utoipa::path(delete, path = "/jobs/schedules/{name}", tag = "schedules", params(NamePath),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no schedule has this name", body = ErrorJson),
    ))]
pub(crate) async fn delete_schedule(
    State(s): State<AppState>,
    PathText(name): PathText,
) -> Result<StatusCode, ApiError> {
    check_path_text("/name", &name)?;
    let store = s.engine.store().clone();
    s.call(async move { store.delete_schedule(&name).await })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
