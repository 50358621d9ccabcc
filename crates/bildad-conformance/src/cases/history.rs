//! Run history (listing, filters, pages, pruning, activity), nodes and counts.

use crate::support::*;
use bildad_core::{
    ErrorKind, FailureKind, JobRun, JobStore, JobTemplate, NewEntry, NodeRef, Outcome, QueueStats,
    RunActivity, RunFilter, RunId, RunResult, RunStatus,
};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Six runs in sequence over two templates and two nodes: succeeded, failed, failed,
/// succeeded, then two still running.
struct SixRuns {
    t1: JobTemplate,
    t2: JobTemplate,
    n1: NodeRef,
    n2: NodeRef,
    runs: Vec<JobRun>,
}

impl SixRuns {
    async fn create(s: &dyn JobStore) -> Self {
        let t1 = template().create(s).await;
        let t2 = template().create(s).await;
        let n1 = live_node(s, "conf-node-one").await;
        let n2 = live_node(s, "conf-node-two").await;
        // (template, node, how it ends)
        let plan: [(usize, &NodeRef, Option<bool>); 6] = [
            (0, &n1, Some(true)),
            (1, &n1, Some(false)),
            (0, &n2, Some(false)),
            (1, &n2, Some(true)),
            (0, &n1, None),
            (1, &n2, None),
        ];
        let templates = [&t1, &t2];
        let mut runs = Vec::new();
        for (ti, node, end) in plan {
            let t = templates[ti];
            let e = enqueue_with_retries(s, t, 0).await;
            let c = claim_one(s, node, t, &e.job_run_identifier).await;
            match end {
                Some(true) => {
                    finish_successfully(s, c.run.id).await;
                }
                Some(false) => {
                    finalize_and_win(
                        s,
                        finalize_request(c.run.id, Outcome::failed(FailureKind::Error, "e")),
                    )
                    .await;
                }
                None => {}
            }
            runs.push(expect_ok(s.get_run(c.run.id).await, "run"));
        }
        Self {
            t1,
            t2,
            n1,
            n2,
            runs,
        }
    }

    /// The ids of the runs at `idx` (in creation order), newest first.
    fn newest_first(&self, idx: &[usize]) -> Vec<RunId> {
        idx.iter().rev().map(|&i| self.runs[i].id).collect()
    }
}

