//! `POST /signup`: the user's row and the welcome job in one transaction of the app's
//! own database. The job exists if and only if the sign-up committed.

use crate::db::{Database, users};
use crate::welcome::Welcome;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bildad_core::{EnqueueOptions, ErrorKind, QueueEntry, StoreError};
use bildad_store_diesel::{EnqueueIn, PgStore, SqliteConnectionWrapper, SqliteStore};
use diesel::ExpressionMethods;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use serde_json::{Value, json};

/// The body of `POST /signup`.
#[derive(Debug, Deserialize)]
pub struct SignupRequest {
    /// The new user's e-mail.
    pub email: String,
}

/// Why a sign-up was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    /// A user with this e-mail exists: 409.
    #[error("this e-mail is already signed up")]
    EmailTaken,
    /// Bildad refused the welcome job (`Invalid`: 422), or could not write it.
    #[error(transparent)]
    Jobs(#[from] StoreError),
    /// The app's own statement failed.
    #[error("database: {0}")]
    Db(DieselError),
    /// No connection could be had.
    #[error("database unavailable: {0}")]
    Pool(String),
}

impl From<DieselError> for SignupError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::EmailTaken,
            e => Self::Db(e),
        }
    }
}

impl IntoResponse for SignupError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::EmailTaken => (StatusCode::CONFLICT, json!({ "error": self.to_string() })),
            Self::Jobs(StoreError::Invalid(v)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({
                    "error": "invalid sign-up",
                    "violations": v.iter()
                        .map(|x| json!({ "pointer": x.pointer, "message": x.message }))
                        .collect::<Vec<_>>(),
                }),
            ),
            Self::Jobs(e) if e.kind() == ErrorKind::Conflict => {
                (StatusCode::CONFLICT, json!({ "error": e.to_string() }))
            }
            Self::Jobs(e) if e.kind() == ErrorKind::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "try again later" }),
            ),
            Self::Pool(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "try again later" }),
            ),
            _ => {
                tracing::error!(error = %self, "sign-up failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({ "error": "internal error" }),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

/// Writes the sign-up function of one backend: the user's row, then the welcome job, on
/// a connection inside the caller's transaction. The steps are the same on both; only
/// the connection's type differs.
macro_rules! sign_up_on {
    ($(#[$doc:meta])* $name:ident, $store:ty, $conn:ty) => {
        $(#[$doc])*
        pub async fn $name(
            store: &$store,
            conn: &mut $conn,
            email: &str,
        ) -> Result<QueueEntry, SignupError> {
            diesel::insert_into(users::table)
                .values(users::email.eq(email))
                .execute(conn)
                .await?;
            let welcome = Welcome { email: email.into() };
            Ok(store
                .enqueue_args_in(conn, &welcome, EnqueueOptions::default())
                .await?)
        }
    };
}

sign_up_on!(
    /// The sign-up on PostgreSQL, on a connection inside the caller's transaction.
    sign_up_pg,
    PgStore,
    AsyncPgConnection
);
sign_up_on!(
    /// The sign-up on SQLite, on a connection inside the caller's transaction.
    sign_up_sqlite,
    SqliteStore,
    SqliteConnectionWrapper
);

impl Database {
    /// Signs `email` up: the user's row and the welcome job in one transaction.
    pub async fn sign_up(&self, email: &str) -> Result<QueueEntry, SignupError> {
        let pool_error = |e: &dyn std::fmt::Display| SignupError::Pool(e.to_string());
        match self {
            Self::Postgres { pool, store } => {
                let mut conn = pool.get().await.map_err(|e| pool_error(&e))?;
                // The wake-up (`pg_notify`) is delivered when this commits.
                conn.transaction(async |c| sign_up_pg(store, c, email).await)
                    .await
            }
            Self::Sqlite { pool, store } => {
                let mut conn = pool.get().await.map_err(|e| pool_error(&e))?;
                let entry = conn
                    .transaction(async |c| sign_up_sqlite(store, c, email).await)
                    .await?;
                // SQLite's store cannot see the commit: say it happened.
                store.notify_enqueued();
                Ok(entry)
            }
        }
    }
}

/// The route: 201 with the welcome job's identifier, 409 for a known e-mail, 422 for an
/// e-mail the job's schema refuses (and then no user either).
pub async fn signup(
    State(db): State<Database>,
    Json(body): Json<SignupRequest>,
) -> Result<(StatusCode, Json<Value>), SignupError> {
    let entry = db.sign_up(&body.email).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "email": body.email, "job": entry.job_run_identifier })),
    ))
}
