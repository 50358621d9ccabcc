//! `ApiError`: the one place where failures become HTTP answers.
//!
//! Every answer that is not a success has the envelope
//! `{"error": {"code": "...", "message": "...", "details": [...]}}`. Internal details
//! (database messages, panics) are logged, never sent to the caller.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bildad_core::{StoreError, Violation};
use serde::Serialize;

/// An error answer of the API: a status, a stable machine-readable `code`, a message
/// for humans and, for invalid input, one detail per violation.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Violation>,
}

impl ApiError {
    /// An error with `status`, `code` and `message` and no details.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// 400 `bad_request`: the request cannot be read (malformed JSON, bad encoding).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401 `unauthorized`: missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token; send `Authorization: Bearer <token>`",
        )
    }

    /// 403 `forbidden`: the request may not be served at all (SPEC §4: a tokenless
    /// node answers to a loopback `Host` only, and to no cross-site request).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405 `method_not_allowed`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route does not accept this HTTP method",
        )
    }

    /// 413 `payload_too_large`.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 422 `invalid`: the input breaks one or more rules, each listed in `details`.
    pub fn invalid(details: Vec<Violation>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("invalid input: {one}"),
            many => format!("invalid input: {} violations", many.len()),
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message,
            details,
        }
    }

    /// 422 `invalid` with a single violation at `pointer`.
    pub fn invalid_at(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(vec![Violation::new(pointer, message)])
    }

    /// 503 `unavailable`: the database cannot be reached (transient).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 `internal`: the message is generic; the cause must be logged by the caller.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; see the server log",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The message for humans.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The violations (for `invalid`).
    pub fn details(&self) -> &[Violation] {
        &self.details
    }

    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::to_value(Envelope {
            error: Body {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        })
        .unwrap_or_default()
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: Body<'a>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    details: &'a [Violation],
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::not_found(format!("{what} not found")),
            StoreError::Conflict(why) => Self::new(StatusCode::CONFLICT, "conflict", why),
            StoreError::Invalid(v) => Self::invalid(v),
            // Only `POST /jobs/queue` answers a duplicate (200); elsewhere it conflicts.
            e @ StoreError::Duplicate { .. } => {
                Self::new(StatusCode::CONFLICT, "duplicate", e.to_string())
            }
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "database unavailable");
                Self::unavailable("the database cannot be reached right now; retry later")
            }
            other => {
                tracing::error!(error = %other, "database error");
                Self::internal()
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (self.status, axum::Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}
