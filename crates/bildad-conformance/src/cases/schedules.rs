//! Schedules (SPEC §9): saving checks what an enqueue checks, and each fire time is
//! enqueued exactly once — by one of any number of racing evaluations — with no fire
//! time skipped while evaluations run, one fire after a long downtime, and daylight
//! saving gaps and repeats firing once. The clock is injected
//! ([`EvaluateSchedules::at`], [`JobStore::rewind_schedule`]): no case sleeps.

use crate::support::*;
use bildad_core::{
    ErrorKind, EvaluateSchedules, JobStore, NewSchedule, Schedule, ScheduleEvaluation,
    SchedulePatch, Timestamp,
};
use chrono::DateTime;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

fn at(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s)
        .expect("an RFC 3339 time")
        .with_timezone(&chrono::Utc)
}

fn secs(t: Timestamp, s: i64) -> Timestamp {
    t + chrono::Duration::seconds(s)
}

/// A schedule of a new template that accepts `{"n": integer}`.
async fn schedule(store: &dyn JobStore, cron: &str, tz: &str) -> Schedule {
    let t = template()
        .schema(json!({"type": "object", "properties": {"n": {"type": "integer"}}}))
        .create(store)
        .await;
    let new = NewSchedule::new(unique("sched"), cron, t.code, json!({"n": 1})).timezone(tz);
    expect_ok(store.create_schedule(new).await, "create_schedule")
}

/// Evaluates as if the database clock read `now`, with `grace`.
async fn evaluate_at(store: &dyn JobStore, now: Timestamp, grace: Duration) -> ScheduleEvaluation {
    let req = EvaluateSchedules {
        grace,
        at: Some(now),
        ..EvaluateSchedules::default()
    };
    let out = expect_ok(store.evaluate_schedules(req).await, "evaluate_schedules");
    assert!(out.skipped.is_empty(), "nothing skipped: {:?}", out.skipped);
    out
}

const GRACE: Duration = Duration::from_secs(60);

/// The fire times of `s` that have an entry, oldest first (from the identifiers).
async fn fired_times(store: &dyn JobStore, s: &Schedule) -> Vec<Timestamp> {
    let prefix = format!("schedule:{}:", s.name);
    let mut out: Vec<Timestamp> = all_entries(store, None)
        .await
        .into_iter()
        .filter_map(|e| e.job_run_identifier.strip_prefix(&prefix).map(at))
        .collect();
    out.sort();
    out
}

/// A new schedule is saved with every field, no last fire, and its next fire time after
/// now; it is listed, read back and deleted.
pub async fn schedule_create_read_list_delete(store: Arc<dyn JobStore>) {
    let before = now(&*store).await;
    let s = schedule(&*store, "*/5 * * * *", "Europe/Paris").await;
    assert_eq!(s.cron, "*/5 * * * *");
    assert_eq!(s.timezone, "Europe/Paris");
    assert_eq!(s.context, json!({"n": 1}));
    assert!(s.active);
    assert_eq!(s.last_fire_at, None);
    let next = s.next_fire_at.expect("a next fire time");
    assert!(
        next > before && next <= secs(before, 301),
        "{next} after {before}"
    );
    assert_eq!(expect_ok(store.get_schedule(&s.name).await, "get"), s);
    let listed = expect_ok(store.list_schedules(page(0, 10)).await, "list");
    assert_eq!((listed.total, listed.items.clone()), (1, vec![s.clone()]));
    expect_ok(store.delete_schedule(&s.name).await, "delete");
    expect_err(
        store.get_schedule(&s.name).await,
        ErrorKind::NotFound,
        "get",
    );
    expect_err(
        store.delete_schedule(&s.name).await,
        ErrorKind::NotFound,
        "delete",
    );
    expect_err(
        store
            .update_schedule(&s.name, SchedulePatch::default())
            .await,
        ErrorKind::NotFound,
        "update",
    );
}

