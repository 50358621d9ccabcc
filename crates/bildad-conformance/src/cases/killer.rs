//! What the killer and the engine ask the store (SPEC §2.5–2.6): runs to kill, runs to
//! expire, runs finalized elsewhere. Time passing is the point here, so these cases
//! poll the store with a deadline.

use crate::support::*;
use bildad_core::{
    ClaimedRun, FailureKind, JobStore, JobTemplate, NewEntry, NodeRef, Outcome, RunId, RunRef,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// Enqueues an entry of `t` with `timeout` seconds and claims it on `node` with `grace`.
async fn start(
    s: &dyn JobStore,
    t: &JobTemplate,
    node: &NodeRef,
    timeout: i32,
    grace: u64,
) -> ClaimedRun {
    let e = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({}))
            .timeout_seconds(timeout)
            .max_retries(3),
    )
    .await;
    let mut req = claim_request(node, &[&t.job_type], 1);
    req.only_identifier = Some(e.job_run_identifier.clone());
    req.expiry_grace = Duration::from_secs(grace);
    let mut got = expect_ok(s.claim(req).await, "claim");
    assert_eq!(got.len(), 1);
    got.remove(0)
}

fn ids(refs: &[RunRef]) -> BTreeSet<RunId> {
    refs.iter().map(|r| r.run_id).collect()
}

fn run_ref(c: &ClaimedRun) -> RunRef {
    RunRef {
        run_id: c.run.id,
        job_run_identifier: c.run.job_run_identifier.clone(),
        retry: c.run.retry,
        node: c.run.node.clone(),
        queue: c.run.queue.clone(),
    }
}

/// A node kills only its own runs, and only those past `timeout_at`.
pub async fn runs_to_kill_own_node_past_timeout(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let a = live_node(s, "conf-node-a").await;
    let b = live_node(s, "conf-node-b").await;
    let a_long = start(s, &t, &a, 3600, 600).await;
    let a_short = start(s, &t, &a, 1, 600).await;
    let b_short = start(s, &t, &b, 1, 600).await;

    poll("node a's short run to pass timeout_at", || async {
        let k = expect_ok(s.runs_to_kill(&a.instance_id).await, "runs_to_kill");
        ids(&k).contains(&a_short.run.id).then_some(())
    })
    .await;
    poll("node b's short run to pass timeout_at", || async {
        let k = expect_ok(s.runs_to_kill(&b.instance_id).await, "runs_to_kill");
        ids(&k).contains(&b_short.run.id).then_some(())
    })
    .await;
    // Both short runs are now past timeout_at: each node sees only its own.
    let ka = expect_ok(s.runs_to_kill(&a.instance_id).await, "runs_to_kill a");
    assert_eq!(
        ka,
        [run_ref(&a_short)],
        "node a kills only its own, past timeout"
    );
    let kb = expect_ok(s.runs_to_kill(&b.instance_id).await, "runs_to_kill b");
    assert_eq!(kb, [run_ref(&b_short)]);
    assert!(expect_ok(s.runs_to_kill("conf-unknown-node").await, "unknown node").is_empty());
    assert!(!ids(&ka).contains(&a_long.run.id));

    // Killed: no longer listed.
    finalize_and_win(
        s,
        finalize_request(a_short.run.id, Outcome::standard(FailureKind::Timeout)),
    )
    .await;
    assert!(expect_ok(s.runs_to_kill(&a.instance_id).await, "after kill").is_empty());
    // A run of node a is not killable by its name either (instance ids only).
    assert!(expect_ok(s.runs_to_kill(&b.name).await, "by name").is_empty());
}

/// A run still `RUNNING` past `expires_at` is listed for expiry, whatever its node;
/// a run past `timeout_at` but inside its grace is not.
pub async fn runs_to_expire_past_expires_at(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let long = start(s, &t, &node, 3600, 0).await;
    let in_grace = start(s, &t, &node, 1, 600).await;
    let expiring = start(s, &t, &node, 1, 0).await;
    let hour = Duration::from_secs(3600);

    poll("a run to pass expires_at", || async {
        let x = expect_ok(s.runs_to_expire(hour).await, "runs_to_expire");
        ids(&x).contains(&expiring.run.id).then_some(())
    })
    .await;
    expect_ok(s.heartbeat(&node).await, "heartbeat");
    let x = expect_ok(s.runs_to_expire(hour).await, "runs_to_expire");
    assert_eq!(x, [run_ref(&expiring)], "only the run past expires_at");
    // The one in its grace period is past timeout_at: the killer's, not the engine's.
    let k = expect_ok(s.runs_to_kill(&node.instance_id).await, "runs_to_kill");
    assert!(ids(&k).contains(&in_grace.run.id));
    assert!(!ids(&k).contains(&long.run.id));

    finalize_and_win(
        s,
        finalize_request(expiring.run.id, Outcome::standard(FailureKind::Expired)),
    )
    .await;
    assert!(expect_ok(s.runs_to_expire(hour).await, "after expiry").is_empty());
}

