//! When a schedule fires (SPEC §9): cron expressions (5 fields, or 6 with seconds first)
//! read by `croner`, in an IANA time zone from `chrono-tz`, and the plan of one
//! evaluation — which fire times are due, and where the schedule's clock moves to.
//!
//! Every store computes its plan here, from the database clock it read, so that the
//! rules (grace period, cap, daylight saving) are written once.

use crate::error::Violation;
use crate::model::Timestamp;
use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use std::time::Duration;

/// The most fire times one schedule enqueues in one evaluation; the rest wait for the
/// next evaluation (a per-second schedule with a very long grace cannot flood a pass).
pub const MAX_FIRES_PER_EVALUATION: usize = 1000;

/// The default grace period: a fire time older than this when it is first evaluated
/// means every node was down, and only the latest missed fire time is enqueued.
pub const DEFAULT_SCHEDULE_GRACE: Duration = Duration::from_secs(60);

/// A parsed cron expression in its time zone: what a schedule's `cron` and `timezone`
/// mean.
#[derive(Debug, Clone)]
pub struct Firing {
    cron: Cron,
    tz: Tz,
}

/// The fire times one evaluation of a due schedule enqueues, and the schedule's clock
/// afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirePlan {
    /// Fire times to enqueue, oldest first (never empty).
    pub fires: Vec<Timestamp>,
    /// The schedule's `last_fire_at` afterwards: the last of `fires`.
    pub last_fire_at: Timestamp,
    /// The schedule's `next_fire_at` afterwards (`None`: the expression never fires
    /// again).
    pub next_fire_at: Option<Timestamp>,
}

impl Firing {
    /// Parses `cron` (5 fields, or 6 with seconds first) and `timezone` (an IANA name).
    /// The violations name `/cron` and `/timezone`.
    pub fn parse(cron: &str, timezone: &str) -> Result<Self, Vec<Violation>> {
        let mut v = Vec::new();
        let fields = cron.split_whitespace().count();
        let parsed = if !(5..=6).contains(&fields) {
            v.push(Violation::new(
                "/cron",
                format!("must have 5 fields, or 6 with seconds first; found {fields}"),
            ));
            None
        } else {
            let parser = CronParser::builder()
                .seconds(Seconds::Optional)
                .year(Year::Disallowed)
                .build();
            match parser.parse(cron) {
                Ok(c) => Some(c),
                Err(e) => {
                    v.push(Violation::new("/cron", format!("is not a valid cron: {e}")));
                    None
                }
            }
        };
        let tz = match timezone.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                v.push(Violation::new(
                    "/timezone",
                    format!("{timezone:?} is not an IANA time zone name"),
                ));
                None
            }
        };
        match (parsed, tz) {
            (Some(cron), Some(tz)) if v.is_empty() => Ok(Self { cron, tz }),
            _ => Err(v),
        }
    }

    /// The first fire time strictly after `after`; `None` when there is none.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let local = self.tz.from_utc_datetime(&after.naive_utc());
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest fire time at or before `at`; `None` when there is none.
    fn latest_at_or_before(&self, at: Timestamp) -> Option<Timestamp> {
        let local = self.tz.from_utc_datetime(&at.naive_utc());
        self.cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The plan of one evaluation at `now` of a schedule whose next fire time is `due`.
    /// `None` when nothing is due yet (`due > now`).
    ///
    /// - When `due` is at most `grace` old, every fire time from `due` to `now` is
    ///   enqueued (at most `cap`; the rest are due at the next evaluation): while a node
    ///   evaluates, no fire time is skipped.
    /// - When `due` is older than `grace`, every node was down longer than the grace
    ///   period: only the latest fire time at or before `now` is enqueued (no catch-up
    ///   storm).
    pub fn plan(
        &self,
        due: Timestamp,
        now: Timestamp,
        grace: Duration,
        cap: usize,
    ) -> Option<FirePlan> {
        if due > now {
            return None;
        }
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let fires = if now.signed_duration_since(due) > grace {
            vec![
                self.latest_at_or_before(now)
                    .filter(|t| *t >= due)
                    .unwrap_or(due),
            ]
        } else {
            let mut fires = vec![due];
            while fires.len() < cap.max(1) {
                match self.next_after(*fires.last().expect("never empty")) {
                    Some(t) if t <= now => fires.push(t),
                    _ => break,
                }
            }
            fires
        };
        let last_fire_at = *fires.last().expect("never empty");
        Some(FirePlan {
            next_fire_at: self.next_after(last_fire_at),
            last_fire_at,
            fires,
        })
    }
}

/// The identifier of the entry of schedule `name` for fire time `fire_at` (SPEC §9):
/// `schedule:<name>:<fire time, RFC 3339 UTC>`.
pub fn fire_identifier(name: &str, fire_at: Timestamp) -> String {
    format!(
        "schedule:{name}:{}",
        fire_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
    )
}

#[cfg(test)]
#[path = "firing_tests.rs"]
mod tests;