/// A bad cron, time zone, template or context is `Invalid` naming each, and writes
/// nothing; a taken name is a `Conflict`.
pub async fn schedule_invalid_or_duplicate_refused(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "0 7 * * *", "UTC").await;
    let bad = NewSchedule::new("bad name!", "0 7 * *", "no-such-template", json!({}))
        .timezone("Mars/Base");
    let e = expect_err(store.create_schedule(bad).await, ErrorKind::Invalid, "bad");
    assert_pointers(&e, &["/name", "/cron", "/timezone", "/template"]);
    let wrong = NewSchedule::new(
        unique("s"),
        "0 7 * * *",
        s.template.clone(),
        json!({"n": "x"}),
    );
    let e = expect_err(
        store.create_schedule(wrong).await,
        ErrorKind::Invalid,
        "ctx",
    );
    assert_pointers(&e, &["/context/n"]);
    let dup = NewSchedule::new(s.name.clone(), "0 8 * * *", s.template.clone(), json!({}));
    expect_err(store.create_schedule(dup).await, ErrorKind::Conflict, "dup");
    let patch = SchedulePatch {
        cron: Some("every day".into()),
        ..SchedulePatch::default()
    };
    let e = expect_err(
        store.update_schedule(&s.name, patch).await,
        ErrorKind::Invalid,
        "patch",
    );
    assert_pointers(&e, &["/cron"]);
    let listed = expect_ok(store.list_schedules(page(0, 10)).await, "list");
    assert_eq!(listed.items, vec![s.clone()], "nothing changed");
}

/// A new cron moves the next fire time; other fields change only what they say.
pub async fn schedule_update_changes_given_fields(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "0 7 * * *", "UTC").await;
    let patch = SchedulePatch {
        cron: Some("* * * * * *".into()),
        context: Some(json!({"n": 2})),
        ..SchedulePatch::default()
    };
    let before = now(&*store).await;
    let u = expect_ok(store.update_schedule(&s.name, patch).await, "update");
    assert_eq!(
        (u.cron.as_str(), &u.context),
        ("* * * * * *", &json!({"n": 2}))
    );
    assert_eq!(
        (u.timezone, u.template, u.inserted_at),
        (s.timezone, s.template, s.inserted_at)
    );
    let next = u.next_fire_at.expect("next");
    assert!(
        next > before && next <= secs(before, 2),
        "{next} after {before}"
    );
}

/// A per-second schedule evaluated every second (and in between) gets one entry per
/// second, none skipped, none twice.
pub async fn schedule_no_fire_time_skipped_at_one_second(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "* * * * * *", "UTC").await;
    let t0 = at("2027-01-01T00:00:00Z");
    expect_ok(store.rewind_schedule(&s.name, t0).await, "rewind");
    for k in 1..=10 {
        evaluate_at(&*store, secs(t0, k), GRACE).await;
        evaluate_at(
            &*store,
            secs(t0, k) + chrono::Duration::milliseconds(500),
            GRACE,
        )
        .await;
    }
    let want: Vec<Timestamp> = (1..=10).map(|k| secs(t0, k)).collect();
    assert_eq!(fired_times(&*store, &s).await, want);
    let s = expect_ok(store.get_schedule(&s.name).await, "get");
    assert_eq!(s.last_fire_at, Some(secs(t0, 10)));
    assert_eq!(s.next_fire_at, Some(secs(t0, 11)));
}

