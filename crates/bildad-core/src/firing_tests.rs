//! Unit tests of `firing`: parsing, the grace rule, the cap, daylight saving.

use super::*;
use chrono::DateTime;

fn at(s: &str) -> Timestamp {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn firing(cron: &str, tz: &str) -> Firing {
    Firing::parse(cron, tz).unwrap()
}

const GRACE: Duration = Duration::from_secs(60);

#[test]
fn five_and_six_fields_parse_others_do_not() {
    assert!(Firing::parse("*/5 * * * *", "UTC").is_ok());
    assert!(Firing::parse("* * * * * *", "Europe/Paris").is_ok());
    for bad in [
        "* * * *",
        "* * * * * * *",
        "",
        "61 * * * *",
        "nonsense a b c d",
    ] {
        let v = Firing::parse(bad, "UTC").unwrap_err();
        assert_eq!(v[0].pointer, "/cron", "{bad:?}");
    }
    let v = Firing::parse("* * * * *", "Mars/Olympus").unwrap_err();
    assert_eq!(v[0].pointer, "/timezone");
    assert_eq!(Firing::parse("x", "Nowhere").unwrap_err().len(), 2);
}

#[test]
fn every_second_within_grace_fires_each_second() {
    let f = firing("* * * * * *", "UTC");
    let p = f
        .plan(
            at("2027-01-01T00:00:01Z"),
            at("2027-01-01T00:00:10Z"),
            GRACE,
            1000,
        )
        .unwrap();
    assert_eq!(p.fires.len(), 10);
    assert_eq!(p.last_fire_at, at("2027-01-01T00:00:10Z"));
    assert_eq!(p.next_fire_at, Some(at("2027-01-01T00:00:11Z")));
}

#[test]
fn nothing_is_due_before_the_next_fire_time() {
    let f = firing("0 * * * *", "UTC");
    assert_eq!(
        f.plan(
            at("2027-01-01T01:00:00Z"),
            at("2027-01-01T00:59:59Z"),
            GRACE,
            1000
        ),
        None
    );
}

#[test]
fn after_downtime_longer_than_grace_only_the_latest_fires() {
    let f = firing("* * * * *", "UTC");
    let p = f
        .plan(
            at("2027-01-01T00:01:00Z"),
            at("2027-01-01T02:00:30Z"),
            GRACE,
            1000,
        )
        .unwrap();
    assert_eq!(p.fires, vec![at("2027-01-01T02:00:00Z")]);
    assert_eq!(p.next_fire_at, Some(at("2027-01-01T02:01:00Z")));
}

#[test]
fn the_cap_leaves_the_rest_for_the_next_evaluation() {
    let f = firing("* * * * * *", "UTC");
    let p = f
        .plan(
            at("2027-01-01T00:00:00Z"),
            at("2027-01-01T00:10:00Z"),
            Duration::from_secs(3600),
            100,
        )
        .unwrap();
    assert_eq!(p.fires.len(), 100);
    assert_eq!(p.next_fire_at, Some(at("2027-01-01T00:01:40Z")));
}

/// Europe/Paris springs forward on 2027-03-28: 02:00 CET becomes 03:00 CEST, so 02:30
/// does not exist that day. The daily 02:30 fires once, right after the gap.
#[test]
fn spring_gap_fires_once() {
    let f = firing("30 2 * * *", "Europe/Paris");
    let fires = walk(&f, at("2027-03-27T00:00:00Z"), at("2027-03-30T00:00:00Z"));
    assert_eq!(
        fires,
        vec![
            at("2027-03-27T01:30:00Z"),
            at("2027-03-28T01:00:00Z"),
            at("2027-03-29T00:30:00Z"),
        ]
    );
}

/// Europe/Paris falls back on 2027-10-31: 03:00 CEST becomes 02:00 CET, so 02:30 happens
/// twice. The daily 02:30 fires once that day.
#[test]
fn autumn_repeat_fires_once() {
    let f = firing("30 2 * * *", "Europe/Paris");
    let fires = walk(&f, at("2027-10-30T00:00:00Z"), at("2027-11-02T00:00:00Z"));
    assert_eq!(fires.len(), 3, "{fires:?}");
    assert_eq!(fires[0], at("2027-10-30T00:30:00Z"));
    assert!(
        fires[1] == at("2027-10-31T00:30:00Z") || fires[1] == at("2027-10-31T01:30:00Z"),
        "{fires:?}"
    );
    assert_eq!(fires[2], at("2027-11-01T01:30:00Z"));
}

/// An hourly schedule keeps firing once per real hour across both transitions.
#[test]
fn hourly_across_transitions_fires_once_per_real_hour() {
    let f = firing("0 * * * *", "Europe/Paris");
    let spring = walk(&f, at("2027-03-27T22:00:00Z"), at("2027-03-28T04:00:00Z"));
    assert_eq!(spring.len(), 6, "{spring:?}");
    let autumn = walk(&f, at("2027-10-30T22:00:00Z"), at("2027-10-31T04:00:00Z"));
    let mut dedup = autumn.clone();
    dedup.dedup();
    assert_eq!(dedup, autumn);
}

/// The fire times in (from, to], found the way the scheduler does: one evaluation per
/// minute, each enqueuing its plan.
fn walk(f: &Firing, from: Timestamp, to: Timestamp) -> Vec<Timestamp> {
    let mut out = Vec::new();
    let mut next = f.next_after(from);
    let mut now = from;
    while now <= to {
        if let Some(p) = next.and_then(|due| f.plan(due, now, GRACE, 1000)) {
            out.extend(p.fires);
            next = p.next_fire_at;
        }
        now += chrono::Duration::minutes(1);
    }
    out
}

#[test]
fn identifiers_are_rfc3339_utc() {
    assert_eq!(
        fire_identifier("digest", at("2027-03-28T01:00:00+00:00")),
        "schedule:digest:2027-03-28T01:00:00Z"
    );
}

/// A cron that never matches (February 30th) has no next fire time.
#[test]
fn an_impossible_date_never_fires() {
    let f = firing("0 0 30 2 *", "UTC");
    assert_eq!(f.next_after(at("2027-01-01T00:00:00Z")), None);
}
