//! Test helpers for applications (feature `testing`), as `Oban.Testing` and `rivertest`:
//!
//! - [`work`] runs a registered worker on given arguments, with no database, and returns
//!   its outcome;
//! - [`assert_enqueued`], [`assert_enqueued_where`], [`assert_not_enqueued`] and
//!   [`enqueued`] check what a piece of code enqueued, typed;
//! - [`drain`] runs everything enqueued so far on this process until nothing is left to
//!   start (on [`MemoryStore`](crate::core::MemoryStore) or any store), with no polling
//!   loop and no sleep in the test.
//!
//! ```
//! use bildad::testing::{assert_enqueued, drain, work};
//! use bildad::{JobArgs, JobError, JobRegistry, JobStore, Jobs, MemoryStore, RunInfo, State};
//! use serde::{Deserialize, Serialize};
//! use std::sync::Arc;
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
//! struct Welcome { email: String }
//! impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
//!
//! async fn welcome(args: Welcome, _: RunInfo, State(from): State<&'static str>) -> Result<String, JobError> {
//!     Ok(format!("mail from {from} to {}", args.email))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let registry = JobRegistry::new().with_state("hi@example.com").with_worker(welcome);
//!
//! // The worker alone, no database.
//! let out = work(&registry, Welcome { email: "ann@example.com".into() }).await;
//! assert_eq!(out, Ok(Some("mail from hi@example.com to ann@example.com".into())));
//!
//! // What the application enqueued, then everything run.
//! let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
//! registry.ensure_templates(&*store).await.unwrap();
//! Jobs::new(store.clone()).enqueue(Welcome { email: "bob@example.com".into() }).await.unwrap();
//! let args: Welcome = assert_enqueued(&*store).await;
//! assert_eq!(args.email, "bob@example.com");
//! let runs = drain(&store, &registry).await.unwrap();
//! assert_eq!(runs[0].output, Some("mail from hi@example.com to bob@example.com".into()));
//! # }
//! ```

use crate::core::validation::{compile_schema, validate_context};
use crate::core::{
    Backoff, Cancellation, EntryFilter, JobArgs, JobContext, JobError, JobRegistry, JobRun,
    JobStore, NodeConfig, NodeRef, PageRequest, QueueEntry, RunFilter, RunInfo, StoreError,
    new_identifier,
};
use crate::runtime::Engine;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// The run a test's worker is given by [`work`]: a new identifier, run id 1, the first
/// of four attempts, not cancelled. Change its fields for [`work_as`].
pub fn run_info<A: JobArgs>() -> RunInfo {
    RunInfo {
        run_id: 1,
        job_run_identifier: new_identifier(),
        retry: 0,
        max_retries: crate::core::DEFAULT_MAX_RETRIES,
        template: A::KIND.to_owned(),
        cancellation: Cancellation::new(),
    }
}

/// Runs the worker registered for `A` on `args` as its first attempt, with no database,
/// and returns what the run would record: `Ok(output)` or the error. As at a real start,
/// arguments that do not satisfy the declared template's schema fail permanently.
///
/// # Panics
/// When no worker is registered for `A::KIND`.
pub async fn work<A: JobArgs>(registry: &JobRegistry, args: A) -> Result<Option<Value>, JobError> {
    work_as(registry, args, run_info::<A>()).await
}

/// [`work`] with the run's metadata given, e.g. a later retry or a cancelled run.
pub async fn work_as<A: JobArgs>(
    registry: &JobRegistry,
    args: A,
    run: RunInfo,
) -> Result<Option<Value>, JobError> {
    let job = registry.get(A::KIND).unwrap_or_else(|| {
        panic!(
            "no worker registered for {:?}; registered: {:?}",
            A::KIND,
            registry.job_types()
        )
    });
    let context = serde_json::to_value(&args)
        .map_err(|e| JobError::permanent(format!("the arguments do not encode: {e}")))?;
    if let Some(declared) = registry
        .declared_templates()
        .into_iter()
        .find(|d| d.template.code == A::KIND)
    {
        let validator = compile_schema(&declared.template.context_schema)
            .map_err(|v| JobError::permanent(format!("the schema is unusable: {v:?}")))?;
        let violations = validate_context(&validator, &context);
        if !violations.is_empty() {
            return Err(JobError::permanent(format!(
                "context does not satisfy the template's schema: {violations:?}"
            )));
        }
    }
    job.run(JobContext {
        context,
        job_run_identifier: run.job_run_identifier,
        retry: run.retry,
        max_retries: run.max_retries,
        run_id: run.run_id,
        template: run.template,
        cancellation: run.cancellation,
    })
    .await
}

