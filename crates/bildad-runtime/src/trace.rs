//! The span of a run: every log line of the run carries its fields (`run_id`,
//! `identifier`, `template`, `queue`, `retry`, `node`).
//!
//! With the feature `otel` the span also follows OpenTelemetry's messaging conventions
//! (a `CONSUMER` span named `process <queue>`, with `messaging.system`,
//! `messaging.operation.*`, `messaging.destination.name` and `messaging.message.id`), and
//! when the entry carries the W3C trace context of the request that enqueued it
//! ([`bildad_core::ClaimedRun::trace_context`]), the span links to that request's span,
//! on whichever node it ran. A `tracing-opentelemetry` layer exports it.

use bildad_core::ClaimedRun;
use tracing::Span;

/// The span of `claimed` running on node instance `node`.
pub(crate) fn run_span(claimed: &ClaimedRun, queue: &str, node: &str) -> Span {
    let run = &claimed.run;
    #[cfg(not(feature = "otel"))]
    let span = tracing::info_span!(
        "run",
        identifier = %run.job_run_identifier,
        template = %run.template,
        queue = %queue,
        retry = run.retry,
        run_id = run.id,
        node = %node,
    );
    #[cfg(feature = "otel")]
    let span = {
        let span = tracing::info_span!(
            "run",
            identifier = %run.job_run_identifier,
            template = %run.template,
            queue = %queue,
            retry = run.retry,
            run_id = run.id,
            node = %node,
            otel.name = %format!("process {queue}"),
            otel.kind = "consumer",
            messaging.system = "bildad",
            messaging.operation.type = "process",
            messaging.operation.name = "process",
            messaging.destination.name = %queue,
            messaging.message.id = %run.job_run_identifier,
        );
        if let Some(link) = claimed
            .trace_context
            .as_deref()
            .and_then(otel::span_context)
        {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            span.add_link(link);
        }
        span
    };
    span
}

#[cfg(feature = "otel")]
mod otel {
    use bildad_core::Traceparent;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    /// The remote span context a W3C `traceparent` names, or `None` when it is not one.
    pub(super) fn span_context(traceparent: &str) -> Option<SpanContext> {
        let t = Traceparent::parse(traceparent)?;
        Some(SpanContext::new(
            TraceId::from_hex(t.trace_id).ok()?,
            SpanId::from_hex(t.span_id).ok()?,
            TraceFlags::new(t.flags) & TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ))
    }
}
