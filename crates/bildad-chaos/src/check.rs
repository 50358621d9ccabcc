//! The verdict, from the database alone: every planned job reached its final state by the
//! retry rule, no attempt started twice, every run has one outcome with the right reason.

use crate::db::{NodeRow, RunRow};
use crate::plan::{Expected, KILLED_TIMEOUT, PlannedJob};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// What the checks may assume about expiries.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `--node-dead-after-seconds` of the nodes.
    pub node_dead_after_secs: f64,
    /// When false, `Expired` is allowed only for runs of instances that never recorded
    /// a clean departure (the killed ones). An outage makes every node look dead, so
    /// the outage scenario allows it for any node.
    pub expired_from_any_node: bool,
    /// The database was away for a while: a killer's `Timeout` could then be recorded
    /// only after an isolated job's process had ended by itself, so nothing was killed
    /// and the reason stays plain `Timeout`.
    pub database_away: bool,
}

/// Counts and violations.
#[derive(Debug, Default, Clone)]
pub struct Verdict {
    /// Planned jobs.
    pub jobs: usize,
    /// Runs in the history.
    pub runs: usize,
    /// Jobs whose last run succeeded.
    pub succeeded: usize,
    /// Jobs that failed with their retries exhausted.
    pub exhausted: usize,
    /// Runs ended `Expired`.
    pub expired: usize,
    /// Runs ended `Timeout`.
    pub timeouts: usize,
    /// Runs the retry rule gives when nothing is killed (the rest are the kills' cost).
    pub runs_without_faults: usize,
    /// Node instances that never recorded a departure (killed).
    pub killed_instances: usize,
    /// Every broken rule, one line each.
    pub violations: Vec<String>,
}

impl Verdict {
    /// True when no rule was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "jobs {} (succeeded {}, failed with retries exhausted {}); runs {} \
             ({} without faults, {} more from kills); expired runs {}; timeouts {}; \
             killed instances {}",
            self.jobs,
            self.succeeded,
            self.exhausted,
            self.runs,
            self.runs_without_faults,
            self.runs as i64 - self.runs_without_faults as i64,
            self.expired,
            self.timeouts,
            self.killed_instances
        )?;
        if self.violations.is_empty() {
            write!(f, "verdict: PASS (0 violations)")
        } else {
            writeln!(f, "verdict: FAIL ({} violations)", self.violations.len())?;
            for v in self.violations.iter().take(40) {
                writeln!(f, "  - {v}")?;
            }
            if self.violations.len() > 40 {
                writeln!(f, "  … and {} more", self.violations.len() - 40)?;
            }
            Ok(())
        }
    }
}

/// Checks `runs`, `nodes` and what is left in `queue` against `plan`.
pub fn verdict(
    plan: &[PlannedJob],
    runs: &[RunRow],
    nodes: &[NodeRow],
    queue: &[(String, String)],
    rules: Rules,
) -> Verdict {
    let mut v = Verdict {
        jobs: plan.len(),
        runs: runs.len(),
        ..Verdict::default()
    };
    let nodes_by_id: HashMap<&str, &NodeRow> =
        nodes.iter().map(|n| (n.instance_id.as_str(), n)).collect();
    v.killed_instances = nodes.iter().filter(|n| !n.stopped).count();

    for (id, status) in queue {
        v.violations.push(format!(
            "{id}: entry left in the queue ({status}) at the end"
        ));
    }

    let planned: HashSet<&str> = plan.iter().map(|j| j.identifier.as_str()).collect();
    let mut by_job: HashMap<&str, Vec<&RunRow>> = HashMap::new();
    let mut seen = HashSet::new();
    for r in runs {
        if !seen.insert((r.identifier.as_str(), r.retry)) {
            v.violations
                .push(format!("{} retry {}: started twice", r.identifier, r.retry));
        }
        if !planned.contains(r.identifier.as_str()) {
            v.violations
                .push(format!("{}: a run of a job nobody planned", r.identifier));
        }
        by_job.entry(r.identifier.as_str()).or_default().push(r);
    }

    for job in plan {
        v.runs_without_faults += job.runs_without_faults() as usize;
        let mut job_runs = by_job.remove(job.identifier.as_str()).unwrap_or_default();
        job_runs.sort_by_key(|r| r.retry);
        check_job(job, &job_runs, &nodes_by_id, rules, &mut v);
    }
    v
}

