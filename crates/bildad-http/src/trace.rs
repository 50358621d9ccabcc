//! The W3C trace context of an enqueue request: its `traceparent` header, kept with the
//! entry so that the entry's runs link to the request's trace (docs/OBSERVABILITY.md).
//! A header that is not a valid `traceparent` is ignored, as W3C Trace Context asks of
//! a receiver: it never fails the enqueue.

use axum::http::HeaderMap;
use bildad_core::Traceparent;

/// The request's `traceparent`, when it has a valid one.
pub(crate) fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    Traceparent::parse(value).map(|_| value.to_owned())
}