/// After a pause shorter than the grace every missed fire time is enqueued; after one
/// longer than the grace (every node was down), only the latest.
pub async fn schedule_catch_up_after_downtime(store: Arc<dyn JobStore>) {
    let short = schedule(&*store, "* * * * * *", "UTC").await;
    let long = schedule(&*store, "* * * * *", "UTC").await;
    let t0 = at("2027-01-01T00:00:00Z");
    expect_ok(store.rewind_schedule(&short.name, t0).await, "rewind");
    expect_ok(store.rewind_schedule(&long.name, t0).await, "rewind");
    evaluate_at(&*store, secs(t0, 30), GRACE).await;
    let short_fires: Vec<Timestamp> = (1..=30).map(|k| secs(t0, k)).collect();
    assert_eq!(fired_times(&*store, &short).await, short_fires);
    assert!(fired_times(&*store, &long).await.is_empty());

    let back = secs(t0, 3 * 3600 + 30);
    evaluate_at(&*store, back, GRACE).await;
    assert_eq!(fired_times(&*store, &long).await, vec![secs(t0, 3 * 3600)]);
    let s = expect_ok(store.get_schedule(&long.name).await, "get");
    assert_eq!(s.next_fire_at, Some(secs(t0, 3 * 3600 + 60)));
    assert_eq!(
        fired_times(&*store, &short).await.last(),
        Some(&back),
        "the per-second schedule fires only its latest fire time too"
    );
    assert_eq!(fired_times(&*store, &short).await.len(), 31);
}

/// Walks `s` from `from` to `to`, evaluating every 10 minutes; its fire times.
async fn walk(store: &dyn JobStore, s: &Schedule, from: &str, to: &str) -> Vec<Timestamp> {
    expect_ok(store.rewind_schedule(&s.name, at(from)).await, "rewind");
    let mut t = at(from);
    while t <= at(to) {
        evaluate_at(store, t, Duration::from_secs(3600)).await;
        t += chrono::Duration::minutes(10);
    }
    fired_times(store, s).await
}

/// Europe/Paris springs forward on 2027-03-28 (02:00 becomes 03:00): a daily 02:30
/// fires once that day, right after the gap.
pub async fn schedule_dst_spring_gap_fires_once(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "30 2 * * *", "Europe/Paris").await;
    let fires = walk(&*store, &s, "2027-03-27T00:00:00Z", "2027-03-29T12:00:00Z").await;
    assert_eq!(
        fires,
        vec![
            at("2027-03-27T01:30:00Z"),
            at("2027-03-28T01:00:00Z"),
            at("2027-03-29T00:30:00Z"),
        ]
    );
}

/// Europe/Paris falls back on 2027-10-31 (02:30 happens twice): a daily 02:30 fires
/// once that day.
pub async fn schedule_dst_autumn_repeat_fires_once(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "30 2 * * *", "Europe/Paris").await;
    let fires = walk(&*store, &s, "2027-10-30T00:00:00Z", "2027-11-01T12:00:00Z").await;
    assert_eq!(fires.len(), 3, "{fires:?}");
    assert_eq!(fires[0], at("2027-10-30T00:30:00Z"));
    assert!(
        [at("2027-10-31T00:30:00Z"), at("2027-10-31T01:30:00Z")].contains(&fires[1]),
        "{fires:?}"
    );
    assert_eq!(fires[2], at("2027-11-01T01:30:00Z"));
}

/// A deactivated schedule fires nothing, however late; activated again, it starts at
/// its next fire time after now (no catch-up of the inactive time).
pub async fn schedule_deactivated_fires_nothing(store: Arc<dyn JobStore>) {
    let s = schedule(&*store, "* * * * * *", "UTC").await;
    let t0 = at("2027-01-01T00:00:00Z");
    expect_ok(store.rewind_schedule(&s.name, t0).await, "rewind");
    let off = SchedulePatch {
        active: Some(false),
        ..SchedulePatch::default()
    };
    expect_ok(store.update_schedule(&s.name, off).await, "deactivate");
    let out = evaluate_at(&*store, secs(t0, 30), GRACE).await;
    assert!(out.fired.is_empty(), "{out:?}");
    assert!(fired_times(&*store, &s).await.is_empty());
    let on = SchedulePatch {
        active: Some(true),
        ..SchedulePatch::default()
    };
    let before = now(&*store).await;
    let s = expect_ok(store.update_schedule(&s.name, on).await, "activate");
    let next = s.next_fire_at.expect("next");
    assert!(
        next > before && next <= secs(before, 2),
        "{next} after {before}"
    );
}

