//! The trace context an entry carries (docs/OBSERVABILITY.md): kept from the enqueue,
//! handed to every claim of the entry, retries included.

use crate::support::*;
use bildad_core::{ErrorKind, FailureKind, JobStore, NewEntry, Outcome};
use serde_json::json;
use std::sync::Arc;

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A claim hands over the trace context the entry was enqueued with, and so does the
/// claim of its retry; an entry enqueued without one has none.
pub async fn trace_context_follows_the_entry_into_every_run(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let traced = NewEntry::new(t.code.clone(), json!({}))
        .max_retries(1)
        .trace_context(TRACEPARENT);
    let e = enqueue(s, traced).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(c.trace_context.as_deref(), Some(TRACEPARENT));
    let failed = Outcome::failed(FailureKind::Error, "again");
    finalize_and_win(s, finalize_request(c.run.id, failed)).await;
    let again = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(again.run.retry, 1);
    assert_eq!(again.trace_context.as_deref(), Some(TRACEPARENT));
    finish_successfully(s, again.run.id).await;

    let plain = enqueue(s, NewEntry::new(t.code.clone(), json!({}))).await;
    let c = claim_one(s, &node, &t, &plain.job_run_identifier).await;
    assert_eq!(c.trace_context, None);
}

/// A trace context that is not a W3C `traceparent` is `Invalid` at `/trace_context`,
/// and nothing is enqueued.
pub async fn trace_context_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    for bad in ["not-a-traceparent", &"0".repeat(300)] {
        let new = NewEntry::new(t.code.clone(), json!({})).trace_context(bad);
        let e = expect_err(s.enqueue(new).await, ErrorKind::Invalid, "enqueue");
        assert_pointers(&e, &["/trace_context"]);
    }
    assert_eq!(expect_ok(s.stats().await, "stats").available, 0);
}
