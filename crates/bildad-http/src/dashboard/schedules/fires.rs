//! A schedule's recent fires for the Schedules page: its newest fire times (computed from
//! `last_fire_at` and the cron, never read from the database) and, for each, the newest
//! run of that fire's entry (`schedule:<name>:<fire time>`), one indexed read by
//! identifier each. A page of `n` schedules costs at most `n ×` [`RECENT_FIRES`] reads.

use bildad_core::firing::{Firing, fire_identifier};
use bildad_core::{JobRun, JobStore, PageRequest, RunFilter, Schedule, StoreError, Timestamp};
use chrono::TimeDelta;

/// How many of a schedule's newest fire times the page looks up.
pub(super) const RECENT_FIRES: usize = 5;

/// The most cron steps one schedule's walk takes (a per-second cron needs `RECENT_FIRES`).
const MAX_STEPS: usize = 10_000;

/// The widest window the walk looks back over before `last_fire_at`.
const MAX_WINDOW: TimeDelta = TimeDelta::days(366 * 30);

/// Up to `n` fire times, newest first: `last` itself, then the cron's fire times before
/// it. Walks forward (the cron is read forward only) from a window before `last` that
/// starts at `n + 1` periods and widens fourfold until it holds enough, within
/// [`MAX_STEPS`] steps and [`MAX_WINDOW`]. Fire times the nodes skipped (every node down
/// past the grace period) are in the list: their entries have no run.
pub(super) fn recent_fire_times(firing: &Firing, last: Timestamp, n: usize) -> Vec<Timestamp> {
    if n == 0 {
        return Vec::new();
    }
    let period = firing
        .next_after(last)
        .map_or(TimeDelta::minutes(1), |t| t - last)
        .max(TimeDelta::seconds(1));
    let mut window = (period * (n as i32 + 1)).min(MAX_WINDOW);
    let mut steps = 0;
    loop {
        let mut earlier = Vec::new();
        let mut t = last - window;
        while let Some(next) = firing.next_after(t).filter(|x| *x < last) {
            earlier.push(next);
            t = next;
            steps += 1;
            if steps >= MAX_STEPS {
                break;
            }
        }
        if earlier.len() + 1 >= n || steps >= MAX_STEPS || window >= MAX_WINDOW {
            let mut fires = vec![last];
            fires.extend(earlier.into_iter().rev().take(n - 1));
            return fires;
        }
        window = (window * 4).min(MAX_WINDOW);
    }
}

/// Schedule `s`'s newest fire times with the newest run of each (`None`: the fire's
/// entry has not run, or the fire was skipped). Empty before its first fire.
pub(super) async fn recent_fires(
    store: &dyn JobStore,
    s: &Schedule,
) -> Result<Vec<(Timestamp, Option<JobRun>)>, StoreError> {
    let Some(last) = s.last_fire_at else {
        return Ok(Vec::new());
    };
    let times = match s.firing() {
        Ok(firing) => recent_fire_times(&firing, last, RECENT_FIRES),
        Err(_) => vec![last],
    };
    let mut fires = Vec::with_capacity(times.len());
    for t in times {
        let filter = RunFilter {
            identifier: Some(fire_identifier(&s.name, t)),
            ..RunFilter::default()
        };
        let newest = PageRequest { page: 0, limit: 1 };
        fires.push((t, store.list_runs(filter, newest).await?.items.pop()));
    }
    Ok(fires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> Timestamp {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn a_regular_cron_gives_the_last_fires_newest_first() {
        let f = Firing::parse("*/15 * * * *", "UTC").unwrap();
        let last = at(2026, 12, 3, 10, 0, 0);
        assert_eq!(
            recent_fire_times(&f, last, 3),
            vec![last, at(2026, 12, 3, 9, 45, 0), at(2026, 12, 3, 9, 30, 0)]
        );
    }

    #[test]
    fn an_irregular_cron_widens_the_window() {
        // Weekdays at 09:00: the Monday fire's predecessors are Friday and Thursday.
        let f = Firing::parse("0 9 * * 1-5", "Europe/Paris").unwrap();
        let monday = at(2026, 11, 30, 8, 0, 0);
        assert_eq!(
            recent_fire_times(&f, monday, 3),
            vec![monday, at(2026, 11, 27, 8, 0, 0), at(2026, 11, 26, 8, 0, 0)]
        );
    }

    #[test]
    fn a_per_second_cron_and_a_last_fire_off_the_cron() {
        let f = Firing::parse("* * * * * *", "UTC").unwrap();
        let last = at(2026, 12, 3, 10, 0, 0);
        let got = recent_fire_times(&f, last, 5);
        assert_eq!(got.len(), 5);
        assert_eq!(got[4], at(2026, 12, 3, 9, 59, 56));
        // The cron changed after the last fire: it still leads the list.
        let hourly = Firing::parse("0 * * * *", "UTC").unwrap();
        let odd = at(2026, 12, 3, 10, 7, 0);
        assert_eq!(
            recent_fire_times(&hourly, odd, 2),
            vec![odd, at(2026, 12, 3, 10, 0, 0)]
        );
    }

    #[test]
    fn a_cron_that_rarely_fires_stays_bounded() {
        // 29 February: the window widens up to its bound, and what it found is returned.
        let f = Firing::parse("0 0 29 2 *", "UTC").unwrap();
        let last = at(2028, 2, 29, 0, 0, 0);
        let got = recent_fire_times(&f, last, 3);
        assert_eq!(
            got,
            vec![last, at(2024, 2, 29, 0, 0, 0), at(2020, 2, 29, 0, 0, 0)]
        );
        assert_eq!(recent_fire_times(&f, last, 0), Vec::<Timestamp>::new());
    }
}
