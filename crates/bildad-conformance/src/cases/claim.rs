//! Claim and start (SPEC §2.2–2.3).

use crate::support::*;
use bildad_core::{ClaimedRun, EntryStatus, JobStore, NewEntry, NewTemplate, RunFilter, RunStatus};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// The claimed run: `retry` = earlier runs, `RUNNING`, `timeout_at = started_at +
/// timeout`, `expires_at = timeout_at + grace`, node recorded; the entry is `RUNNING`
/// with `current_run_id`.
pub async fn claim_records_the_run(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node-a").await;
    let ctx = json!({"to": "x@y"});
    let id = unique("conf-id");
    let e = enqueue(
        s,
        NewEntry::new(t.code.clone(), ctx.clone())
            .identifier(id.clone())
            .timeout_seconds(45)
            .max_retries(2),
    )
    .await;
    let mut req = claim_request(&node, &[&t.job_type], 5);
    req.expiry_grace = Duration::from_secs(17);
    let before = now(s).await;
    let got = expect_ok(s.claim(req.clone()).await, "claim");
    let after = now(s).await;
    assert_eq!(got.len(), 1);
    let c = &got[0];
    let r = &c.run;
    assert_eq!(r.job_run_identifier, id);
    assert_eq!(r.template, t.code);
    assert_eq!(r.job_type, t.job_type);
    assert_eq!(r.retry, 0);
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.result, None);
    assert_eq!(r.reason, None);
    assert_eq!(r.output, None);
    assert_eq!(r.ended_at, None);
    assert_eq!(r.context, ctx);
    assert_eq!(r.node, node.instance_id);
    assert_eq!(r.node_name, node.name);
    assert!(!r.process_name.is_empty());
    assert_between(r.started_at, before, after, "started_at");
    assert_eq!(r.timeout_at, r.started_at + chrono::Duration::seconds(45));
    assert_eq!(r.expires_at, r.timeout_at + chrono::Duration::seconds(17));
    assert_eq!(c.max_retries, 2);
    assert_eq!(c.template_id, t.id);
    assert_eq!(c.template_updated_at, t.updated_at);
    assert_eq!(c.entry_run_at, e.run_at, "entry_run_at: the entry's run_at");
    assert_eq!(expect_ok(s.get_run(r.id).await, "get_run"), *r);

    let entry = expect_ok(s.get_entry(&id).await, "entry");
    assert_eq!(entry.status, EntryStatus::Running);
    assert_eq!(entry.current_run_id, Some(r.id));
    assert_eq!(entry.attempts, 1);
    assert_eq!(entry.id, e.id);
    assert!(expect_ok(s.claim(req.clone()).await, "claim again").is_empty());

    // A failed run requeues; the next claim is retry 1 with a new run and process name.
    finalize_and_win(
        s,
        finalize_request(
            r.id,
            bildad_core::Outcome::failed(bildad_core::FailureKind::Error, "boom"),
        ),
    )
    .await;
    let c2 = claim_one(s, &node, &t, &id).await;
    assert_eq!(c2.run.retry, 1);
    assert_ne!(c2.run.id, r.id);
    assert_ne!(c2.run.process_name, r.process_name);
    let entry = expect_ok(s.get_entry(&id).await, "entry");
    assert_eq!(entry.attempts, 2);
    assert_eq!(entry.current_run_id, Some(c2.run.id));

    // A template updated since: the claim reports the new version.
    let patch = bildad_core::TemplatePatch {
        name: Some("renamed".into()),
        ..Default::default()
    };
    let t2 = expect_ok(s.update_template(&t.code, patch).await, "update");
    let e3 = enqueue_with_retries(s, &t, 0).await;
    let c3 = claim_one(s, &node, &t, &e3.job_run_identifier).await;
    assert_eq!(c3.template_updated_at, t2.updated_at);
}

