//! The one rule that turns a finalized run's outcome into its entry's fate (SPEC §2.4):
//! deleted, requeued at a time, or (for a run whose finalize lost) left alone. Every
//! store applies it — `MemoryStore` here, the SQL stores in `bildad-store-diesel`, where
//! the statements receive the decision as data.

use crate::input::{Disposition, Finalize, Outcome};
use std::time::Duration;

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
    /// [`crate::FailureKind::NotStarted`]).
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
