//! What the engine hands the store and gets back: claims, finalizes (how a run ended and
//! what that does to its entry), and the results of the operator's stop and remove.

use crate::backoff::Backoff;
use crate::input::MAX_REASON_BYTES;
use crate::model::{JobRun, RunId, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// A claim of up to `limit` available entries for `node` (SPEC §2.2–2.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Who claims; the runs record its instance id and name.
    pub node: crate::model::NodeRef,
    /// Only entries whose template's job type is in this set.
    pub job_types: Vec<String>,
    /// At most this many entries.
    pub limit: u32,
    /// `expires_at = timeout_at + expiry_grace`.
    pub expiry_grace: Duration,
    /// Claim only this entry, if it is available (for `enqueue_and_run`), ignoring
    /// `run_at` and priority.
    pub only_identifier: Option<String>,
    /// Only entries of these queues (the queues this node serves, SPEC §8); `None`:
    /// every queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queues: Option<Vec<String>>,
    /// The node's local caps: at most this many entries of the named queue in this claim
    /// (the runtime passes its cap minus what it runs of that queue). A queue not named
    /// has no local cap.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub queue_caps: std::collections::BTreeMap<String, u32>,
}

/// A run the claim created, with what the runtime needs to start it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimedRun {
    /// The new run (`RUNNING`).
    pub run: JobRun,
    /// The entry's `max_retries`.
    pub max_retries: i32,
    /// The template's id and `updated_at`: the schema version to validate against.
    pub template_id: i64,
    /// See `template_id`.
    pub template_updated_at: Timestamp,
}

/// Why a run failed; decides what happens to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FailureKind {
    /// The job returned an error: retry rule.
    Error,
    /// The job panicked: retry rule.
    Panic,
    /// The killer ended it past `timeout_at`: retry rule.
    Timeout,
    /// The engine found it past `expires_at` or its node dead: retry rule.
    Expired,
    /// The node shut down before the job ended: retry rule.
    Shutdown,
    /// An operator stopped it: the entry returns to `AVAILABLE` now.
    Stopped,
    /// An operator removed the entry: the entry is deleted.
    Removed,
    /// Invalid context or unknown job type at start: the entry is deleted (retrying
    /// cannot fix it).
    Invalid,
    /// The job said retrying is pointless: the entry is deleted.
    Permanent,
    /// The run was claimed but its job never started (the node shut down first, or the
    /// template could not be read): the entry goes back to `AVAILABLE` at once and no
    /// retry is spent.
    NotStarted,
    /// The job asked to run again after this long (`JobError::snooze`, SPEC §8): the
    /// entry goes back to `AVAILABLE` then, and no retry is spent.
    Snoozed(Duration),
    /// The job cancelled itself (`JobError::cancel`, SPEC §8): the entry is deleted, no
    /// retry.
    Cancelled,
}

impl FailureKind {
    /// What happens to the entry after a failure of this kind.
    pub fn disposition(self) -> Disposition {
        match self {
            Self::Error | Self::Panic | Self::Timeout | Self::Expired | Self::Shutdown => {
                Disposition::RetryRule
            }
            Self::Stopped => Disposition::RequeueNow,
            Self::NotStarted => Disposition::GiveBack,
            Self::Snoozed(delay) => Disposition::GiveBackAfter(delay),
            Self::Removed | Self::Invalid | Self::Permanent | Self::Cancelled => {
                Disposition::Delete
            }
        }
    }
}

/// What a failure does to its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// `retry + 1 <= max_retries`: back to `AVAILABLE` after the backoff; else deleted.
    RetryRule,
    /// Back to `AVAILABLE` at once, whatever the retries.
    RequeueNow,
    /// Back to `AVAILABLE` at once, and the run does not count against `max_retries`:
    /// the retry rule later treats the entry as if this run never happened.
    GiveBack,
    /// As [`Disposition::GiveBack`], but available again only after this delay.
    GiveBackAfter(Duration),
    /// Deleted.
    Delete,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// `SUCCEEDED`, with the job's output.
    Succeeded {
        /// The job's output, stored on the run.
        output: Option<Value>,
    },
    /// `FAILED`.
    Failed {
        /// Decides the entry's fate.
        kind: FailureKind,
        /// The run's `reason`, capped at [`MAX_REASON_BYTES`].
        reason: String,
    },
}

impl Outcome {
    /// A success.
    pub fn succeeded(output: Option<Value>) -> Self {
        Self::Succeeded { output }
    }

    /// A failure; the reason is capped at [`MAX_REASON_BYTES`] on a char boundary.
    pub fn failed(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self::Failed {
            kind,
            reason: cap_reason(reason.into()),
        }
    }

    /// A failure whose reason is the kind's name (`Timeout`, `Expired`, `Stopped`, `Removed`).
    pub fn standard(kind: FailureKind) -> Self {
        let reason = match kind {
            FailureKind::Timeout => "Timeout",
            FailureKind::Expired => "Expired",
            FailureKind::Stopped => "Stopped",
            FailureKind::Removed => "Removed",
            FailureKind::Shutdown => "Shutdown",
            FailureKind::Error => "Error",
            FailureKind::Panic => "Panic",
            FailureKind::Invalid => "Invalid",
            FailureKind::Permanent => "Permanent",
            FailureKind::NotStarted => "NotStarted",
            FailureKind::Snoozed(_) => "Snoozed",
            FailureKind::Cancelled => "Cancelled",
        };
        Self::failed(kind, reason)
    }
}

/// Cuts `reason` to at most [`MAX_REASON_BYTES`] bytes on a char boundary.
pub fn cap_reason(mut reason: String) -> String {
    if reason.len() > MAX_REASON_BYTES {
        let mut end = MAX_REASON_BYTES;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    reason
}

/// End one run: the one conditional step of SPEC §2.4.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finalize {
    /// The run (the lease).
    pub run_id: RunId,
    /// How it ended.
    pub outcome: Outcome,
    /// The delay before a retry, by the run's `retry`.
    pub backoff: Backoff,
}

/// What a finalize did to the entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryFate {
    /// Success, retries exhausted, removed or invalid.
    Deleted,
    /// Back to `AVAILABLE`, not before `run_at`.
    Requeued {
        /// The earliest next start.
        run_at: Timestamp,
    },
    /// The finalize lost (the run was already `DONE`): nothing changed.
    Untouched,
}

/// The result of one finalize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeResult {
    /// The run.
    pub run_id: RunId,
    /// True for the one finalize that ended the run; false for every loser.
    pub won: bool,
    /// The entry's fate (`Untouched` for a loser).
    pub entry: EntryFate,
}

/// A running run, as the killer and the engine see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRef {
    /// The run.
    pub run_id: RunId,
    /// Its entry's identifier.
    pub job_run_identifier: String,
    /// Its retry number.
    pub retry: i32,
    /// The owning node instance.
    pub node: String,
    /// The run's queue (SPEC §8).
    pub queue: String,
}

/// What stopping an entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopResult {
    /// The run that was stopped.
    pub run_id: RunId,
    /// The node instance that owns the (now aborted) task.
    pub node: String,
}

/// What removing an entry did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveResult {
    /// The run that ended `Removed`, when the entry was running.
    pub stopped_run: Option<RunId>,
}
