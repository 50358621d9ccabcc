//! Extractors whose every rejection is an [`ApiError`] in the API's envelope.

use crate::error::ApiError;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::{StatusCode, header, request::Parts};
use bildad_core::Violation;
use serde::de::DeserializeOwned;

/// A JSON body: `application/json` (415 otherwise), within the body limit (413),
/// syntactically valid (400), of the right shape (422 with a pointer per violation).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON; send `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large(state.config.body_limit)
            } else {
                ApiError::bad_request(format!("cannot read the request body: {}", r.body_text()))
            }
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
        // Every body is an object: serde would also fill a struct from an array, by
        // position (`[null, null]` as an empty patch).
        if !value.is_object() {
            return Err(ApiError::invalid(vec![Violation::new(
                "",
                "the body must be a JSON object",
            )]));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| ApiError::invalid(vec![shape_violation(&e)]))
    }
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

/// Turns a deserialization error into a violation with a JSON pointer.
fn shape_violation(e: &serde_path_to_error::Error<serde_json::Error>) -> Violation {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for seg in e.path().iter() {
        pointer.push('/');
        match seg {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&escape_pointer(key)),
            Segment::Enum { variant } => pointer.push_str(&escape_pointer(variant)),
            Segment::Unknown => pointer.push('?'),
        }
    }
    let message = e.inner().to_string();
    // A missing field is reported at its parent; name the field itself. (An unknown
    // field's path already ends with it.)
    if let Some(rest) = message.strip_prefix("missing field `")
        && let Some(end) = rest.find('`')
    {
        pointer.push('/');
        pointer.push_str(&escape_pointer(&rest[..end]));
    }
    Violation::new(pointer, message)
}

fn escape_pointer(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// One path parameter as text; a bad percent-encoding is a 400.
#[derive(Debug)]
pub(crate) struct PathText(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| PathText(s))
            .map_err(|r| ApiError::bad_request(format!("bad path parameter: {}", r.body_text())))
    }
}

/// The query string as pairs; a bad encoding is a 400. Unknown keys are ignored.
#[derive(Debug, Default)]
pub(crate) struct QueryPairs(pub(crate) Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| QueryPairs(v))
            .map_err(|r| ApiError::bad_request(format!("bad query string: {}", r.body_text())))
    }
}

impl QueryPairs {
    /// The last value of `key` as sent, empty included.
    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The last value of `key`, if present and not empty.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.raw(key).filter(|v| !v.is_empty())
    }
}
