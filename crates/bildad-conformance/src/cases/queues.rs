//! Queues (SPEC §8): every entry and run names its queue; the settings of a queue
//! (paused, global limit, rate limit) bind every claim.

use crate::support::*;
use bildad_core::{ErrorKind, FailureKind, JobStore, NewEntry, Outcome, QueuePatch, RateLimit};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

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

    // Listings narrow by queue.
    let page = bildad_core::PageRequest { page: 0, limit: 50 };
    let urgent = bildad_core::EntryFilter {
        queue: Some("urgent".into()),
        ..Default::default()
    };
    let listed = expect_ok(s.list_entries_where(urgent, page).await, "list");
    assert_eq!(listed.total, 1);
    let mailed_runs = bildad_core::RunFilter {
        queue: Some("mail".into()),
        ..Default::default()
    };
    let runs = expect_ok(s.list_runs(mailed_runs, page).await, "list_runs");
    assert_eq!(runs.total, 1, "{runs:#?}");
    assert_eq!(runs.items[0].job_run_identifier, b.job_run_identifier);
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

/// A limit or a pause of queue `name`, which must be accepted.
async fn set(s: &dyn JobStore, name: &str, patch: QueuePatch) -> bildad_core::QueueInfo {
    expect_ok(s.update_queue(name, patch).await, "update_queue")
}

/// A template of a fresh job type whose entries join `queue`.
async fn template_in(s: &dyn JobStore, queue: &str) -> bildad_core::JobTemplate {
    let mut new = template().new_template();
    new.queue = queue.to_owned();
    create_template(s, new).await
}

/// Enqueues `n` entries of `t`.
async fn fill(
    s: &dyn JobStore,
    t: &bildad_core::JobTemplate,
    n: usize,
) -> Vec<bildad_core::QueueEntry> {
    let news = (0..n)
        .map(|i| NewEntry::new(t.code.clone(), json!({ "i": i })))
        .collect();
    expect_ok(s.enqueue_many(news).await, "enqueue_many")
}

/// No claim starts an entry of a paused queue, not even by identifier; runs already
/// running go on and end as usual; a resumed queue is claimed again.
pub async fn queue_paused_is_never_claimed(store: Arc<dyn JobStore>) {
    let s = &*store;
    let q = unique("paused");
    let t = template_in(s, &q).await;
    let other = template().create(s).await;
    let mine = fill(s, &t, 3).await;
    fill(s, &other, 2).await;
    let node = live_node(s, "n").await;
    let running = expect_ok(
        s.claim(claim_request(&node, &[&t.job_type], 1)).await,
        "claim",
    );
    assert_eq!(running.len(), 1);

    let paused = QueuePatch {
        paused: Some(true),
        ..Default::default()
    };
    let info = set(s, &q, paused).await;
    assert!(info.settings.paused);
    assert_eq!((info.available, info.running), (2, 1));
    let types = [t.job_type.as_str(), other.job_type.as_str()];
    let got = expect_ok(s.claim(claim_request(&node, &types, 10)).await, "claim");
    assert_eq!(got.len(), 2, "only the other queue's entries: {got:?}");
    assert!(got.iter().all(|c| c.run.queue != q));
    let id = mine
        .iter()
        .map(|e| e.job_run_identifier.clone())
        .find(|id| *id != running[0].run.job_run_identifier)
        .expect("a waiting entry");
    let mut only = claim_request(&node, &types, 10);
    only.only_identifier = Some(id);
    assert!(expect_ok(s.claim(only).await, "claim").is_empty());
    finish_successfully(s, running[0].run.id).await;

    let resumed = QueuePatch {
        paused: Some(false),
        ..Default::default()
    };
    assert!(!set(s, &q, resumed).await.settings.paused);
    let got = expect_ok(s.claim(claim_request(&node, &types, 10)).await, "claim");
    assert_eq!(got.len(), 2);
}

