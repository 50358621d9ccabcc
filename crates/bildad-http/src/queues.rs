//! The queue routes of SPEC §8: `GET /jobs/queues`, `GET /jobs/queues/{name}` and
//! `PATCH /jobs/queues/{name}` (pause, resume, limits), with their wire shapes.

use crate::error::ApiError;
use crate::extract::{JsonBody, PathText};
#[allow(unused_imports)] // Named by the `utoipa::path` attributes only.
use crate::openapi::ErrorJson;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bildad_core::{QueueInfo, QueuePatch, RateLimit};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

/// At most `allowed` starts in any window of `period_seconds`, over all nodes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RateLimit)]
pub(crate) struct RateLimitJson {
    /// Starts per window.
    #[schema(minimum = 1, maximum = 2147483647)]
    #[serde(deserialize_with = "whole")]
    allowed: i32,
    /// The window's length in seconds.
    #[schema(minimum = 1, maximum = 2147483647)]
    #[serde(deserialize_with = "whole")]
    period_seconds: i32,
}

/// A required `i32` that, like JSON Schema's `integer`, also takes `5.0`
/// ([`crate::dto::whole_i32`]).
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    crate::dto::whole_i32(d)?.ok_or_else(|| serde::de::Error::custom("must not be null"))
}

/// An optional `i32` that may also be `5.0`, present or not (see [`present`]).
fn present_whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i32>>, D::Error> {
    crate::dto::whole_i32(d).map(Some)
}

/// A queue on the wire: its settings and counts.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Queue)]
pub(crate) struct QueueJson {
    name: String,
    /// No node starts its entries; running ones go on.
    paused: bool,
    /// At most this many runs `RUNNING` at once, over all nodes (null: no limit).
    global_limit: Option<i32>,
    /// Null: no rate limit.
    rate_limit: Option<RateLimitJson>,
    /// Entries waiting with `run_at` passed.
    available: u64,
    /// Runs running now.
    running: u64,
    /// Entries waiting for a later `run_at`.
    scheduled: u64,
}

impl From<QueueInfo> for QueueJson {
    fn from(q: QueueInfo) -> Self {
        let s = q.settings;
        Self {
            name: s.name,
            paused: s.paused,
            global_limit: s.global_limit,
            rate_limit: s.rate_limit.map(|r| RateLimitJson {
                allowed: r.allowed,
                period_seconds: r.period_seconds,
            }),
            available: q.available,
            running: q.running,
            scheduled: q.scheduled,
        }
    }
}

/// A field that may be absent (keep), `null` (lift) or a value (set).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The body of `PATCH /jobs/queues/{name}`: absent fields are kept, `null` lifts a limit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PatchQueueBody {
    /// Pause (true) or resume (false).
    paused: Option<bool>,
    /// An integer ≥ 1, or null to lift the limit.
    #[serde(default, deserialize_with = "present_whole")]
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 2147483647)]
    global_limit: Option<Option<i32>>,
    /// A rate limit, or null to lift it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitJson>)]
    rate_limit: Option<Option<RateLimitJson>>,
}

impl From<PatchQueueBody> for QueuePatch {
    fn from(b: PatchQueueBody) -> Self {
        QueuePatch {
            paused: b.paused,
            global_limit: b.global_limit,
            rate_limit: b.rate_limit.map(|r| {
                r.map(|r| RateLimit {
                    allowed: r.allowed,
                    period_seconds: r.period_seconds,
                })
            }),
        }
    }
}

/// A queue name in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub(crate) struct QueuePath {
    /// The queue's name.
    #[param(min_length = 1, max_length = 255, pattern = "^[A-Za-z0-9_.:-]+$")]
    name: String,
}

/// Every queue that has settings or entries, by name.
#[utoipa::path(get, path = "/jobs/queues", tag = "queues",
    responses((status = 200, description = "the queues", body = Vec<QueueJson>)))]
pub(crate) async fn list_queues(State(s): State<AppState>) -> Result<Response, ApiError> {
    let store = s.engine.store().clone();
    let queues = s.call(async move { store.list_queues().await }).await?;
    let body: Vec<QueueJson> = queues.into_iter().map(Into::into).collect();
    Ok(Json(body).into_response())
}

/// One queue.
#[utoipa::path(get, path = "/jobs/queues/{name}", tag = "queues", params(QueuePath),
    responses(
        (status = 200, description = "the queue", body = QueueJson),
        (status = 404, description = "no queue has settings or entries by this name", body = ErrorJson),
    ))]
pub(crate) async fn get_queue(
    State(s): State<AppState>,
    PathText(name): PathText,
) -> Result<Response, ApiError> {
    let store = s.engine.store().clone();
    let q = s.call(async move { store.get_queue(&name).await }).await?;
    Ok(Json(QueueJson::from(q)).into_response())
}

/// Pauses, resumes or limits a queue, for every node at once.
#[utoipa::path(patch, path = "/jobs/queues/{name}", tag = "queues", params(QueuePath),
    request_body = PatchQueueBody,
    responses((status = 200, description = "the queue as changed", body = QueueJson)))]
pub(crate) async fn patch_queue(
    State(s): State<AppState>,
    PathText(name): PathText,
    JsonBody(body): JsonBody<PatchQueueBody>,
) -> Result<Response, ApiError> {
    let store = s.engine.store().clone();
    let q = s
        .call(async move { store.update_queue(&name, body.into()).await })
        .await?;
    Ok(Json(QueueJson::from(q)).into_response())
}