/// Claims follow `priority`, then enqueue time (not `run_at`), then id.
pub async fn claim_order_priority_then_enqueue_time(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let base = now(s).await;
    // (label, priority, run_at offset in seconds): enqueued in this order.
    let specs = [
        ("p5-first", 5, -10),
        ("p1-first", 1, -10),
        ("p5-second", 5, -3600), // older run_at, but enqueued later
        ("p3", 3, -10),
        ("p1-second", 1, -20),
        ("p-neg", -4, -10),
    ];
    let mut ids = HashMap::new();
    for (label, prio, off) in specs {
        let e = enqueue(
            s,
            NewEntry::new(t.code.clone(), json!({"label": label}))
                .priority(prio)
                .run_at(base + chrono::Duration::seconds(off)),
        )
        .await;
        ids.insert(e.job_run_identifier.clone(), label);
    }
    let want = [
        "p-neg",
        "p1-first",
        "p1-second",
        "p3",
        "p5-first",
        "p5-second",
    ];
    let listed: Vec<_> = all_entries(s, None)
        .await
        .iter()
        .map(|e| ids[&e.job_run_identifier])
        .collect();
    assert_eq!(listed, want, "list_entries run order");
    // One at a time, then two at a time.
    let mut order = Vec::new();
    for _ in 0..2 {
        let got = expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 1)).await,
            "claim",
        );
        assert_eq!(got.len(), 1);
        order.push(ids[&got[0].run.job_run_identifier]);
    }
    assert_eq!(order, want[..2], "claim order, one at a time");
    // A batch is the next entries in run order (in whatever order it lists them).
    for chunk in want[2..].chunks(2) {
        let got = expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 2)).await,
            "claim",
        );
        let mut batch: Vec<_> = got.iter().map(|c| ids[&c.run.job_run_identifier]).collect();
        batch.sort();
        let mut chunk = chunk.to_vec();
        chunk.sort();
        assert_eq!(batch, chunk, "claim order, two at a time");
    }
}

/// An entry whose `run_at` is in the future is not claimed (nor counted available).
pub async fn claim_skips_future_run_at(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let base = now(s).await;
    let later = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({})).run_at(base + chrono::Duration::hours(1)),
    )
    .await;
    let past = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({}))
            .run_at(base - chrono::Duration::hours(1))
            .priority(9),
    )
    .await;
    let got = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 10)).await,
        "claim",
    );
    let claimed: Vec<_> = got
        .iter()
        .map(|c| c.run.job_run_identifier.clone())
        .collect();
    assert_eq!(claimed, [past.job_run_identifier]);
    assert!(
        expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 10)).await,
            "claim"
        )
        .is_empty()
    );
    let l = expect_ok(s.get_entry(&later.job_run_identifier).await, "later");
    assert_eq!(l, later, "an unclaimed entry is untouched");
    let st = expect_ok(s.stats().await, "stats");
    assert_eq!((st.available, st.scheduled, st.running), (0, 1, 1));
}

/// A node only claims entries whose template's job type it registered.
pub async fn claim_only_registered_job_types(store: Arc<dyn JobStore>) {
    let s = &*store;
    let a = template().create(s).await;
    let b = template().create(s).await;
    let c = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let ea = enqueue_with_retries(s, &a, 0).await;
    let eb = enqueue_with_retries(s, &b, 0).await;
    let ec = enqueue(s, NewEntry::new(c.code.clone(), json!({})).priority(0)).await;

    assert!(expect_ok(s.claim(claim_request(&node, &[], 10)).await, "no types").is_empty());
    assert!(
        expect_ok(
            s.claim(claim_request(&node, &["conf.unknown.type"], 10))
                .await,
            "unknown type"
        )
        .is_empty()
    );
    let got = expect_ok(
        s.claim(claim_request(&node, &[&a.job_type, &b.job_type], 10))
            .await,
        "claim",
    );
    let mut ids: Vec<_> = got
        .iter()
        .map(|x| x.run.job_run_identifier.clone())
        .collect();
    ids.sort();
    let mut want = vec![ea.job_run_identifier.clone(), eb.job_run_identifier.clone()];
    want.sort();
    assert_eq!(ids, want);
    let left = expect_ok(s.get_entry(&ec.job_run_identifier).await, "c");
    assert_eq!(left.status, EntryStatus::Available);

    // The job type is the template's current one.
    let patch = bildad_core::TemplatePatch {
        job_type: Some(a.job_type.clone()),
        ..Default::default()
    };
    expect_ok(s.update_template(&c.code, patch).await, "retarget c");
    let got = expect_ok(
        s.claim(claim_request(&node, &[&a.job_type], 10)).await,
        "claim",
    );
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run.job_run_identifier, ec.job_run_identifier);
    assert_eq!(got[0].run.job_type, a.job_type);
}

/// At most `limit` entries, the first in run order.
pub async fn claim_respects_limit(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let news: Vec<_> = (0..10)
        .map(|i| NewEntry::new(t.code.clone(), json!({"i": i})))
        .collect();
    let entries = expect_ok(s.enqueue_many(news).await, "enqueue_many");
    assert!(
        expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 0)).await,
            "limit 0"
        )
        .is_empty()
    );
    let got = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 4)).await,
        "claim 4",
    );
    assert_eq!(got.len(), 4);
    let mut claimed: Vec<_> = got
        .iter()
        .map(|c| c.run.job_run_identifier.clone())
        .collect();
    claimed.sort();
    let mut want: Vec<_> = entries[..4]
        .iter()
        .map(|e| e.job_run_identifier.clone())
        .collect();
    want.sort();
    assert_eq!(claimed, want, "the first four in run order");
    assert_eq!(
        expect_ok(
            s.claim(claim_request(&node, &[&t.job_type], 100)).await,
            "rest"
        )
        .len(),
        6
    );
    let st = expect_ok(s.stats().await, "stats");
    assert_eq!((st.available, st.running), (0, 10));
}