/// The ids of every run matching `filter`, in the store's order.
async fn run_ids(s: &dyn JobStore, filter: RunFilter) -> Vec<RunId> {
    all_runs(s, filter)
        .await
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Runs are listed newest first, as they were stored.
pub async fn list_runs_newest_first(store: Arc<dyn JobStore>) {
    let s = &*store;
    let six = SixRuns::create(s).await;
    assert_eq!(
        run_ids(s, RunFilter::default()).await,
        six.newest_first(&[0, 1, 2, 3, 4, 5])
    );
    let all = all_runs(s, RunFilter::default()).await;
    assert_eq!(
        all,
        six.runs.iter().rev().cloned().collect::<Vec<_>>(),
        "full rows"
    );
}

/// Each filter of `list_runs` (status, result, template, node instance or name,
/// identifier, several at once) narrows the history to the runs that match it.
pub async fn list_runs_each_filter_narrows(store: Arc<dyn JobStore>) {
    let s = &*store;
    let six = SixRuns::create(s).await;
    let f = |g: fn(&mut RunFilter)| {
        let mut x = RunFilter::default();
        g(&mut x);
        x
    };
    assert_eq!(
        run_ids(s, f(|x| x.status = Some(RunStatus::Running))).await,
        six.newest_first(&[4, 5])
    );
    assert_eq!(
        run_ids(s, f(|x| x.status = Some(RunStatus::Done))).await,
        six.newest_first(&[0, 1, 2, 3])
    );
    assert_eq!(
        run_ids(s, f(|x| x.result = Some(RunResult::Succeeded))).await,
        six.newest_first(&[0, 3])
    );
    assert_eq!(
        run_ids(s, f(|x| x.result = Some(RunResult::Failed))).await,
        six.newest_first(&[1, 2])
    );
    let by_template = RunFilter {
        template: Some(six.t1.code.clone()),
        ..Default::default()
    };
    assert_eq!(run_ids(s, by_template).await, six.newest_first(&[0, 2, 4]));
    let by_instance = RunFilter {
        node: Some(six.n2.instance_id.clone()),
        ..Default::default()
    };
    assert_eq!(run_ids(s, by_instance).await, six.newest_first(&[2, 3, 5]));
    let by_name = RunFilter {
        node: Some(six.n1.name.clone()),
        ..Default::default()
    };
    assert_eq!(run_ids(s, by_name).await, six.newest_first(&[0, 1, 4]));
    let by_id = RunFilter {
        identifier: Some(six.runs[3].job_run_identifier.clone()),
        ..Default::default()
    };
    assert_eq!(run_ids(s, by_id).await, six.newest_first(&[3]));
    let combined = RunFilter {
        template: Some(six.t2.code.clone()),
        node: Some(six.n2.instance_id.clone()),
        result: Some(RunResult::Succeeded),
        ..Default::default()
    };
    assert_eq!(run_ids(s, combined).await, six.newest_first(&[3]));
    let none = RunFilter {
        identifier: Some("conf-unknown".into()),
        ..Default::default()
    };
    assert!(run_ids(s, none).await.is_empty());
}

/// `list_runs` pages count from 0, a page past the end is empty, and the total counts
/// every matching run (the filter's, not the page's).
pub async fn list_runs_pages_and_totals(store: Arc<dyn JobStore>) {
    let s = &*store;
    let six = SixRuns::create(s).await;
    let p = expect_ok(
        s.list_runs(RunFilter::default(), page(1, 4)).await,
        "page 1",
    );
    assert_eq!((p.total, p.page, p.limit), (6, 1, 4));
    assert_eq!(
        p.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        six.newest_first(&[0, 1])
    );
    let p = expect_ok(
        s.list_runs(RunFilter::default(), page(3, 4)).await,
        "past the end",
    );
    assert!(p.items.is_empty());
    assert_eq!(p.total, 6);
    let failed = RunFilter {
        result: Some(RunResult::Failed),
        ..Default::default()
    };
    let p = expect_ok(s.list_runs(failed, page(0, 1)).await, "filtered total");
    assert_eq!((p.items.len(), p.total), (1, 2));
}

/// `get_run` of an unknown id is `NotFound`.
pub async fn get_run_not_found(store: Arc<dyn JobStore>) {
    let s = &*store;
    expect_err(
        s.get_run(987_654_321).await,
        ErrorKind::NotFound,
        "unknown run",
    );
    expect_err(s.get_run(-1).await, ErrorKind::NotFound, "negative id");
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let e = enqueue_with_retries(s, &t, 0).await;
    let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
    assert_eq!(expect_ok(s.get_run(c.run.id).await, "get_run"), c.run);
}

/// `prune_runs` deletes only `DONE` runs that ended before the date, and says how many.
pub async fn prune_runs_only_old_done(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let start = |max: i32| {
        let t = &t;
        let node = &node;
        async move {
            let e = enqueue_with_retries(s, t, max).await;
            claim_one(s, node, t, &e.job_run_identifier).await
        }
    };
    let running_old = start(0).await;
    let old_ok = start(0).await;
    finish_successfully(s, old_ok.run.id).await;
    let old_failed = start(0).await;
    finalize_and_win(
        s,
        finalize_request(old_failed.run.id, Outcome::failed(FailureKind::Error, "e")),
    )
    .await;
    let old_end = expect_ok(s.get_run(old_failed.run.id).await, "run")
        .ended_at
        .unwrap();
    wait_past(s, old_end).await;
    let cutoff = now(s).await;
    wait_past(s, cutoff).await;
    let new_ok = start(0).await;
    finish_successfully(s, new_ok.run.id).await;
    assert!(
        expect_ok(s.get_run(new_ok.run.id).await, "run")
            .ended_at
            .unwrap()
            > cutoff
    );

    assert_eq!(expect_ok(s.prune_runs(cutoff).await, "prune"), 2);
    expect_err(
        s.get_run(old_ok.run.id).await,
        ErrorKind::NotFound,
        "pruned",
    );
    expect_err(
        s.get_run(old_failed.run.id).await,
        ErrorKind::NotFound,
        "pruned",
    );
    expect_ok(s.get_run(running_old.run.id).await, "running run kept");
    expect_ok(s.get_run(new_ok.run.id).await, "newer run kept");
    assert_eq!(expect_ok(s.prune_runs(cutoff).await, "prune again"), 0);
    assert_eq!(counts(s).await, (1, 2));
}

/// A node's first heartbeat creates its row, stamped now by the store.
pub async fn heartbeat_creates_the_node_row(store: Arc<dyn JobStore>) {
    let s = &*store;
    assert!(expect_ok(s.list_nodes().await, "list_nodes").is_empty());
    let a = NodeRef::new("conf-node-a");
    let before = now(s).await;
    expect_ok(s.heartbeat(&a).await, "heartbeat a");
    let after = now(s).await;
    let nodes = expect_ok(s.list_nodes().await, "list_nodes");
    assert_eq!(nodes.len(), 1);
    let first = nodes[0].clone();
    assert_eq!(first.instance_id, a.instance_id);
    assert_eq!(first.name, a.name);
    assert_eq!(first.started_at, first.last_heartbeat_at);
    assert_between(first.started_at, before, after, "started_at");
    assert_eq!(first.stopped_at, None);
}

/// `list_nodes` is latest heartbeat first; a later heartbeat moves a node up, keeps its
/// `started_at` and moves its `last_heartbeat_at` forward.
pub async fn list_nodes_latest_heartbeat_first(store: Arc<dyn JobStore>) {
    let s = &*store;
    let a = NodeRef::new("conf-node-a");
    let b = NodeRef::new("conf-node-b");
    expect_ok(s.heartbeat(&a).await, "heartbeat a");
    let first = expect_ok(s.list_nodes().await, "list_nodes")[0].clone();

    wait_past(s, first.last_heartbeat_at).await;
    expect_ok(s.heartbeat(&b).await, "heartbeat b");
    let nodes = expect_ok(s.list_nodes().await, "list_nodes");
    let order: Vec<_> = nodes.iter().map(|n| n.instance_id.clone()).collect();
    assert_eq!(order, [b.instance_id.clone(), a.instance_id.clone()]);

    wait_past(s, nodes[0].last_heartbeat_at).await;
    expect_ok(s.heartbeat(&a).await, "heartbeat a again");
    let nodes = expect_ok(s.list_nodes().await, "list_nodes");
    let order: Vec<_> = nodes.iter().map(|n| n.instance_id.clone()).collect();
    assert_eq!(order, [a.instance_id.clone(), b.instance_id.clone()]);
    assert_eq!(nodes[0].started_at, first.started_at, "started_at kept");
    assert!(nodes[0].last_heartbeat_at > first.last_heartbeat_at);
}

/// A restart under the same name is a new instance, with a row of its own.
pub async fn node_restart_is_a_new_instance(store: Arc<dyn JobStore>) {
    let s = &*store;
    let a = NodeRef::new("conf-node-a");
    expect_ok(s.heartbeat(&a).await, "heartbeat a");
    let a2 = NodeRef::new("conf-node-a");
    expect_ok(s.heartbeat(&a2).await, "heartbeat a2");
    let nodes = expect_ok(s.list_nodes().await, "list_nodes");
    assert_eq!(nodes.len(), 2);
    assert_ne!(nodes[0].instance_id, nodes[1].instance_id);
}

/// `stats` counts entries by state, runs by result, and templates.
pub async fn stats_counts(store: Arc<dyn JobStore>) {
    let s = &*store;
    assert_eq!(expect_ok(s.stats().await, "stats"), QueueStats::default());
    let t = template().create(s).await;
    let inactive = template().create(s).await;
    let patch = bildad_core::TemplatePatch {
        active: Some(false),
        ..Default::default()
    };
    expect_ok(s.update_template(&inactive.code, patch).await, "deactivate");
    let node = live_node(s, "conf-node").await;
    let later = now(s).await + chrono::Duration::hours(1);
    for _ in 0..3 {
        enqueue(s, NewEntry::new(t.code.clone(), json!({})).run_at(later)).await;
    }
    let news: Vec<_> = (0..6)
        .map(|_| NewEntry::new(t.code.clone(), json!({})).max_retries(0))
        .collect();
    expect_ok(s.enqueue_many(news).await, "enqueue_many");
    let c = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 4)).await,
        "claim",
    );
    assert_eq!(c.len(), 4);
    finish_successfully(s, c[0].run.id).await;
    finalize_and_win(
        s,
        finalize_request(c[1].run.id, Outcome::failed(FailureKind::Error, "e")),
    )
    .await;
    let st = expect_ok(s.stats().await, "stats");
    assert_eq!(
        st,
        QueueStats {
            available: 2,
            scheduled: 3,
            running: 2,
            succeeded: 1,
            failed: 1,
            templates: 2,
        }
    );
}