/// The entries of `A`'s job type in `store`, in run order, with their decoded arguments.
///
/// # Panics
/// When the store fails, or an entry's context does not decode into `A`.
pub async fn enqueued<A: JobArgs>(store: &dyn JobStore) -> Vec<(QueueEntry, A)> {
    let filter = EntryFilter {
        template: Some(A::KIND.to_owned()),
        ..EntryFilter::default()
    };
    let mut out = Vec::new();
    for page in 0.. {
        let p = store
            .list_entries_where(filter.clone(), max_page(page).expect("a valid page"))
            .await
            .expect("listing the entries");
        let last = (p.items.len() as u32) < PageRequest::MAX_LIMIT;
        for e in p.items {
            let args = serde_json::from_value(e.context.clone()).unwrap_or_else(|err| {
                panic!(
                    "entry {:?} does not decode into {:?}: {err}",
                    e.job_run_identifier,
                    A::KIND
                )
            });
            out.push((e, args));
        }
        if last {
            break;
        }
    }
    out
}

/// The arguments of the first entry of `A`'s job type in `store`.
///
/// # Panics
/// When there is none (the message lists what was enqueued).
pub async fn assert_enqueued<A: JobArgs>(store: &dyn JobStore) -> A {
    assert_enqueued_where(store, |_: &A| true).await
}

/// The arguments of the first entry of `A`'s job type in `store` that `matches`.
///
/// # Panics
/// When there is none (the message lists the entries of that type).
pub async fn assert_enqueued_where<A: JobArgs>(
    store: &dyn JobStore,
    matches: impl Fn(&A) -> bool,
) -> A {
    let all = enqueued::<A>(store).await;
    let contexts: Vec<Value> = all.iter().map(|(e, _)| e.context.clone()).collect();
    all.into_iter()
        .map(|(_, a)| a)
        .find(|a| matches(a))
        .unwrap_or_else(|| {
            panic!(
                "no matching {:?} job was enqueued; entries of that type: {contexts:?}",
                A::KIND
            )
        })
}

/// Asserts that no entry of `A`'s job type is in `store`.
///
/// # Panics
/// When there is one (the message lists them).
pub async fn assert_not_enqueued<A: JobArgs>(store: &dyn JobStore) {
    let all = enqueued::<A>(store).await;
    let contexts: Vec<&Value> = all.iter().map(|(e, _)| &e.context).collect();
    assert!(
        contexts.is_empty(),
        "expected no {:?} job, found: {contexts:?}",
        A::KIND
    );
}

/// Runs everything enqueued in `store` that is due, with the workers of `registry`, on
/// this process, until nothing is left to start: entries that jobs enqueue meanwhile,
/// and retries (at once, no backoff), run as well; entries whose `run_at` is later stay.
/// Creates the registry's declared templates first. Returns the runs this drain made,
/// oldest first (their `result`, `reason` and `output`).
///
/// Waits on the executor, never on the clock: it returns once every started job has
/// ended and its outcome is recorded.
///
/// # Panics
/// Outside a tokio runtime.
pub async fn drain(
    store: &Arc<dyn JobStore>,
    registry: &JobRegistry,
) -> Result<Vec<JobRun>, StoreError> {
    registry.ensure_templates(&**store).await?;
    let before = newest_run(&**store).await?;
    let config = NodeConfig {
        node_name: "bildad-testing".into(),
        backoff: Backoff::immediate(),
        ..NodeConfig::default()
    };
    let node = NodeRef::new(config.node_name.clone());
    let (engine, executor) =
        Engine::with_tokio_executor(store.clone(), registry.clone(), config, node);
    loop {
        let report = engine.run_until_idle().await?;
        // Bounded only so that a hung job fails the test instead of hanging it.
        assert!(
            executor.wait_idle(Duration::from_secs(600)).await,
            "jobs still running after 600 s"
        );
        if report.start.ok_count + report.start.error_count == 0 {
            break;
        }
    }
    engine.close().await;
    runs_after(&**store, before).await
}

async fn newest_run(store: &dyn JobStore) -> Result<i64, StoreError> {
    let p = store
        .list_runs(RunFilter::default(), PageRequest::new(0, 1)?)
        .await?;
    Ok(p.items.first().map_or(0, |r| r.id))
}

/// The runs with an id above `after`, oldest first.
async fn runs_after(store: &dyn JobStore, after: i64) -> Result<Vec<JobRun>, StoreError> {
    let mut out = Vec::new();
    for page in 0.. {
        let p = store
            .list_runs(RunFilter::default(), max_page(page)?)
            .await?;
        let last = (p.items.len() as u32) < PageRequest::MAX_LIMIT;
        out.extend(p.items.into_iter().filter(|r| r.id > after));
        if last {
            break;
        }
    }
    out.sort_by_key(|r| r.id);
    Ok(out)
}

fn max_page(page: u32) -> Result<PageRequest, StoreError> {
    PageRequest::new(page, PageRequest::MAX_LIMIT)
}