/// `only_identifier` claims that entry, even before its `run_at` and behind others;
/// nothing else.
pub async fn claim_only_identifier(store: Arc<dyn JobStore>) {
    let s = &*store;
    let t = template().create(s).await;
    let other = template().create(s).await;
    let node = live_node(s, "conf-node").await;
    let first = enqueue(s, NewEntry::new(t.code.clone(), json!({})).priority(-10)).await;
    let target = enqueue(
        s,
        NewEntry::new(t.code.clone(), json!({}))
            .priority(50)
            .run_at(now(s).await + chrono::Duration::hours(2)),
    )
    .await;
    let foreign = enqueue_with_retries(s, &other, 0).await;

    let only = |id: &str| {
        let mut r = claim_request(&node, &[&t.job_type], 10);
        r.only_identifier = Some(id.to_string());
        r
    };
    let got = expect_ok(s.claim(only(&target.job_run_identifier)).await, "only");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].run.job_run_identifier, target.job_run_identifier);
    let e = expect_ok(s.get_entry(&target.job_run_identifier).await, "target");
    assert_eq!(e.status, EntryStatus::Running);
    assert_eq!(
        expect_ok(s.get_entry(&first.job_run_identifier).await, "first").status,
        EntryStatus::Available
    );
    // Running already, unknown, or of an unregistered job type: nothing.
    assert!(expect_ok(s.claim(only(&target.job_run_identifier)).await, "again").is_empty());
    assert!(expect_ok(s.claim(only("conf-no-such-id")).await, "unknown").is_empty());
    assert!(expect_ok(s.claim(only(&foreign.job_run_identifier)).await, "foreign").is_empty());
    assert_eq!(
        expect_ok(s.get_entry(&foreign.job_run_identifier).await, "foreign"),
        foreign
    );
    assert_eq!(counts(s).await, (3, 1));
}