/// A run whose node has not heartbeated for `node_dead_after` is listed for expiry; a
/// fresh heartbeat is not dead.
pub async fn runs_to_expire_stale_heartbeat(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let dead = live_node(s, "conf-node-dead").await;
    let alive = live_node(s, "conf-node-alive").await;
    let dead_run = start(s, &t, &dead, 3600, 600).await;
    let alive_run = start(s, &t, &alive, 3600, 600).await;
    let dead_after = Duration::from_secs(3);

    let x = poll("a node to miss its heartbeats", || async {
        expect_ok(s.heartbeat(&alive).await, "heartbeat");
        let x = expect_ok(s.runs_to_expire(dead_after).await, "runs_to_expire");
        ids(&x).contains(&dead_run.run.id).then_some(x)
    })
    .await;
    assert_eq!(
        x,
        [run_ref(&dead_run)],
        "a fresh heartbeat is not dead: {x:?}"
    );
    assert!(!ids(&x).contains(&alive_run.run.id));
    // With a longer allowance the same node is alive.
    let x = expect_ok(
        s.runs_to_expire(Duration::from_secs(3600)).await,
        "runs_to_expire",
    );
    assert!(x.is_empty(), "{x:?}");
    // The node comes back: no longer dead.
    expect_ok(s.heartbeat(&dead).await, "heartbeat");
    let x = expect_ok(s.runs_to_expire(dead_after).await, "runs_to_expire");
    assert!(!ids(&x).contains(&dead_run.run.id), "{x:?}");
}

/// The runs of a node that recorded a clean stop are listed for expiry at once.
pub async fn runs_to_expire_stopped_node(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let gone = live_node(s, "conf-node-gone").await;
    let alive = live_node(s, "conf-node-alive").await;
    let gone_run = start(s, &t, &gone, 3600, 600).await;
    let _alive_run = start(s, &t, &alive, 3600, 600).await;
    let hour = Duration::from_secs(3600);
    assert!(expect_ok(s.runs_to_expire(hour).await, "runs_to_expire").is_empty());
    expect_ok(s.node_stopped(&gone.instance_id).await, "node_stopped");
    let x = expect_ok(s.runs_to_expire(hour).await, "runs_to_expire");
    assert_eq!(x, [run_ref(&gone_run)]);
    let nodes = expect_ok(s.list_nodes().await, "list_nodes");
    let g = nodes
        .iter()
        .find(|n| n.instance_id == gone.instance_id)
        .expect("node");
    assert!(g.stopped_at.is_some());
    let a = nodes
        .iter()
        .find(|n| n.instance_id == alive.instance_id)
        .expect("node");
    assert!(a.stopped_at.is_none());
    // Unknown instance: nothing to record, not an error that changes anything.
    let _ = s.node_stopped("conf-unknown-node").await;
    assert_eq!(expect_ok(s.list_nodes().await, "list_nodes").len(), 2);
}

/// `runs_finalized` returns exactly the runs that are no longer `RUNNING`, pruned ones
/// included.
pub async fn runs_finalized_reports_finalized(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let news: Vec<_> = (0..4)
        .map(|i| NewEntry::new(t.code.clone(), json!({"i": i})).max_retries(2))
        .collect();
    expect_ok(s.enqueue_many(news).await, "enqueue_many");
    let c = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 4)).await,
        "claim",
    );
    assert_eq!(c.len(), 4);
    let all: Vec<RunId> = c.iter().map(|x| x.run.id).collect();
    assert!(expect_ok(s.runs_finalized(&all).await, "none yet").is_empty());
    assert!(expect_ok(s.runs_finalized(&[]).await, "empty").is_empty());

    finish_successfully(s, all[0]).await;
    finalize_and_win(
        s,
        finalize_request(all[1], Outcome::failed(FailureKind::Error, "e")),
    )
    .await;
    expect_ok(s.stop_entry(&c[2].run.job_run_identifier).await, "stop");
    let want: BTreeSet<_> = all[..3].iter().copied().collect();
    let got: BTreeSet<_> = expect_ok(s.runs_finalized(&all).await, "runs_finalized")
        .into_iter()
        .collect();
    assert_eq!(got, want);
    let got = expect_ok(s.runs_finalized(&[all[3]]).await, "running one");
    assert!(got.is_empty());

    // Pruned runs are no longer RUNNING either.
    let newest_end = (0..3)
        .map(|i| all[i])
        .map(|id| async move { expect_ok(s.get_run(id).await, "run").ended_at.unwrap() });
    let newest_end = futures::future::join_all(newest_end)
        .await
        .into_iter()
        .max()
        .unwrap();
    wait_past(s, newest_end).await;
    assert_eq!(expect_ok(s.prune_runs(now(s).await).await, "prune"), 3);
    let got: BTreeSet<_> = expect_ok(s.runs_finalized(&all).await, "after prune")
        .into_iter()
        .collect();
    assert_eq!(got, want);
}
