//! What a job produced, holding NUL characters (SPEC §4): the finalize succeeds, and the
//! output or reason is stored with each U+0000 written as the six characters `\u0000`
//! (`bildad_core::NUL_ESCAPE`), on every store alike.

use crate::support::*;
use bildad_core::{EntryFate, FailureKind, JobStore, NUL_ESCAPE, Outcome, RunResult, RunStatus};
use serde_json::json;
use std::sync::Arc;

/// A success whose output holds NULs in a key, a string and an array item ends the run;
/// the output is stored escaped.
pub async fn finalize_output_with_nul_is_stored_escaped(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    let output = json!({"k\u{0}": "a\u{0}b", "list": ["\u{0}", 1, null]});
    let r = finalize_and_win(
        s,
        finalize_request(c.run.id, Outcome::succeeded(Some(output))),
    )
    .await;
    assert_eq!(r.entry, EntryFate::Deleted);
    let run = expect_ok(s.get_run(c.run.id).await, "run");
    assert_eq!(run.status, RunStatus::Done);
    assert_eq!(run.result, Some(RunResult::Succeeded));
    let key = format!("k{NUL_ESCAPE}");
    let mut want = json!({"list": [NUL_ESCAPE, 1, null]});
    want[&key] = json!(format!("a{NUL_ESCAPE}b"));
    assert_eq!(run.output, Some(want));
}

/// Failures (an error, a panic) whose message holds a NUL end the run and apply the
/// retry rule; the reason is stored escaped.
pub async fn finalize_reason_with_nul_is_stored_escaped(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 1).await;
    let id = &e.job_run_identifier;
    for (kind, message, fate_requeued) in [
        (FailureKind::Error, "smtp\u{0}down", true),
        (FailureKind::Panic, "index out of bounds\u{0}", false),
    ] {
        let c = claim_one(s, &node, &t, id).await;
        let r = finalize_and_win(
            s,
            finalize_request(c.run.id, Outcome::failed(kind, message)),
        )
        .await;
        assert_eq!(
            matches!(r.entry, EntryFate::Requeued { .. }),
            fate_requeued,
            "{kind:?}: {r:?}"
        );
        let run = expect_ok(s.get_run(c.run.id).await, "run");
        assert_eq!(run.status, RunStatus::Done, "{kind:?}");
        assert_eq!(run.result, Some(RunResult::Failed));
        assert_eq!(
            run.reason,
            Some(message.replace('\u{0}', NUL_ESCAPE)),
            "{kind:?}"
        );
    }
}
