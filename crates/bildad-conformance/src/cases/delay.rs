//! A delayed enqueue (`NewEntry::run_in`, SPEC §7): the start is measured on the
//! database clock, never on the node's.

use crate::support::*;
use bildad_core::{ErrorKind, JobStore, MAX_RUN_IN, NewEntry};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// `run_in` sets `run_at` that long after the enqueue on the store's clock (between the
/// clock read before the enqueue and the one read after, each plus the delay); the entry
/// is scheduled, not claimable, and reads back as it was returned. In a bulk enqueue each
/// entry keeps its own delay, and an entry without one starts now.
pub async fn enqueue_run_in_delays_on_the_database_clock(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let hour = chrono::Duration::hours(1);

    let before = now(s).await;
    let e = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({})).run_in(Duration::from_secs(3600)),
    )
    .await;
    let after = now(s).await;
    assert_between(
        e.run_at,
        before + hour,
        after + hour,
        "run_at = now + run_in",
    );
    assert_eq!(
        expect_ok(s.get_entry(&e.job_run_identifier).await, "get_entry"),
        e
    );
    assert!(
        expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 10)).await,
            "claim"
        )
        .is_empty(),
        "a delayed entry is not claimable before its time"
    );
    let st = expect_ok(s.stats().await, "stats");
    assert_eq!((st.available, st.scheduled), (0, 1));

    let before = now(s).await;
    let bulk = expect_ok(
        s.enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({})).run_in(Duration::from_secs(2 * 3600)),
            NewEntry::new(t.code.clone(), json!({})),
            NewEntry::new(t.code.clone(), json!({})).run_in(Duration::from_millis(1500)),
        ])
        .await,
        "enqueue_many",
    );
    let after = now(s).await;
    let ms = chrono::Duration::milliseconds;
    assert_between(
        bulk[0].run_at,
        before + ms(7_200_000),
        after + ms(7_200_000),
        "2 h",
    );
    assert_between(bulk[1].run_at, before, after, "no delay: now");
    assert_between(bulk[2].run_at, before + ms(1500), after + ms(1500), "1.5 s");
}

/// `run_in` beside `run_at`, or longer than [`MAX_RUN_IN`], is `Invalid` at `/run_in`
/// (`/<index>/run_in` in a bulk enqueue); nothing is written.
pub async fn enqueue_run_in_invalid(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let at = now(s).await;
    let e = expect_err(
        s.enqueue(
            NewEntry::new(t.code.clone(), json!({}))
                .run_at(at)
                .run_in(Duration::from_secs(1)),
        )
        .await,
        ErrorKind::Invalid,
        "run_at and run_in",
    );
    assert_pointers(&e, &["/run_in"]);
    let e = expect_err(
        s.enqueue_many(vec![
            NewEntry::new(t.code.clone(), json!({})).run_in(Duration::from_secs(1)),
            NewEntry::new(t.code.clone(), json!({})).run_in(MAX_RUN_IN + Duration::from_secs(1)),
            NewEntry::new(t.code.clone(), json!({})).run_in(Duration::MAX),
        ])
        .await,
        ErrorKind::Invalid,
        "too long a delay",
    );
    assert_pointers(&e, &["/1/run_in", "/2/run_in"]);
    assert_eq!(counts(s).await, (0, 0));
    expect_ok(
        s.enqueue(NewEntry::new(t.code.clone(), json!({})).run_in(MAX_RUN_IN))
            .await,
        "the longest delay",
    );
}
