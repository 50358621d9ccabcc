//! The overview's chart: runs finished per minute, succeeded and failed stacked, as
//! an SVG drawn on the server (no script, no external library).

use bildad_core::{ActivityBucket, Timestamp};
use chrono::TimeDelta;
use maud::{Markup, html};

const WIDTH: u32 = 720;
const HEIGHT: u32 = 180;
const PLOT_TOP: u32 = 10;
const PLOT_HEIGHT: u32 = 140;
const LEFT: u32 = 40;

/// Bars for the last `minutes` buckets of `buckets`, whose bucket `first` is the
/// oldest shown; `start` is the time at which bucket `first` begins.
pub(crate) fn runs_per_minute(
    buckets: &[ActivityBucket],
    first: u32,
    minutes: u32,
    start: Timestamp,
) -> Markup {
    let mut bars = vec![(0u64, 0u64); minutes as usize];
    for b in buckets {
        if b.index >= first && b.index < first + minutes {
            bars[(b.index - first) as usize] = (b.succeeded, b.failed);
        }
    }
    let max = bars.iter().map(|(s, f)| s + f).max().unwrap_or(0).max(1);
    // A round top for the axis: 1, 2, 5, 10, 20, 50, ...
    let top = nice_ceiling(max);
    let plot_width = WIDTH - LEFT - 10;
    let slot = f64::from(plot_width) / f64::from(minutes.max(1));
    let bar_w = (slot - 2.0).max(1.0);
    let y = |count: u64| f64::from(PLOT_HEIGHT) * count as f64 / top as f64;
    let total_s: u64 = bars.iter().map(|b| b.0).sum();
    let total_f: u64 = bars.iter().map(|b| b.1).sum();
    let label = format!(
        "Runs finished per minute over the last {minutes} minutes: {total_s} succeeded, {total_f} failed"
    );
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(label) xmlns="http://www.w3.org/2000/svg" {
            title { (label) }
            // Grid: bottom, middle, top.
            @for (frac, value) in [(0.0, 0), (0.5, top / 2), (1.0, top)] {
                @let gy = f64::from(PLOT_TOP + PLOT_HEIGHT) - frac * f64::from(PLOT_HEIGHT);
                line.grid x1=(LEFT) x2=(WIDTH - 10) y1=(gy) y2=(gy) {}
                text.axis x=(LEFT - 6) y=(gy + 4.0) text-anchor="end" { (value) }
            }
            @for (i, (s, f)) in bars.iter().enumerate() {
                @let x = f64::from(LEFT) + slot * i as f64 + 1.0;
                @let base = f64::from(PLOT_TOP + PLOT_HEIGHT);
                @let minute = start + TimeDelta::minutes(i as i64);
                @if s + f > 0 {
                    g {
                        title { (minute.format("%H:%M")) " UTC: " (s) " succeeded, " (f) " failed" }
                        @if *s > 0 {
                            rect.succeeded x=(x) y=(base - y(*s)) width=(bar_w) height=(y(*s)) {}
                        }
                        @if *f > 0 {
                            rect.failed x=(x) y=(base - y(*s) - y(*f)) width=(bar_w) height=(y(*f)) {}
                        }
                    }
                }
            }
            @let axis_y = PLOT_TOP + PLOT_HEIGHT + 18;
            text.axis x=(LEFT) y=(axis_y) { (minutes) " min ago" }
            text.axis x=(LEFT + plot_width / 2) y=(axis_y) text-anchor="middle" { (minutes / 2) " min ago" }
            text.axis x=(WIDTH - 10) y=(axis_y) text-anchor="end" { "now" }
        }
        p.legend {
            span.key.succeeded {} "succeeded (" (total_s) ") "
            span.key.failed {} "failed (" (total_f) ")"
        }
    }
}

fn nice_ceiling(n: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if step * m >= n {
                return step * m;
            }
        }
        step = step.saturating_mul(10);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        for (n, top) in [
            (1, 1),
            (2, 2),
            (3, 5),
            (6, 10),
            (11, 20),
            (51, 100),
            (999, 1000),
        ] {
            assert_eq!(nice_ceiling(n), top, "{n}");
        }
    }

    #[test]
    fn one_bar_per_minute_with_its_counts() {
        let buckets = [
            ActivityBucket {
                index: 5,
                succeeded: 3,
                failed: 1,
            },
            ActivityBucket {
                index: 70,
                succeeded: 9,
                failed: 0,
            },
        ];
        let svg = runs_per_minute(&buckets, 0, 60, chrono::Utc::now()).into_string();
        assert_eq!(svg.matches("class=\"succeeded\"").count(), 1);
        assert_eq!(svg.matches("class=\"failed\"").count(), 1);
        assert!(svg.contains("3 succeeded, 1 failed"));
        assert!(
            !svg.contains("9 succeeded"),
            "a bucket outside the window is not drawn"
        );
    }
}