/// Eight claimers over 2,000 entries: each entry claimed exactly once, 2,000 runs,
/// `(identifier, retry)` unique.
pub async fn claim_concurrent_claimers_take_each_entry_once(store: Arc<dyn JobStore>) {
    const ENTRIES: usize = 2000;
    let t = create_template(
        &*store,
        NewTemplate::new(unique("tpl"), "n", unique("conf.type"), any_object()),
    )
    .await;
    for chunk in 0..(ENTRIES / 250) {
        let news: Vec<_> = (0..250)
            .map(|i| {
                NewEntry::new(t.code.clone(), json!({"i": chunk * 250 + i}))
                    .priority((i % 3) as i32)
            })
            .collect();
        expect_ok(store.enqueue_many(news).await, "enqueue_many");
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let job_type = t.job_type.clone();
        tasks.push(tokio::spawn(async move {
            let node = live_node(&*store, &format!("conf-claimer-{w}")).await;
            let mut mine: Vec<ClaimedRun> = Vec::new();
            loop {
                let req = claim_request(&node, &[&job_type], 1 + (w as u32 % 4) * 4);
                let got = expect_ok(retry_transient(|| store.claim(req.clone())).await, "claim");
                if got.is_empty() {
                    break;
                }
                for c in &got {
                    assert_eq!(c.run.node, node.instance_id);
                }
                mine.extend(got);
                tokio::task::yield_now().await;
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for r in futures::future::join_all(tasks).await {
        all.extend(r.expect("claimer task"));
    }
    let node = live_node(&*store, "conf-late").await;
    assert!(
        expect_ok(
            store.claim(claim_request(&node, &[&t.job_type], 100)).await,
            "claim"
        )
        .is_empty(),
        "nothing left"
    );
    assert_eq!(all.len(), ENTRIES, "claimed runs");
    let ids: HashSet<_> = all
        .iter()
        .map(|c| c.run.job_run_identifier.clone())
        .collect();
    assert_eq!(ids.len(), ENTRIES, "each entry claimed exactly once");
    let run_ids: HashSet<_> = all.iter().map(|c| c.run.id).collect();
    assert_eq!(run_ids.len(), ENTRIES, "run ids unique");
    let procs: HashSet<_> = all.iter().map(|c| c.run.process_name.clone()).collect();
    assert_eq!(procs.len(), ENTRIES, "process names unique");
    assert!(all.iter().all(|c| c.run.retry == 0));

    let runs = all_runs(&*store, RunFilter::default()).await;
    assert_eq!(runs.len(), ENTRIES, "run count");
    let pairs: HashSet<_> = runs
        .iter()
        .map(|r| (r.job_run_identifier.clone(), r.retry))
        .collect();
    assert_eq!(pairs.len(), ENTRIES, "(identifier, retry) unique");
    let running = all_entries(&*store, Some(EntryStatus::Running)).await;
    assert_eq!(running.len(), ENTRIES);
    let by_entry: HashMap<_, _> = all
        .iter()
        .map(|c| (c.run.job_run_identifier.clone(), c.run.id))
        .collect();
    for e in &running {
        assert_eq!(e.current_run_id, Some(by_entry[&e.job_run_identifier]));
        assert_eq!(e.attempts, 1);
    }
    let st = expect_ok(store.stats().await, "stats");
    assert_eq!((st.available, st.running), (0, ENTRIES as u64));
}

/// Eight workers claim and finalize 400 entries at once, each entry failing a set number
/// of times: every entry ends exactly as the retry rule says, with runs of retry
/// `0..n` and no pair `(identifier, retry)` twice.
pub async fn claim_finalize_churn_concurrently(store: Arc<dyn JobStore>) {
    use bildad_core::{FailureKind, Outcome, RunResult};
    const ENTRIES: usize = 400;
    let t = template().create(&*store).await;
    let news: Vec<_> = (0..ENTRIES)
        .map(|i| NewEntry::new(t.code.clone(), json!({"i": i})).max_retries(2))
        .collect();
    let entries = expect_ok(store.enqueue_many(news).await, "enqueue_many");
    // Entry i succeeds at retry i % 4; i % 4 == 3 never succeeds (3 failures, deleted).
    let plan = |i: u64, retry: i32| retry == (i % 4) as i32;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        let job_type = t.job_type.clone();
        tasks.push(tokio::spawn(async move {
            let node = live_node(&*store, &format!("conf-worker-{w}")).await;
            let mut idle = 0;
            while idle < 3 {
                let req = claim_request(&node, &[&job_type], 3);
                let got = expect_ok(retry_transient(|| store.claim(req.clone())).await, "claim");
                if got.is_empty() {
                    // Others may still requeue failures: look again a few times.
                    idle += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                idle = 0;
                for c in got {
                    let i = c.run.context["i"].as_u64().expect("i");
                    let outcome = if plan(i, c.run.retry) {
                        Outcome::succeeded(Some(json!({"i": i})))
                    } else {
                        Outcome::failed(FailureKind::Error, format!("fail {i}"))
                    };
                    let req = finalize_request(c.run.id, outcome);
                    let r = expect_ok(
                        retry_transient(|| store.finalize(req.clone())).await,
                        "finalize",
                    );
                    assert!(r.won, "the only finalizer of its run must win: {r:?}");
                }
            }
        }));
    }
    for r in futures::future::join_all(tasks).await {
        r.expect("worker task");
    }
    // Stragglers (a worker may have given up while another requeued): finish them here.
    let node = live_node(&*store, "conf-sweeper").await;
    loop {
        let got = expect_ok(
            store.claim(claim_request(&node, &[&t.job_type], 50)).await,
            "claim",
        );
        if got.is_empty() {
            break;
        }
        for c in got {
            let i = c.run.context["i"].as_u64().expect("i");
            let outcome = if plan(i, c.run.retry) {
                Outcome::succeeded(Some(json!({"i": i})))
            } else {
                Outcome::failed(FailureKind::Error, format!("fail {i}"))
            };
            finalize_and_win(&*store, finalize_request(c.run.id, outcome)).await;
        }
    }
    assert_eq!(counts(&*store).await.0, 0, "every entry finished");
    let runs = all_runs(&*store, RunFilter::default()).await;
    let mut by_id: HashMap<String, Vec<(i32, Option<RunResult>)>> = HashMap::new();
    for r in &runs {
        assert_eq!(r.status, RunStatus::Done);
        by_id
            .entry(r.job_run_identifier.clone())
            .or_default()
            .push((r.retry, r.result));
    }
    assert_eq!(by_id.len(), ENTRIES);
    let mut expected_runs = 0;
    for (i, e) in entries.iter().enumerate() {
        let mut got = by_id.remove(&e.job_run_identifier).expect("runs of entry");
        got.sort_by_key(|x| x.0);
        let want: Vec<_> = match i % 4 {
            3 => (0..3).map(|r| (r, Some(RunResult::Failed))).collect(),
            k => (0..=k as i32)
                .map(|r| {
                    let res = if r == k as i32 {
                        RunResult::Succeeded
                    } else {
                        RunResult::Failed
                    };
                    (r, Some(res))
                })
                .collect(),
        };
        expected_runs += want.len();
        assert_eq!(got, want, "entry {i}");
    }
    assert_eq!(runs.len(), expected_runs);
    let st = expect_ok(store.stats().await, "stats");
    assert_eq!(st.succeeded, (ENTRIES / 4 * 3) as u64);
    assert_eq!(st.succeeded + st.failed, expected_runs as u64);
}
