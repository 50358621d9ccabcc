//! The domain model of SPEC §1: templates, queue entries, runs, nodes, pages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A point in time, always UTC, always read from the database clock (SPEC §2.8).
pub type Timestamp = DateTime<Utc>;

/// The database id of a job run. The run id is the lease: every write that ends a
/// run is guarded by `id = $run AND status = 'RUNNING'`.
pub type RunId = i64;

/// The database id of a queue entry.
pub type EntryId = i64;

/// Declares a string-backed enum with its wire spelling, `Display` and `FromStr`.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// The spelling used in the database and on the wire.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(UnknownValue {
                        kind: stringify!($name),
                        value: other.chars().take(64).collect(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A string that names no value of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}; expected one of {expected:?}")]
pub struct UnknownValue {
    /// The enum's name.
    pub kind: &'static str,
    /// The rejected text (at most 64 characters of it).
    pub value: String,
    /// The accepted spellings.
    pub expected: &'static [&'static str],
}

wire_enum!(
    /// The status of a queue entry.
    EntryStatus {
        /// Waiting to be claimed once `run_at` has passed.
        Available => "AVAILABLE",
        /// Claimed: `current_run_id` names its running run.
        Running => "RUNNING",
    }
);

wire_enum!(
    /// The status of a job run.
    RunStatus {
        /// Started and not yet finalized.
        Running => "RUNNING",
        /// Finalized; `result` says how.
        Done => "DONE",
    }
);

wire_enum!(
    /// How a finished run ended.
    RunResult {
        /// The job returned `Ok`.
        Succeeded => "SUCCEEDED",
        /// Any other ending; `reason` says why.
        Failed => "FAILED",
    }
);

wire_enum!(
    /// Which templates a listing shows.
    TemplateFilter {
        /// Only active templates (the default).
        Active => "active",
        /// Only inactive templates.
        Inactive => "inactive",
        /// Every template.
        All => "all",
    }
);

#[allow(clippy::derivable_impls)] // the enum is declared by `wire_enum!`
impl Default for TemplateFilter {
    fn default() -> Self {
        Self::Active
    }
}

/// A row that makes a job type runnable (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobTemplate {
    /// Database id.
    pub id: i64,
    /// Unique code, used by callers to name the template.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The registered job type that runs entries of this template.
    pub job_type: String,
    /// Inactive templates accept no new entries.
    pub active: bool,
    /// Listing order (ascending, then `code`).
    pub display_order: i32,
    /// Timeout of an entry that does not set its own.
    pub default_timeout_seconds: i32,
    /// Retries of an entry that does not set its own.
    pub default_max_retries: i32,
    /// JSON Schema that every context must satisfy.
    pub context_schema: Value,
    /// When the template was created.
    pub inserted_at: Timestamp,
    /// When the template last changed; with `id` it names the schema version.
    pub updated_at: Timestamp,
    /// The queue its entries join unless an enqueue names another (SPEC §8).
    pub queue: String,
}

/// A request to run a template with a context (SPEC §1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// Database id.
    pub id: EntryId,
    /// Unique identifier; supplied by the caller for idempotency, else a UUID.
    pub job_run_identifier: String,
    /// The template's code.
    pub template: String,
    /// `AVAILABLE` or `RUNNING`.
    pub status: EntryStatus,
    /// Lower runs first.
    pub priority: i32,
    /// Seconds a run may take before the killer ends it.
    pub timeout_seconds: i32,
    /// How many retries after the first attempt.
    pub max_retries: i32,
    /// The job's input.
    pub context: Value,
    /// Not claimed before this time.
    pub run_at: Timestamp,
    /// The number of runs this entry has had (the next run's `retry`).
    pub attempts: i32,
    /// The running run, while `RUNNING`.
    pub current_run_id: Option<RunId>,
    /// When the entry was enqueued.
    pub inserted_at: Timestamp,
    /// When the entry last changed.
    pub updated_at: Timestamp,
    /// The queue it waits in (SPEC §8).
    pub queue: String,
}

/// One attempt at a queue entry (SPEC §1). Runs are the history: never deleted by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRun {
    /// Database id; the lease of this attempt.
    pub id: RunId,
    /// The entry's identifier.
    pub job_run_identifier: String,
    /// The template's code at start.
    pub template: String,
    /// The job type at start.
    pub job_type: String,
    /// 0 for the first attempt.
    pub retry: i32,
    /// Unique per run.
    pub process_name: String,
    /// The instance id of the node that runs it.
    pub node: String,
    /// The configured name of that node.
    pub node_name: String,
    /// `RUNNING` or `DONE`.
    pub status: RunStatus,
    /// Null while running.
    pub result: Option<RunResult>,
    /// Why it failed (at most [`crate::MAX_REASON_BYTES`]).
    pub reason: Option<String>,
    /// The context the run started with.
    pub context: Value,
    /// What the job returned.
    pub output: Option<Value>,
    /// Start time.
    pub started_at: Timestamp,
    /// `started_at + timeout`.
    pub timeout_at: Timestamp,
    /// `timeout_at + expiry grace`.
    pub expires_at: Timestamp,
    /// End time, once `DONE`.
    pub ended_at: Option<Timestamp>,
    /// The queue of its entry when it started (SPEC §8).
    pub queue: String,
}

/// A node instance as the database knows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// New at every start (a UUID).
    pub instance_id: String,
    /// The configured name.
    pub name: String,
    /// First heartbeat.
    pub started_at: Timestamp,
    /// Latest heartbeat.
    pub last_heartbeat_at: Timestamp,
    /// Set when the node shut down cleanly.
    pub stopped_at: Option<Timestamp>,
}