/// Four evaluations racing at every step over 20 per-second schedules: each fire time of
/// each schedule is enqueued once, reported fired by exactly one evaluation, and no
/// evaluation runs into another's entries (each loser changes nothing).
pub async fn schedule_racing_evaluators_fire_each_time_once(store: Arc<dyn JobStore>) {
    let t0 = at("2027-01-01T00:00:00Z");
    let mut names = Vec::new();
    for _ in 0..20 {
        let s = schedule(&*store, "* * * * * *", "UTC").await;
        expect_ok(store.rewind_schedule(&s.name, t0).await, "rewind");
        names.push(s);
    }
    let mut reported: BTreeMap<String, u32> = BTreeMap::new();
    for step in 1..=5 {
        let now = secs(t0, step * 2);
        let racers = (0..4).map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { evaluate_at(&*store, now, GRACE).await })
        });
        for r in futures::future::join_all(racers).await {
            for f in r.expect("evaluation task").fired {
                *reported.entry(f.job_run_identifier).or_default() += 1;
            }
        }
    }
    for s in &names {
        let want: Vec<Timestamp> = (1..=10).map(|k| secs(t0, k)).collect();
        assert_eq!(fired_times(&*store, s).await, want, "{}", s.name);
    }
    assert_eq!(reported.len(), 200);
    assert!(reported.values().all(|n| *n == 1), "{reported:?}");
}

/// A fire time whose enqueue is refused (its template was deactivated) passes without
/// an entry and is reported skipped; the schedule moves on, and the other schedules of
/// the same evaluation fire as usual.
pub async fn schedule_refused_enqueue_skips_only_its_own_fire_times(store: Arc<dyn JobStore>) {
    let ok = schedule(&*store, "* * * * * *", "UTC").await;
    let refused = schedule(&*store, "* * * * * *", "UTC").await;
    let t0 = at("2027-01-01T00:00:00Z");
    for s in [&ok, &refused] {
        expect_ok(store.rewind_schedule(&s.name, t0).await, "rewind");
    }
    let off = bildad_core::TemplatePatch {
        active: Some(false),
        ..bildad_core::TemplatePatch::default()
    };
    expect_ok(
        store.update_template(&refused.template, off).await,
        "deactivate",
    );
    let req = EvaluateSchedules {
        at: Some(secs(t0, 3)),
        ..EvaluateSchedules::default()
    };
    let out = expect_ok(store.evaluate_schedules(req).await, "evaluate");
    assert_eq!(out.fired.len(), 3, "{out:?}");
    assert!(out.fired.iter().all(|f| f.schedule == ok.name), "{out:?}");
    assert_eq!(out.skipped.len(), 3, "{out:?}");
    assert!(fired_times(&*store, &refused).await.is_empty());
    let moved = expect_ok(store.get_schedule(&refused.name).await, "get");
    assert_eq!(moved.last_fire_at, Some(secs(t0, 3)));
}

/// A schedule's `queue` option (SPEC §8, §9) is the queue of every entry it enqueues.
pub async fn schedule_queue_option_reaches_its_entries(store: Arc<dyn JobStore>) {
    let t = template()
        .schema(json!({"type": "object"}))
        .create(&*store)
        .await;
    let mut new = NewSchedule::new(unique("sched"), "* * * * * *", t.code, json!({}));
    new.options.queue = Some("reports".into());
    let s = expect_ok(store.create_schedule(new).await, "create_schedule");
    let t0 = at("2027-01-01T00:00:00Z");
    expect_ok(store.rewind_schedule(&s.name, t0).await, "rewind");
    evaluate_at(&*store, secs(t0, 2), GRACE).await;
    let prefix = format!("schedule:{}:", s.name);
    let queues: Vec<String> = all_entries(&*store, None)
        .await
        .into_iter()
        .filter(|e| e.job_run_identifier.starts_with(&prefix))
        .map(|e| e.queue)
        .collect();
    assert_eq!(queues, vec!["reports".to_string(); 2]);
}