fn check_job(
    job: &PlannedJob,
    runs: &[&RunRow],
    nodes: &HashMap<&str, &NodeRow>,
    rules: Rules,
    v: &mut Verdict,
) {
    let id = &job.identifier;
    if runs.is_empty() {
        v.violations.push(format!("{id}: lost (never ran)"));
        return;
    }
    for (i, r) in runs.iter().enumerate() {
        let i = i as i32;
        if r.retry != i {
            v.violations.push(format!(
                "{id}: retries are not 0..n (found retry {} at position {i})",
                r.retry
            ));
            return;
        }
        if r.status != "DONE" {
            v.violations
                .push(format!("{id} retry {i}: still {} at the end", r.status));
            continue;
        }
        let Some(ended) = r.ended_at else {
            v.violations
                .push(format!("{id} retry {i}: DONE without ended_at"));
            continue;
        };
        if i > 0
            && let Some(prev_end) = runs[(i - 1) as usize].ended_at
            && r.started_at < prev_end
        {
            v.violations.push(format!(
                "{id} retry {i}: started {:.3}s before retry {} ended (two at once)",
                prev_end - r.started_at,
                i - 1
            ));
        }
        let reason = r.reason.as_deref().unwrap_or("");
        let result = r.result.as_deref().unwrap_or("");
        if result == "FAILED" && reason == "Expired" {
            v.expired += 1;
            match nodes.get(r.node.as_str()) {
                None => v.violations.push(format!(
                    "{id} retry {i}: Expired on unknown node {}",
                    r.node
                )),
                Some(n) => {
                    if n.stopped && !rules.expired_from_any_node {
                        v.violations.push(format!(
                            "{id} retry {i}: Expired, but its node {} ({}) was not killed",
                            n.name, n.instance_id
                        ));
                    }
                    // Expiry needs the node silent for node_dead_after (or expires_at).
                    if !rules.expired_from_any_node
                        && ended < n.last_heartbeat_at + rules.node_dead_after_secs - 0.001
                    {
                        v.violations.push(format!(
                            "{id} retry {i}: Expired {:.3}s after its node's last heartbeat \
                             (< node_dead_after)",
                            ended - n.last_heartbeat_at
                        ));
                    }
                }
            }
        } else {
            if reason == "Timeout" || reason == KILLED_TIMEOUT {
                v.timeouts += 1;
                if ended < r.timeout_at {
                    v.violations.push(format!(
                        "{id} retry {i}: Timeout {:.3}s before its timeout_at",
                        r.timeout_at - ended
                    ));
                }
            }
            let got = if result == "SUCCEEDED" {
                Expected::Success
            } else {
                Expected::Failure(reason.to_owned())
            };
            let want = job.expected(i);
            // A node killed after its killer's finalize and before the child's kill was
            // recorded leaves the plain reason; so does a process that ended by itself
            // before a finalize delayed by the database's absence.
            let node_killed = nodes.get(r.node.as_str()).is_some_and(|n| !n.stopped);
            let unmarked = want == Expected::Failure(KILLED_TIMEOUT.to_owned())
                && reason == "Timeout"
                && (node_killed || rules.database_away);
            if got != want && !unmarked {
                v.violations.push(format!(
                    "{id} retry {i} ({}): ended {got:?}, expected {want:?}",
                    job.kind.name()
                ));
            }
        }
        let last = i as usize == runs.len() - 1;
        let succeeded = result == "SUCCEEDED";
        if !last && (succeeded || i >= job.max_retries) {
            v.violations.push(format!(
                "{id}: retry {i} ended {result} with max_retries {}, yet retry {} ran",
                job.max_retries,
                i + 1
            ));
        }
        if last {
            if succeeded {
                v.succeeded += 1;
            } else if i >= job.max_retries {
                v.exhausted += 1;
            } else {
                v.violations.push(format!(
                    "{id}: last run (retry {i}) failed with retries left (max_retries {}) \
                     and no retry followed",
                    job.max_retries
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Kind;

    fn job(id: &str, kind: Kind, max_retries: i32, fail_times: i32) -> PlannedJob {
        PlannedJob {
            identifier: id.into(),
            kind,
            max_retries,
            fail_times,
            seconds: 0.0,
        }
    }

    fn run(id: &str, retry: i32, result: &str, reason: Option<&str>, node: &str) -> RunRow {
        let start = 100.0 + f64::from(retry) * 10.0;
        RunRow {
            identifier: id.into(),
            retry,
            status: "DONE".into(),
            result: Some(result.into()),
            reason: reason.map(Into::into),
            node: node.into(),
            started_at: start,
            ended_at: Some(start + 5.0),
            timeout_at: start + 1.0,
        }
    }

    fn nodes() -> Vec<NodeRow> {
        vec![
            NodeRow {
                instance_id: "live".into(),
                name: "a".into(),
                last_heartbeat_at: 1000.0,
                stopped: true,
            },
            NodeRow {
                instance_id: "killed".into(),
                name: "b".into(),
                last_heartbeat_at: 50.0,
                stopped: false,
            },
        ]
    }

    const RULES: Rules = Rules {
        node_dead_after_secs: 4.0,
        expired_from_any_node: false,
        database_away: false,
    };

    fn check(plan: &[PlannedJob], runs: &[RunRow]) -> Verdict {
        verdict(plan, runs, &nodes(), &[], RULES)
    }

    #[test]
    fn a_clean_history_passes() {
        let plan = [
            job("e", Kind::Echo, 1, 0),
            job("f", Kind::Flaky, 3, 2),
            job("x", Kind::Fail, 1, 0),
            job("t", Kind::Timeout, 0, 0),
        ];
        let runs = [
            run("e", 0, "FAILED", Some("Expired"), "killed"),
            run("e", 1, "SUCCEEDED", None, "live"),
            run("f", 0, "FAILED", Some("flaky failure 1 of 2"), "live"),
            run("f", 1, "FAILED", Some("flaky failure 2 of 2"), "live"),
            run("f", 2, "SUCCEEDED", None, "live"),
            run("x", 0, "FAILED", Some(crate::plan::FAIL_MESSAGE), "live"),
            run("x", 1, "FAILED", Some(crate::plan::FAIL_MESSAGE), "live"),
            run("t", 0, "FAILED", Some("Timeout"), "live"),
        ];
        let v = check(&plan, &runs);
        assert!(v.passed(), "{v}");
        assert_eq!(
            (v.succeeded, v.exhausted, v.expired, v.timeouts),
            (2, 2, 1, 1)
        );
        assert_eq!(v.runs_without_faults, 1 + 3 + 2 + 1);
    }

    #[test]
    fn every_broken_rule_is_reported() {
        let cases: Vec<(PlannedJob, Vec<RunRow>, &str)> = vec![
            (job("lost", Kind::Echo, 1, 0), vec![], "lost"),
            (
                job("twice", Kind::Echo, 1, 0),
                vec![
                    run("twice", 0, "SUCCEEDED", None, "live"),
                    run("twice", 0, "SUCCEEDED", None, "live"),
                ],
                "started twice",
            ),
            (
                job("exp", Kind::Echo, 1, 0),
                vec![
                    run("exp", 0, "FAILED", Some("Expired"), "live"),
                    run("exp", 1, "SUCCEEDED", None, "live"),
                ],
                "was not killed",
            ),
            (
                job("early", Kind::Timeout, 0, 0),
                vec![RunRow {
                    ended_at: Some(100.5),
                    ..run("early", 0, "FAILED", Some("Timeout"), "live")
                }],
                "before its timeout_at",
            ),
            (
                job("tmo", Kind::Echo, 0, 0),
                vec![run("tmo", 0, "FAILED", Some("Timeout"), "live")],
                "expected Success",
            ),
            (
                job("more", Kind::Fail, 0, 0),
                vec![
                    run("more", 0, "FAILED", Some(crate::plan::FAIL_MESSAGE), "live"),
                    run("more", 1, "FAILED", Some(crate::plan::FAIL_MESSAGE), "live"),
                ],
                "yet retry 1 ran",
            ),
            (
                job("stuck", Kind::Fail, 2, 0),
                vec![run(
                    "stuck",
                    0,
                    "FAILED",
                    Some(crate::plan::FAIL_MESSAGE),
                    "live",
                )],
                "retries left",
            ),
            (
                job("overlap", Kind::Echo, 1, 0),
                vec![
                    run("overlap", 0, "FAILED", Some("Expired"), "killed"),
                    RunRow {
                        started_at: 101.0,
                        ..run("overlap", 1, "SUCCEEDED", None, "live")
                    },
                ],
                "two at once",
            ),
            (
                job("running", Kind::Echo, 0, 0),
                vec![RunRow {
                    status: "RUNNING".into(),
                    result: None,
                    ended_at: None,
                    ..run("running", 0, "SUCCEEDED", None, "live")
                }],
                "still RUNNING",
            ),
        ];
        for (plan, runs, want) in cases {
            let v = check(std::slice::from_ref(&plan), &runs);
            assert!(
                v.violations.iter().any(|x| x.contains(want)),
                "{}: wanted {want:?}, got {:?}",
                plan.identifier,
                v.violations
            );
        }
        let left = verdict(&[], &[], &nodes(), &[("q".into(), "RUNNING".into())], RULES);
        assert!(left.violations[0].contains("left in the queue"));
    }

    #[test]
    fn an_isolated_timeout_is_killed_unless_its_node_died_first() {
        let plan = [job("s", Kind::Spin, 1, 0)];
        let killed = [
            run("s", 0, "FAILED", Some(KILLED_TIMEOUT), "live"),
            run("s", 1, "FAILED", Some("Timeout"), "killed"),
        ];
        let v = check(&plan, &killed);
        assert!(v.passed(), "{v}");
        assert_eq!(v.timeouts, 2);
        let unmarked = [
            run("s", 0, "FAILED", Some("Timeout"), "live"),
            run("s", 1, "FAILED", Some(KILLED_TIMEOUT), "live"),
        ];
        let v = check(&plan, &unmarked);
        assert_eq!(v.violations.len(), 1, "{v}");
        assert!(v.violations[0].contains("s retry 0 (spin)"), "{v}");
        let away = Rules {
            database_away: true,
            ..RULES
        };
        let v = verdict(&plan, &unmarked, &nodes(), &[], away);
        assert!(v.passed(), "{v}");
    }
}
