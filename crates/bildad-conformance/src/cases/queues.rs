//! Queues (SPEC §8): every entry and run names its queue; the settings of a queue
//! (paused, global limit, rate limit) bind every claim.

use crate::support::*;
use bildad_core::{FailureKind, JobStore, NewEntry, Outcome};
use serde_json::json;
use std::sync::Arc;

/// A template's queue is its entries' and their runs' queue unless the enqueue names
/// another; a retry keeps the entry's queue, and every read shows it.
pub async fn queue_carried_from_template_to_entry_run_and_retry(store: Arc<dyn JobStore>) {
    let s = &*store;
    let plain = template().create(s).await;
    assert_eq!(plain.queue, bildad_core::DEFAULT_QUEUE);
    let mut new = template().new_template();
    new.queue = "mail".into();
    let mailed = create_template(s, new).await;
    assert_eq!(mailed.queue, "mail");
    assert_eq!(
        expect_ok(s.get_template(&mailed.code).await, "get").queue,
        "mail"
    );

    let a = enqueue(s, NewEntry::new(plain.code.clone(), json!({}))).await;
    let b = enqueue(s, NewEntry::new(mailed.code.clone(), json!({}))).await;
    let c = enqueue(
        s,
        NewEntry::new(mailed.code.clone(), json!({}))
            .queue("urgent")
            .max_retries(1),
    )
    .await;
    assert_eq!(
        (a.queue.as_str(), b.queue.as_str(), c.queue.as_str()),
        ("default", "mail", "urgent")
    );
    let read = expect_ok(s.get_entry(&c.job_run_identifier).await, "get_entry");
    assert_eq!(read.queue, "urgent");

    let node = live_node(s, "n").await;
    let types = [plain.job_type.as_str(), mailed.job_type.as_str()];
    let claimed = expect_ok(s.claim(claim_request(&node, &types, 10)).await, "claim");
    assert_eq!(claimed.len(), 3);
    for run in &claimed {
        let want = [&a, &b, &c]
            .into_iter()
            .find(|e| e.job_run_identifier == run.run.job_run_identifier)
            .expect("a claimed entry");
        assert_eq!(run.run.queue, want.queue, "{run:?}");
        let stored = expect_ok(s.get_run(run.run.id).await, "get_run");
        assert_eq!(stored.queue, want.queue);
    }
    let running = expect_ok(s.get_entry(&c.job_run_identifier).await, "get_entry");
    assert_eq!(running.queue, "urgent");
    let c_run = claimed
        .iter()
        .find(|r| r.run.job_run_identifier == c.job_run_identifier)
        .expect("c's run");

    // Killer and engine see the queue too.
    let expiring = expect_ok(
        s.runs_to_expire(std::time::Duration::from_secs(3600)).await,
        "runs_to_expire",
    );
    assert!(expiring.is_empty(), "{expiring:?}");

    // The retry re-inserts the entry in its queue.
    finalize_and_win(
        s,
        finalize_request(c_run.run.id, Outcome::standard(FailureKind::Error)),
    )
    .await;
    let again = expect_ok(s.get_entry(&c.job_run_identifier).await, "get_entry");
    assert_eq!(again.queue, "urgent");
}

/// A queue name follows the rules of a code: anything else is invalid and writes
/// nothing.
pub async fn queue_name_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let mut new = template().new_template();
    new.queue = "no spaces".into();
    let e = s.create_template(new).await.expect_err("bad queue");
    assert_eq!(e.kind(), bildad_core::ErrorKind::Invalid, "{e:?}");
    let t = template().create(s).await;
    let e = s
        .enqueue(NewEntry::new(t.code.clone(), json!({})).queue(""))
        .await
        .expect_err("empty queue");
    assert_eq!(e.kind(), bildad_core::ErrorKind::Invalid, "{e:?}");
    assert_eq!(expect_ok(s.stats().await, "stats").available, 0);
}
