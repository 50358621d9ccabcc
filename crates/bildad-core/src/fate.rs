//! What a finalize does, written once for every store: what it writes on the run
//! ([`RunEnd`]), and the one rule that turns the outcome into the entry's fate (SPEC
//! §2.4): deleted, requeued at a time, or (for a run whose finalize lost) left alone.
//! Also which ended runs may record that their process was killed ([`killed_reason`]).
//! `MemoryStore` applies it here, the SQL stores in `bildad-store-diesel`, where the
//! statements receive the decision as data.

use crate::model::RunResult;
use crate::{Disposition, Finalize, Outcome, cap_reason};
use serde_json::Value;
use std::time::Duration;

/// How a NUL character (U+0000) of a job's output or failure reason is stored: as the
/// six characters `\u0000`, since PostgreSQL can keep U+0000 neither in `text` nor in
/// `jsonb` (SPEC §4). Every store writes the same, so that they read back alike.
pub const NUL_ESCAPE: &str = "\\u0000";

/// `text` with every U+0000 written as [`NUL_ESCAPE`].
pub fn escape_nul(text: &str) -> String {
    text.replace('\0', NUL_ESCAPE)
}

/// `value` with every U+0000 of its strings and object keys written as [`NUL_ESCAPE`].
pub fn escape_nul_json(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(escape_nul(s)),
        Value::Array(items) => Value::Array(items.iter().map(escape_nul_json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (escape_nul(k), escape_nul_json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The columns a finalize writes on the run it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEnd {
    /// `SUCCEEDED` or `FAILED`.
    pub result: RunResult,
    /// A failure's reason: NULs escaped, then capped at
    /// [`crate::MAX_REASON_BYTES`].
    pub reason: Option<String>,
    /// A success's output, NULs escaped.
    pub output: Option<Value>,
}

impl Outcome {
    /// What a finalize with this outcome writes on its run.
    pub fn run_end(&self) -> RunEnd {
        match self {
            Outcome::Succeeded { output } => RunEnd {
                result: RunResult::Succeeded,
                reason: None,
                output: output.as_ref().map(escape_nul_json),
            },
            Outcome::Failed { reason, .. } => RunEnd {
                result: RunResult::Failed,
                reason: Some(cap_reason(escape_nul(reason))),
                output: None,
            },
        }
    }
}

/// The reasons of runs that an operator, the killer, an engine or a shutdown ended:
/// the only ones [`crate::JobStore::mark_killed`] may extend with [`KILLED_SUFFIX`].
pub const HARD_KILL_REASONS: [&str; 5] = ["Timeout", "Stopped", "Removed", "Expired", "Shutdown"];

/// What [`crate::JobStore::mark_killed`] appends to a run's reason once its process was
/// killed: `Timeout (killed)`.
pub const KILLED_SUFFIX: &str = " (killed)";

/// The reason a run ended with `reason` gets once its process was killed; `None` when
/// `reason` is not one of [`HARD_KILL_REASONS`] (a job's own reason, or already marked).
pub fn killed_reason(reason: &str) -> Option<String> {
    HARD_KILL_REASONS
        .contains(&reason)
        .then(|| format!("{reason}{KILLED_SUFFIX}"))
}

/// What a finalize does to the entry of a run it won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryAction {
    /// Delete the entry.
    Delete,
    /// Back to `AVAILABLE`, to run again `delay` after the finalize.
    Requeue {
        /// How long after the finalize the entry may run again.
        delay: Duration,
        /// False for a run that does not count against `max_retries` (its entry's count
        /// of such runs grows by one, see [`RetryState::uncounted_runs`]).
        counted: bool,
    },
}

/// What the retry rule needs to know about a run's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    /// The run's `retry`: how many runs of the entry came before it.
    pub retry: i32,
    /// How many of those runs do not count against `max_retries` (runs that ended
    /// [`crate::FailureKind::NotStarted`] or [`crate::FailureKind::Snoozed`]).
    pub uncounted_runs: i32,
    /// The entry's `max_retries`.
    pub max_retries: i32,
}

impl RetryState {
    /// The retries this entry has spent before the run: its `retry`, less the runs that
    /// do not count.
    pub fn spent(self) -> i32 {
        self.retry.saturating_sub(self.uncounted_runs).max(0)
    }
}

impl Outcome {
    /// What this outcome does to the entry: a success deletes it, a failure follows its
    /// kind.
    pub fn disposition(&self) -> Disposition {
        match self {
            Outcome::Succeeded { .. } => Disposition::Delete,
            Outcome::Failed { kind, .. } => kind.disposition(),
        }
    }
}

impl Disposition {
    /// The entry's fate when the outcome alone decides it; `None` for the retry rule,
    /// which needs the entry's [`RetryState`] (see [`entry_action`]).
    pub fn fixed_action(self) -> Option<EntryAction> {
        match self {
            Disposition::Delete => Some(EntryAction::Delete),
            Disposition::RequeueNow => Some(EntryAction::Requeue {
                delay: Duration::ZERO,
                counted: true,
            }),
            Disposition::GiveBack => Some(EntryAction::Requeue {
                delay: Duration::ZERO,
                counted: false,
            }),
            Disposition::GiveBackAfter(delay) => Some(EntryAction::Requeue {
                delay,
                counted: false,
            }),
            Disposition::RetryRule => None,
        }
    }
}

/// The fate of the entry of a run that `req` ended (SPEC §2.4): the outcome's fixed
/// action, or the retry rule — requeued after the backoff while `spent < max_retries`,
/// else deleted — counting only the runs that count.
pub fn entry_action(req: &Finalize, state: RetryState) -> EntryAction {
    if let Some(action) = req.outcome.disposition().fixed_action() {
        return action;
    }
    let spent = state.spent();
    if spent < state.max_retries {
        EntryAction::Requeue {
            delay: req.backoff.delay(spent, req.run_id),
            counted: true,
        }
    } else {
        EntryAction::Delete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Backoff, FailureKind};

    fn req(outcome: Outcome) -> Finalize {
        Finalize {
            run_id: 7,
            outcome,
            backoff: Backoff::immediate(),
        }
    }

    fn state(retry: i32, uncounted_runs: i32, max_retries: i32) -> RetryState {
        RetryState {
            retry,
            uncounted_runs,
            max_retries,
        }
    }

    #[test]
    fn nul_is_escaped_in_what_a_run_produced() {
        let end = Outcome::succeeded(Some(serde_json::json!({"k\u{0}": ["a\u{0}b", 1]}))).run_end();
        assert_eq!(
            end.output,
            Some(serde_json::json!({"k\\u0000": ["a\\u0000b", 1]}))
        );
        let end = Outcome::failed(FailureKind::Panic, "x\u{0}y").run_end();
        assert_eq!(end.reason.as_deref(), Some("x\\u0000y"));
        assert_eq!(end.result, RunResult::Failed);
    }

    #[test]
    fn only_reasons_of_runs_ended_from_outside_record_a_kill_once() {
        assert_eq!(
            killed_reason("Timeout").as_deref(),
            Some("Timeout (killed)")
        );
        assert_eq!(
            killed_reason("Stopped").as_deref(),
            Some("Stopped (killed)")
        );
        assert_eq!(killed_reason("Timeout (killed)"), None);
        assert_eq!(killed_reason("disk full"), None);
    }

    #[test]
    fn fixed_fates_ignore_the_retries() {
        let s = state(9, 0, 0);
        assert_eq!(
            entry_action(&req(Outcome::succeeded(None)), s),
            EntryAction::Delete
        );
        for (kind, action) in [
            (FailureKind::Removed, EntryAction::Delete),
            (FailureKind::Invalid, EntryAction::Delete),
            (FailureKind::Permanent, EntryAction::Delete),
            (
                FailureKind::Stopped,
                EntryAction::Requeue {
                    delay: Duration::ZERO,
                    counted: true,
                },
            ),
            (
                FailureKind::NotStarted,
                EntryAction::Requeue {
                    delay: Duration::ZERO,
                    counted: false,
                },
            ),
            (
                FailureKind::Snoozed(Duration::from_secs(30)),
                EntryAction::Requeue {
                    delay: Duration::from_secs(30),
                    counted: false,
                },
            ),
            (FailureKind::Cancelled, EntryAction::Delete),
        ] {
            assert_eq!(
                entry_action(&req(Outcome::standard(kind)), s),
                action,
                "{kind:?}"
            );
        }
    }

    #[test]
    fn the_retry_rule_counts_only_the_runs_that_count() {
        let failed = req(Outcome::standard(FailureKind::Error));
        assert_eq!(entry_action(&failed, state(0, 0, 0)), EntryAction::Delete);
        assert!(matches!(
            entry_action(&failed, state(0, 0, 1)),
            EntryAction::Requeue { counted: true, .. }
        ));
        assert_eq!(entry_action(&failed, state(1, 0, 1)), EntryAction::Delete);
        // One run before did not start: as if it never happened.
        assert!(matches!(
            entry_action(&failed, state(1, 1, 1)),
            EntryAction::Requeue { counted: true, .. }
        ));
        assert_eq!(entry_action(&failed, state(1, 1, 0)), EntryAction::Delete);
        assert_eq!(state(3, 1, 5).spent(), 2);
    }
}