/// Who is claiming or heartbeating: a node's name and its instance id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeRef {
    /// The configured name (e.g. the host name).
    pub name: String,
    /// New at every start.
    pub instance_id: String,
}

impl NodeRef {
    /// A node named `name` with a fresh instance id.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            instance_id: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// A page request: `page` counts from 0, `limit` is 1..=[`PageRequest::MAX_LIMIT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Page number, from 0.
    pub page: u32,
    /// Items per page.
    pub limit: u32,
}

impl PageRequest {
    /// The default page size.
    pub const DEFAULT_LIMIT: u32 = 25;
    /// The largest page size.
    pub const MAX_LIMIT: u32 = 500;

    /// Checks the bounds; `Invalid` names the bad field.
    pub fn new(page: u32, limit: u32) -> Result<Self, crate::StoreError> {
        let mut v = Vec::new();
        if limit == 0 || limit > Self::MAX_LIMIT {
            v.push(crate::Violation::new(
                "/limit",
                format!("must be between 1 and {}", Self::MAX_LIMIT),
            ));
        }
        // Keep offset * limit inside an i64 with room to spare.
        if page > 10_000_000 {
            v.push(crate::Violation::new("/page", "must be at most 10000000"));
        }
        if v.is_empty() {
            Ok(Self { page, limit })
        } else {
            Err(crate::StoreError::Invalid(v))
        }
    }

    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        u64::from(self.page) * u64::from(self.limit)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            page: 0,
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

/// One page of a listing, with the total count of the whole listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Items in the whole listing.
    pub total: u64,
    /// Page number, from 0.
    pub page: u32,
    /// Page size.
    pub limit: u32,
}

impl<T> Page<T> {
    /// A page of `items` out of `total`.
    pub fn new(items: Vec<T>, total: u64, req: PageRequest) -> Self {
        Self {
            items,
            total,
            page: req.page,
            limit: req.limit,
        }
    }

    /// Maps the items, keeping the counts.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            total: self.total,
            page: self.page,
            limit: self.limit,
        }
    }
}

/// Which runs a history listing shows. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Runs of this entry identifier.
    pub identifier: Option<String>,
    /// Runs in this status.
    pub status: Option<RunStatus>,
    /// Runs with this result.
    pub result: Option<RunResult>,
    /// Runs of this template code.
    pub template: Option<String>,
    /// Runs on this node (instance id or node name).
    pub node: Option<String>,
    /// Runs of this queue (SPEC §8).
    #[serde(default)]
    pub queue: Option<String>,
}

/// Counts of the queue and the history, for `bildad status` and dashboards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Entries `AVAILABLE` with `run_at <= now`.
    pub available: u64,
    /// Entries `AVAILABLE` with `run_at > now` (scheduled or backing off).
    pub scheduled: u64,
    /// Entries `RUNNING`.
    pub running: u64,
    /// Runs `SUCCEEDED`, all time.
    pub succeeded: u64,
    /// Runs `FAILED`, all time.
    pub failed: u64,
    /// Templates, active or not.
    pub templates: u64,
}

/// Which queue entries a listing shows. Every field narrows; `None` means any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryFilter {
    /// Entries in this status.
    pub status: Option<EntryStatus>,
    /// Entries of this template code.
    pub template: Option<String>,
    /// Entries of this queue (SPEC §8).
    #[serde(default)]
    pub queue: Option<String>,
}

/// Finished runs over a window of time, for dashboards: totals by result and a
/// histogram of when they ended. See [`crate::JobStore::run_activity`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunActivity {
    /// `DONE` runs with result `SUCCEEDED`.
    pub succeeded: u64,
    /// `DONE` runs with result `FAILED`.
    pub failed: u64,
    /// Non-empty buckets, oldest first: bucket `k` counts the runs that ended in
    /// `[since + k × bucket, since + (k + 1) × bucket)`.
    pub buckets: Vec<ActivityBucket>,
    /// False when the store stopped counting early (a store that counts by reading runs
    /// reads at most [`RunActivity::SCAN_LIMIT`] of them): the counts are then lower
    /// bounds. The stores of this workspace always count every run.
    pub complete: bool,
}

impl RunActivity {
    /// The most runs a store that counts by reading runs should read for
    /// [`crate::JobStore::run_activity`] (the dashboard names it when `complete` is false).
    pub const SCAN_LIMIT: u64 = 20_000;
}

/// One bucket of a [`RunActivity`] histogram.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityBucket {
    /// The bucket's number from the start of the window (0 = the oldest).
    pub index: u32,
    /// Runs that succeeded in this bucket.
    pub succeeded: u64,
    /// Runs that failed in this bucket.
    pub failed: u64,
}

impl RunActivity {
    /// Counts one finished run that ended `offset` after the window's start.
    pub fn record(&mut self, result: RunResult, offset: chrono::TimeDelta, bucket: Duration) {
        let index =
            u32::try_from(offset.num_milliseconds().max(0) as u128 / bucket.as_millis().max(1))
                .unwrap_or(u32::MAX);
        let at = match self.buckets.binary_search_by_key(&index, |b| b.index) {
            Ok(i) => i,
            Err(i) => {
                self.buckets.insert(
                    i,
                    ActivityBucket {
                        index,
                        ..ActivityBucket::default()
                    },
                );
                i
            }
        };
        match result {
            RunResult::Succeeded => {
                self.succeeded += 1;
                self.buckets[at].succeeded += 1;
            }
            RunResult::Failed => {
                self.failed += 1;
                self.buckets[at].failed += 1;
            }
        }
    }
}
