//! Jobs as Rust types (SPEC §7): arguments that name their job type once, and the
//! options of a typed enqueue.
//!
//! This is the seam between the typed API and the untyped one every store speaks: a
//! typed enqueue becomes a [`NewEntry`] here, in one place, and is then validated and
//! written exactly like an entry sent over HTTP.

use crate::NewEntry;
use crate::error::StoreError;
use crate::model::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// The arguments of a job type. The type names its job type once, in [`JobArgs::KIND`],
/// which is also the code of its template; the template's `context_schema` is derived
/// from the type with `schemars`.
///
/// ```
/// use bildad_core::{JobArgs, JobDefaults};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct Welcome {
///     email: String,
/// }
///
/// impl JobArgs for Welcome {
///     const KIND: &'static str = "welcome";
///     fn defaults() -> JobDefaults {
///         JobDefaults { max_retries: Some(5), ..JobDefaults::default() }
///     }
/// }
/// ```
pub trait JobArgs:
    Serialize + DeserializeOwned + schemars::JsonSchema + Send + Sync + 'static
{
    /// The job type, and the code of its template (characters of a code: SPEC §1).
    const KIND: &'static str;

    /// This job type's defaults. Name, timeout, retries and queue become its template's
    /// defaults; the priority and the queue are given to every entry that does not set
    /// its own.
    fn defaults() -> JobDefaults {
        JobDefaults::default()
    }

    /// The `context_schema` of this job type's template: by default the type's JSON
    /// Schema as `schemars` derives it. Override it only to keep a hand-written schema.
    fn context_schema() -> serde_json::Value {
        serde_json::Value::from(schemars::schema_for!(Self))
    }
}

/// The defaults a job type declares (each `None` keeps Bildad's default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobDefaults {
    /// The template's display name (default: the kind).
    pub name: Option<&'static str>,
    /// Priority of its entries (default 5; lower runs first).
    pub priority: Option<i32>,
    /// The template's `default_max_retries`.
    pub max_retries: Option<i32>,
    /// The template's `default_timeout_seconds`.
    pub timeout_seconds: Option<i32>,
    /// Makes every entry of this job type unique for this many seconds (SPEC §8), unless
    /// its enqueue says otherwise.
    pub unique_for_seconds: Option<i32>,
    /// The queue of its template, which the code owns (SPEC §8; default `"default"`), and
    /// of every entry whose enqueue names no other. Same characters as a code.
    pub queue: Option<String>,
}

/// Options of one typed enqueue; unset fields take the job type's and then the
/// template's defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueOptions {
    /// The entry's `job_run_identifier` (default: a new time-ordered UUID).
    pub identifier: Option<String>,
    /// Lower runs first.
    pub priority: Option<i32>,
    /// The earliest start, as an instant.
    pub run_at: Option<Timestamp>,
    /// The earliest start, as a delay from the enqueue on the database clock.
    pub run_in: Option<Duration>,
    /// Retries of this entry.
    pub max_retries: Option<i32>,
    /// Timeout of each of its runs.
    pub timeout_seconds: Option<i32>,
    /// A unique job for this many seconds (SPEC §8; default: the job type's).
    pub unique_for_seconds: Option<i32>,
    /// The queue to join (SPEC §8; default: the job type's, then the template's).
    pub queue: Option<String>,
}

impl EnqueueOptions {
    /// Sets the identifier.
    pub fn identifier(mut self, id: impl Into<String>) -> Self {
        self.identifier = Some(id.into());
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = Some(p);
        self
    }

    /// Sets the earliest start.
    pub fn run_at(mut self, t: Timestamp) -> Self {
        self.run_at = Some(t);
        self
    }

    /// Starts no earlier than `delay` after the enqueue, on the database clock.
    pub fn run_in(mut self, delay: Duration) -> Self {
        self.run_in = Some(delay);
        self
    }

    /// Sets the retries.
    pub fn max_retries(mut self, r: i32) -> Self {
        self.max_retries = Some(r);
        self
    }

    /// Sets the timeout.
    pub fn timeout_seconds(mut self, t: i32) -> Self {
        self.timeout_seconds = Some(t);
        self
    }

    /// Makes the entry unique for `seconds` (see [`NewEntry::unique_for_seconds`]).
    pub fn unique_for_seconds(mut self, seconds: i32) -> Self {
        self.unique_for_seconds = Some(seconds);
        self
    }

    /// Joins `queue` instead of the job type's (see [`NewEntry::queue`]).
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }
}

impl NewEntry {
    /// The entry of a typed enqueue: `A::KIND`'s template, the arguments as its context,
    /// the options over the job type's defaults (the job type's queue is set on the entry
    /// too, so it holds even when the template was created by hand). An argument value that does not
    /// serialize to JSON is `Invalid` at `/context`.
    pub fn typed<A: JobArgs>(args: &A, options: EnqueueOptions) -> Result<Self, StoreError> {
        let defaults = A::defaults();
        let context = serde_json::to_value(args).map_err(|e| {
            StoreError::invalid(
                "/context",
                format!("the arguments do not serialize to JSON: {e}"),
            )
        })?;
        Ok(Self {
            template: A::KIND.to_owned(),
            context,
            priority: options.priority.or(defaults.priority),
            timeout_seconds: options.timeout_seconds,
            max_retries: options.max_retries,
            job_run_identifier: options.identifier,
            run_at: options.run_at,
            run_in: options.run_in,
            unique_for_seconds: options.unique_for_seconds.or(defaults.unique_for_seconds),
            queue: options.queue.or(defaults.queue),
            trace_context: None,
        })
    }
}
