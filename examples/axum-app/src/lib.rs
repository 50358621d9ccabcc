//! An example application: an axum app with its own route and its own job type, with
//! Bildad added by the steps of `docs/INSTALL.md`.
//!
//! `POST /signup {"email": "..."}` records a sign-up and enqueues a `mail.welcome` job
//! (triggering the engine at once); Bildad's API is nested beside it under `/jobs`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use bildad_core::{JobContext, JobError, JobRegistry, JobStore, NewEntry, NewTemplate, StoreError};
use bildad_runtime::{Engine, NodeRuntime};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// The typed context of the `mail.welcome` job; its JSON Schema is derived from it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Welcome {
    /// Where to send the welcome mail.
    #[schemars(length(min = 3, max = 254), regex(pattern = r"^[^@\s]+@[^@\s]+$"))]
    pub email: String,
    /// The name to greet, if known.
    #[serde(default)]
    pub name: Option<String>,
}

/// The job type name.
pub const WELCOME_JOB: &str = "mail.welcome";
/// The template code.
pub const WELCOME_TEMPLATE: &str = "welcome-mail";

/// The `mail.welcome` job: "sends" the mail and returns what it sent.
pub async fn send_welcome(ctx: JobContext) -> Result<Option<Value>, JobError> {
    let input: Welcome = ctx.parse()?;
    let greeting = format!("Welcome, {}!", input.name.as_deref().unwrap_or("friend"));
    tracing::info!(email = %input.email, "sending welcome mail");
    Ok(Some(json!({ "sent_to": input.email, "subject": greeting })))
}

/// The app's job types.
pub fn registry() -> JobRegistry {
    JobRegistry::new().with(WELCOME_JOB, send_welcome)
}

/// Creates the app's template when it is missing (at every start; idempotent).
pub async fn ensure_templates(store: &Arc<dyn JobStore>) -> Result<(), StoreError> {
    let schema = serde_json::to_value(schemars::schema_for!(Welcome))
        .map_err(|e| StoreError::invalid("/context_schema", e.to_string()))?;
    match store
        .create_template(NewTemplate::new(
            WELCOME_TEMPLATE,
            "Welcome mail",
            WELCOME_JOB,
            schema,
        ))
        .await
    {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The app's own route: a sign-up that enqueues a welcome mail and starts it at once.
async fn signup(
    State(engine): State<Engine>,
    Json(body): Json<Welcome>,
) -> Result<(StatusCode, Json<Value>), (StatusCode, String)> {
    let context =
        serde_json::to_value(&body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let entry = NewEntry::new(WELCOME_TEMPLATE, context);
    match engine.enqueue_and_trigger(entry).await {
        Ok((entry, _report)) => Ok((
            StatusCode::CREATED,
            Json(json!({ "job": entry.job_run_identifier })),
        )),
        Err(StoreError::Invalid(v)) => Err((
            StatusCode::UNPROCESSABLE_ENTITY,
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )),
        Err(e) => Err((StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

/// The whole app: its own routes, and Bildad's API behind the token.
pub fn app(node: &NodeRuntime, auth_token: Option<String>) -> Router {
    let mut config = bildad_http::ApiConfig::default();
    if let Some(token) = auth_token {
        config = config.with_auth_token(token);
    }
    Router::new()
        .route("/signup", post(signup))
        .with_state(node.engine().clone())
        .merge(bildad_http::router(node.engine().clone(), config))
}
