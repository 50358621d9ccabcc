//! The interactive viewer of the OpenAPI document (feature `api-viewer`): Scalar's
//! page at [`crate::VIEWER_PATH`], holding the same generated document as
//! `GET /jobs/openapi.json`.
//!
//! The page loads Scalar's script from its CDN (`cdn.jsdelivr.net`) in the operator's
//! browser; the node itself fetches nothing. It gets its own Content-Security-Policy:
//! scripts from that CDN only, no framing, requests back to this node only.

use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::OnceLock;
use utoipa_scalar::Scalar;

/// The viewer's Content-Security-Policy.
pub(crate) const CSP: &str = "default-src 'none'; script-src https://cdn.jsdelivr.net; \
    style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.scalar.com; \
    font-src 'self' data: https://fonts.scalar.com https://cdn.jsdelivr.net; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /jobs/docs`.
pub(crate) async fn page() -> Response {
    static HTML: OnceLock<String> = OnceLock::new();
    let html = HTML.get_or_init(|| Scalar::new(crate::openapi::value()).to_html());
    let mut res = Html(html.as_str()).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}
