//! The `Job` trait, what a job receives, and the registry of job types.

use crate::lifecycle::FailureKind;
use crate::model::RunId;
use async_trait::async_trait;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A job type: the code that runs entries of the templates naming it.
///
/// A job runs as an async task. It is ended cooperatively (at its next `.await`) when
/// it times out or an operator stops it; a job with long blocking sections should
/// check [`JobContext::is_cancelled`] or move the blocking work to a blocking thread —
/// or its type can be marked process-isolated ([`JobRegistry::isolate`]): its runs then
/// execute in a child process, ended with `SIGKILL`.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Runs one attempt. `Ok(output)` succeeds (the output is stored on the run);
    /// `Err` fails the run and the retry rule applies, unless the error is
    /// [`JobError::permanent`].
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError>;

    /// True when this job, once its [`JobContext::cancellation`] is set, ends by itself
    /// at once (a process-isolated job kills its child process and returns). The
    /// executor then cancels it without dropping it, and its slot frees only when it has
    /// returned. False (the default): the executor also drops it at its next `.await`.
    fn ends_on_cancel(&self) -> bool {
        false
    }
}

/// Any `async fn(JobContext) -> Result<Option<Value>, JobError>` is a job.
#[async_trait]
impl<F, Fut> Job for F
where
    F: Fn(JobContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Option<Value>, JobError>> + Send + 'static,
{
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        (self)(ctx).await
    }
}

/// What a running job knows about itself.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The entry's context (validated against the template's schema at start).
    pub context: Value,
    /// The entry's identifier.
    pub job_run_identifier: String,
    /// 0 for the first attempt.
    pub retry: i32,
    /// The entry's `max_retries`.
    pub max_retries: i32,
    /// This run's id.
    pub run_id: RunId,
    /// The template's code.
    pub template: String,
    /// Set when the run was ended from outside (timeout, stop, removal, shutdown).
    pub cancellation: Cancellation,
}

impl JobContext {
    /// True once the run was ended from outside; the job should return soon.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled()
    }

    /// Deserializes the context into a typed value.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.context.clone())
            .map_err(|e| JobError::permanent(format!("context does not fit the job: {e}")))
    }
}

/// A cancellation flag that a job can poll or await.
#[derive(Clone, Default)]
pub struct Cancellation {
    inner: Arc<CancelInner>,
}

#[derive(Default)]
struct CancelInner {
    cancelled: AtomicBool,
    event: event_listener::Event,
}

impl fmt::Debug for Cancellation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cancellation")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Cancellation {
    /// A fresh, uncancelled flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag and wakes every waiter.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.event.notify(usize::MAX);
    }

    /// True once cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes when cancelled.
    pub async fn cancelled(&self) {
        loop {
            if self.is_cancelled() {
                return;
            }
            let listener = self.inner.event.listen();
            if self.is_cancelled() {
                return;
            }
            listener.await;
        }
    }
}

/// The error a job returns.
///
/// Any `std::error::Error`, `anyhow::Error` or message converts with `?` (see the
/// `From` impl); [`JobError::msg`] takes any message. Besides failures, a job may
/// [snooze](JobError::snooze) or [cancel](JobError::cancel) itself this way (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    message: String,
    kind: FailureKind,
}

impl JobError {
    /// A failure; the retry rule applies.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: FailureKind::Error,
        }
    }

    /// A failure that retrying cannot fix: the entry is deleted after this run.
    pub fn permanent(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            kind: FailureKind::Permanent,
        }
    }

    /// Not now: the run ends (`FAILED`, reason `Snoozed for N s`) and the entry is
    /// available again `delay` later, without spending one of its `max_retries`. A delay
    /// over [`crate::MAX_RUN_IN`] is cut to it.
    pub fn snooze(delay: std::time::Duration) -> Self {
        let delay = delay.min(crate::MAX_RUN_IN);
        Self {
            message: format!("Snoozed for {} s", delay.as_secs_f64()),
            kind: FailureKind::Snoozed(delay),
        }
    }

    /// The job gives up for good: the run ends `FAILED` with reason `Cancelled: <reason>`
    /// (`Cancelled` for an empty reason) and the entry is deleted, whatever its retries.
    pub fn cancel(reason: impl fmt::Display) -> Self {
        let reason = reason.to_string();
        Self {
            message: if reason.is_empty() {
                "Cancelled".to_owned()
            } else {
                format!("Cancelled: {reason}")
            },
            kind: FailureKind::Cancelled,
        }
    }

    /// The error of a run that ended with `kind` and `message`, as the job returned it
    /// (how a process-isolated job's outcome crosses to its parent). A kind that a job
    /// cannot return itself (`Timeout`, `Stopped`, ...) is an ordinary failure.
    pub fn from_parts(kind: FailureKind, message: impl fmt::Display) -> Self {
        let kind = match kind {
            FailureKind::Permanent | FailureKind::Snoozed(_) | FailureKind::Cancelled => kind,
            _ => FailureKind::Error,
        };
        Self {
            message: message.to_string(),
            kind,
        }
    }

    /// The message, stored as the run's reason.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the entry must not be retried.
    pub fn is_permanent(&self) -> bool {
        self.kind == FailureKind::Permanent
    }

    /// How the run ends: [`FailureKind::Error`] (the retry rule),
    /// [`FailureKind::Permanent`], [`FailureKind::Snoozed`] or
    /// [`FailureKind::Cancelled`].
    pub fn kind(&self) -> FailureKind {
        self.kind
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Anything that converts into a boxed error converts with `?`: every
/// `std::error::Error`, `anyhow::Error` and `eyre::Report` (without a dependency on
/// them), `String` and `&str`. The message is the error and its causes, joined by `": "`
/// (a cause whose text the message already holds is not repeated).
impl<E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>> From<E> for JobError {
    fn from(e: E) -> Self {
        Self::msg(chain(&*e.into()))
    }
}

/// An error's message followed by its causes' that it does not already hold.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut message = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = c.source();
    }
    message
}