/// `run_activity` counts `DONE` runs started at or after `since`, by result and by the
/// bucket in which they ended — exactly what counting them one by one with
/// [`RunActivity::record`] over `list_runs` gives.
pub async fn run_activity_matches_run_history(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let before = now(s).await;
    let mut since_mid = before;
    for i in 0..6 {
        if i == 3 {
            wait_past(s, now(s).await).await;
            since_mid = now(s).await;
        }
        let e = enqueue_with_retries(s, &t, 0).await;
        let c = claim_one(s, &node, &t, &e.job_run_identifier).await;
        let outcome = if i % 3 == 2 {
            Outcome::failed(FailureKind::Error, "boom")
        } else {
            Outcome::succeeded(None)
        };
        finalize_and_win(s, finalize_request(c.run.id, outcome)).await;
        wait_past(s, now(s).await).await;
    }
    // One run still RUNNING: never counted.
    let e = enqueue_with_retries(s, &t, 0).await;
    claim_one(s, &node, &t, &e.job_run_identifier).await;

    let done = all_runs(
        s,
        RunFilter {
            status: Some(RunStatus::Done),
            ..RunFilter::default()
        },
    )
    .await;
    let buckets = [
        Duration::from_millis(1),
        Duration::from_millis(3),
        Duration::from_secs(3600),
    ];
    for since in [before, since_mid, now(s).await] {
        for bucket in buckets {
            let mut want = RunActivity {
                complete: true,
                ..RunActivity::default()
            };
            for r in done.iter().filter(|r| r.started_at >= since) {
                want.record(
                    r.result.expect("a DONE run has a result"),
                    r.ended_at.expect("a DONE run has ended") - since,
                    bucket,
                );
            }
            let got = expect_ok(s.run_activity(since, bucket).await, "run_activity");
            assert_eq!(got, want, "run_activity(since {since}, bucket {bucket:?})");
        }
    }
    let all = expect_ok(
        s.run_activity(before, Duration::from_secs(3600)).await,
        "run_activity",
    );
    assert_eq!((all.succeeded, all.failed), (4, 2));
}
