//! Expiry: a run past its time and a run of a node whose heartbeat went stale are
//! expired, the killer sees only its own node's timed-out runs, on PostgreSQL and SQLite.

use crate::{JOB_TYPE, claim_request, pg_broken_invariants};
use bildad_conformance::fixtures::template;
use bildad_core::{FailureKind, Finalize, JobStore, NewEntry, NodeRef, Outcome};
use bildad_store_diesel::testing::{TestPg, TestSqlite};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits (polling the database clock, which is what expiry reads) until `t` has passed.
async fn until_db_clock_passes(store: &dyn JobStore, t: bildad_core::Timestamp) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.now().await.unwrap() <= t {
        assert!(Instant::now() < deadline, "database clock never passed {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn expiry_by_time_and_heartbeat(store: Arc<dyn JobStore>) {
    template()
        .code("exp")
        .job_type(JOB_TYPE)
        .create(&*store)
        .await;
    let alive = NodeRef::new("alive");
    let dead = NodeRef::new("dead");
    store.heartbeat(&dead).await.unwrap();
    store
        .enqueue_many(vec![
            NewEntry::new("exp", json!({}))
                .identifier("by-time")
                .timeout_seconds(1),
            NewEntry::new("exp", json!({})).identifier("by-heartbeat"),
        ])
        .await
        .unwrap();
    let mut req = claim_request(&alive, 1);
    req.expiry_grace = Duration::ZERO;
    req.only_identifier = Some("by-time".into());
    let by_time = store.claim(req).await.unwrap().remove(0).run;
    let mut req = claim_request(&dead, 1);
    req.only_identifier = Some("by-heartbeat".into());
    let by_heartbeat = store.claim(req).await.unwrap().remove(0).run;
    store.heartbeat(&alive).await.unwrap();

    // Nothing is expired yet (a generous dead-after keeps the heartbeat fresh).
    assert!(
        store
            .runs_to_expire(Duration::from_secs(3600))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .runs_to_kill(&alive.instance_id)
            .await
            .unwrap()
            .is_empty()
    );

    until_db_clock_passes(&*store, by_time.expires_at).await;
    let ids = |v: Vec<bildad_core::RunRef>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .runs_to_expire(Duration::from_secs(3600))
            .await
            .unwrap()),
        vec![by_time.id]
    );
    // Killer: only the owning node sees its timed-out run.
    assert_eq!(
        ids(store.runs_to_kill(&alive.instance_id).await.unwrap()),
        vec![by_time.id]
    );
    assert!(
        store
            .runs_to_kill(&dead.instance_id)
            .await
            .unwrap()
            .is_empty()
    );

    // The dead node's heartbeat is older than a tiny dead-after; the alive node just beat.
    let last = store
        .list_nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|n| n.instance_id == dead.instance_id)
        .unwrap()
        .last_heartbeat_at;
    until_db_clock_passes(&*store, last + chrono::Duration::milliseconds(50)).await;
    store.heartbeat(&alive).await.unwrap();
    let mut expired = ids(store
        .runs_to_expire(Duration::from_millis(50))
        .await
        .unwrap());
    expired.sort();
    assert_eq!(expired, vec![by_time.id, by_heartbeat.id]);

    let fin = store
        .finalize(Finalize {
            run_id: by_heartbeat.id,
            outcome: Outcome::standard(FailureKind::Expired),
            backoff: bildad_core::Backoff::immediate(),
        })
        .await
        .unwrap();
    assert!(fin.won);
    assert_eq!(
        ids(store
            .runs_to_expire(Duration::from_millis(50))
            .await
            .unwrap()),
        vec![by_time.id]
    );
    assert_eq!(
        store
            .runs_finalized(&[by_time.id, by_heartbeat.id])
            .await
            .unwrap(),
        vec![by_heartbeat.id]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pg_expiry_by_time_and_by_stale_heartbeat() {
    let Some(db) = TestPg::fresh().await else {
        return;
    };
    expiry_by_time_and_heartbeat(db.store()).await;
    assert_eq!(pg_broken_invariants(db.url()).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_expiry_by_time_and_by_stale_heartbeat() {
    let db = TestSqlite::fresh().await;
    expiry_by_time_and_heartbeat(db.store()).await;
}