/// Job types by name (e.g. `"email.send"`). A node claims only entries whose job type
/// it has registered.
#[derive(Clone, Default)]
pub struct JobRegistry {
    jobs: BTreeMap<String, Arc<dyn Job>>,
    /// The typed side: shared state and the templates declared from code (`worker.rs`).
    pub(crate) typed: crate::worker::Declared,
    isolated: BTreeMap<String, ProcessIsolation>,
}

/// How the runs of a process-isolated job type execute: each in a child process of the
/// node, ended with `SIGKILL` to its process group on timeout, stop, removal, expiry or
/// shutdown (see `bildad_runtime::isolation`). The limits apply to the child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessIsolation {
    /// The child's address-space limit in bytes (`RLIMIT_AS`); an allocation past it
    /// fails, which usually aborts the child.
    pub memory_limit_bytes: Option<u64>,
    /// The child's CPU-time limit in seconds (`RLIMIT_CPU`): past it the child gets
    /// `SIGXCPU`, a second later `SIGKILL`.
    pub cpu_limit_seconds: Option<u64>,
}

impl fmt::Debug for JobRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRegistry")
            .field("job_types", &self.jobs.keys().collect::<Vec<_>>())
            .field("isolated", &self.isolated)
            .finish()
    }
}

impl JobRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `job` under `name`, replacing an earlier one of that name.
    pub fn register(&mut self, name: impl Into<String>, job: impl Job) -> &mut Self {
        self.jobs.insert(name.into(), Arc::new(job));
        self
    }

    /// Builder form of [`JobRegistry::register`].
    pub fn with(mut self, name: impl Into<String>, job: impl Job) -> Self {
        self.register(name, job);
        self
    }

    /// The job registered under `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Job>> {
        self.jobs.get(name).cloned()
    }

    /// Marks the job type `name` process-isolated: its runs execute in a child process
    /// (see [`ProcessIsolation`]). The mark holds whether `name` is registered before or
    /// after.
    pub fn isolate(&mut self, name: impl Into<String>, isolation: ProcessIsolation) -> &mut Self {
        self.isolated.insert(name.into(), isolation);
        self
    }

    /// How the job type `name` is isolated; `None` when it runs in process.
    pub fn isolation(&self, name: &str) -> Option<ProcessIsolation> {
        self.isolated.get(name).copied()
    }

    /// The registered names, sorted.
    pub fn job_types(&self) -> Vec<String> {
        self.jobs.keys().cloned().collect()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancellation_wakes_waiters() {
        let c = Cancellation::new();
        let c2 = c.clone();
        let t = std::thread::spawn(move || futures::executor::block_on(c2.cancelled()));
        c.cancel();
        t.join().unwrap();
        assert!(c.is_cancelled());
    }

    #[test]
    fn registry_lists_sorted_names() {
        async fn noop(_: JobContext) -> Result<Option<Value>, JobError> {
            Ok(None)
        }
        let r = JobRegistry::new().with("b", noop).with("a", noop);
        assert_eq!(r.job_types(), vec!["a", "b"]);
        assert!(r.get("a").is_some());
        assert!(r.get("c").is_none());
    }

    #[test]
    fn errors_convert_and_keep_messages() {
        let e: JobError = std::io::Error::other("disk full").into();
        assert_eq!(e.message(), "disk full");
        assert!(!e.is_permanent());
        assert!(JobError::permanent("no").is_permanent());
    }
}