/// Eight claimers racing on a queue with a global limit of 3 never have more than 3 of
/// its runs `RUNNING` at once, over several rounds; every entry still runs once.
pub async fn queue_global_limit_holds_under_racing_claimers(store: Arc<dyn JobStore>) {
    const ENTRIES: usize = 24;
    const LIMIT: usize = 3;
    for round in 0..3 {
        let q = unique("limited");
        let t = template_in(&*store, &q).await;
        fill(&*store, &t, ENTRIES).await;
        let limit = QueuePatch {
            global_limit: Some(Some(LIMIT as i32)),
            ..Default::default()
        };
        set(&*store, &q, limit).await;
        // Counted after a claim commits, uncounted before the finalize: never more than
        // the runs really running, so a count above the limit is a broken limit.
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for w in 0..8 {
            let (store, job_type, q) = (store.clone(), t.job_type.clone(), q.clone());
            let (running, peak, done) = (running.clone(), peak.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let node = live_node(&*store, &format!("racer-{round}-{w}")).await;
                while done.load(SeqCst) < ENTRIES {
                    let req = claim_request(&node, &[&job_type], LIMIT as u32);
                    let got =
                        expect_ok(retry_transient(|| store.claim(req.clone())).await, "claim");
                    let now = running.fetch_add(got.len(), SeqCst) + got.len();
                    peak.fetch_max(now, SeqCst);
                    // Recorded, not asserted here: every task must go on ending its runs.
                    let seen = expect_ok(retry_transient(|| store.get_queue(&q)).await, "get");
                    peak.fetch_max(usize::try_from(seen.running).unwrap_or(usize::MAX), SeqCst);
                    for c in got {
                        tokio::task::yield_now().await;
                        running.fetch_sub(1, SeqCst);
                        let end = finalize_request(c.run.id, Outcome::succeeded(None));
                        expect_ok(retry_transient(|| store.finalize(end.clone())).await, "end");
                        done.fetch_add(1, SeqCst);
                    }
                    tokio::task::yield_now().await;
                }
            }));
        }
        for r in futures::future::join_all(tasks).await {
            r.expect("claimer task");
        }
        assert_eq!(done.load(SeqCst), ENTRIES);
        let peak = peak.load(SeqCst);
        assert!(
            (1..=LIMIT).contains(&peak),
            "{peak} runs at once of a queue limited to {LIMIT}"
        );
        let info = expect_ok(store.get_queue(&q).await, "get_queue");
        assert_eq!((info.available, info.running), (0, 0));
        assert_eq!(info.settings.global_limit, Some(LIMIT as i32));
    }
}

/// A rate limit counts starts, not running runs: racing claimers start exactly
/// `allowed` runs, and finishing them frees nothing within the window. Once the window
/// has passed (on the store's clock) one more starts, at least a period after the first.
pub async fn queue_rate_limit_counts_starts_in_the_window(store: Arc<dyn JobStore>) {
    let q = unique("rated");
    let t = template_in(&*store, &q).await;
    fill(&*store, &t, 10).await;
    let rate = QueuePatch {
        rate_limit: Some(Some(RateLimit {
            allowed: 2,
            period_seconds: 3600,
        })),
        ..Default::default()
    };
    set(&*store, &q, rate).await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (store, job_type) = (store.clone(), t.job_type.clone());
        tasks.push(tokio::spawn(async move {
            let node = live_node(&*store, &format!("rated-{w}")).await;
            let req = claim_request(&node, &[&job_type], 5);
            expect_ok(retry_transient(|| store.claim(req.clone())).await, "claim")
        }));
    }
    let mut started = Vec::new();
    for r in futures::future::join_all(tasks).await {
        started.extend(r.expect("claimer task"));
    }
    assert_eq!(started.len(), 2, "{started:#?}");
    for c in &started {
        finish_successfully(&*store, c.run.id).await;
    }
    let node = live_node(&*store, "late").await;
    let again = expect_ok(
        store.claim(claim_request(&node, &[&t.job_type], 5)).await,
        "claim",
    );
    assert!(again.is_empty(), "{again:#?}");

    // A window of one second: the next start comes once a second has passed since the
    // last, on the store's clock (polled, never assumed).
    let short = QueuePatch {
        rate_limit: Some(Some(RateLimit {
            allowed: 1,
            period_seconds: 1,
        })),
        ..Default::default()
    };
    set(&*store, &q, short).await;
    let mut times = Vec::new();
    let deadline = std::time::Instant::now() + POLL_DEADLINE;
    while times.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no start within the deadline"
        );
        let got = expect_ok(
            store.claim(claim_request(&node, &[&t.job_type], 5)).await,
            "claim",
        );
        assert!(got.len() <= 1, "{got:#?}");
        times.extend(got.iter().map(|c| c.run.started_at));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let gap = times[1] - times[0];
    assert!(gap >= chrono::Duration::seconds(1), "starts {gap} apart");
}

/// A node claims only from the queues it serves, and at most its local cap of a queue
/// per claim.
pub async fn queue_node_serves_its_queues_within_local_caps(store: Arc<dyn JobStore>) {
    let s = &*store;
    let (a, b) = (unique("qa"), unique("qb"));
    let ta = template_in(s, &a).await;
    let tb = template_in(s, &b).await;
    fill(s, &ta, 4).await;
    fill(s, &tb, 4).await;
    let node = live_node(s, "n").await;
    let types = [ta.job_type.as_str(), tb.job_type.as_str()];
    let mut only_b = claim_request(&node, &types, 10);
    only_b.queues = Some(vec![b.clone()]);
    let got = expect_ok(s.claim(only_b).await, "claim");
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|c| c.run.queue == b));

    let mut capped = claim_request(&node, &types, 10);
    capped.queue_caps.insert(a.clone(), 3);
    let got = expect_ok(s.claim(capped).await, "claim");
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got.iter().all(|c| c.run.queue == a));
}

/// Settings are stored per queue (created by the first change, `null` lifts a limit),
/// the listing shows every queue with settings or entries and their counts, an unknown
/// queue is `NotFound`, and invalid values are `Invalid` and change nothing.
pub async fn queue_settings_change_and_list(store: Arc<dyn JobStore>) {
    let s = &*store;
    let q = unique("listed");
    let t = template_in(s, &q).await;
    fill(s, &t, 2).await;
    let bare = unique("bare");
    let unknown = s.get_queue(&bare).await.expect_err("unknown queue");
    assert_eq!(unknown.kind(), ErrorKind::NotFound, "{unknown:?}");
    let info = expect_ok(s.get_queue(&q).await, "get_queue");
    assert_eq!(info.settings, bildad_core::QueueSettings::new(q.clone()));
    assert_eq!((info.available, info.scheduled, info.running), (2, 0, 0));

    let both = QueuePatch {
        global_limit: Some(Some(4)),
        rate_limit: Some(Some(RateLimit {
            allowed: 10,
            period_seconds: 60,
        })),
        ..Default::default()
    };
    let info = set(s, &bare, both).await;
    assert_eq!(info.settings.global_limit, Some(4));
    assert_eq!(info.settings.rate_limit.map(|r| r.allowed), Some(10));
    let lift = QueuePatch {
        global_limit: Some(None),
        ..Default::default()
    };
    let info = set(s, &bare, lift).await;
    assert_eq!(info.settings.global_limit, None);
    assert!(
        info.settings.rate_limit.is_some(),
        "a field not named is kept"
    );

    for bad in [
        QueuePatch {
            global_limit: Some(Some(0)),
            ..Default::default()
        },
        QueuePatch {
            rate_limit: Some(Some(RateLimit {
                allowed: 1,
                period_seconds: 0,
            })),
            ..Default::default()
        },
    ] {
        let e = s.update_queue(&bare, bad).await.expect_err("invalid");
        assert_eq!(e.kind(), ErrorKind::Invalid, "{e:?}");
    }
    let e = s
        .update_queue("bad name", QueuePatch::default())
        .await
        .expect_err("name");
    assert_eq!(e.kind(), ErrorKind::Invalid, "{e:?}");
    let all = expect_ok(s.list_queues().await, "list_queues");
    let names: Vec<_> = all.iter().map(|i| i.settings.name.as_str()).collect();
    assert!(
        names.contains(&q.as_str()) && names.contains(&bare.as_str()),
        "{names:?}"
    );
    assert!(!names.contains(&"bad name"));
    let again = all.iter().find(|i| i.settings.name == bare).expect("bare");
    assert_eq!(
        again.settings.rate_limit.map(|r| r.period_seconds),
        Some(60)
    );
    assert_eq!(again.settings.global_limit, None);
}
