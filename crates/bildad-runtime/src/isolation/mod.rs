//! Process isolation: the runs of a job type marked with
//! [`JobRegistry::isolate`](bildad_core::JobRegistry::isolate) execute in a child
//! process, so that a timeout, a stop, a removal, an expiry or a shutdown ends them with
//! `SIGKILL` — even a job stuck in a CPU loop, a blocking call or a C library, which a
//! tokio task cannot be stopped from (docs/RUNTIME.md).
//!
//! - **The child** is the same program, started again (`/proc/self/exe`) with a marker.
//!   The program must call [`child_main`] first thing in `main`, with the registry of its
//!   job types: in a child it runs the one job it was started for and exits; anywhere
//!   else it returns at once.
//! - **The run** goes to the child as one JSON line on its stdin, the outcome comes back
//!   as one JSON line on its stdout (the job's own prints to stdout go to stderr). The
//!   rest of the lifecycle is the node's: the same claim, the same guarded finalize, the
//!   same history.
//! - **Killing**: the child leads its own process group; when its run is ended from
//!   outside, the group gets `SIGKILL`, the child is reaped, and only then does the run's
//!   slot free. The run's reason then says so: `Timeout (killed)`, `Stopped (killed)`.
//! - **A child that dies by itself** (a signal, an exit without an outcome, a resource
//!   limit) fails the run with a reason naming the signal or the status; the retry rule
//!   applies.
//! - **A parent that dies** takes its children with it: each child watches its parent
//!   (a pidfd) and kills its own process group when the parent is gone.
//!
//! Linux only: elsewhere an isolated run fails with a permanent error saying so.
//!
//! ```no_run
//! use bildad_core::{JobContext, JobError, JobRegistry, ProcessIsolation};
//! use serde_json::Value;
//!
//! async fn crunch(_ctx: JobContext) -> Result<Option<Value>, JobError> {
//!     // CPU-bound work that never awaits: only a process boundary can stop it.
//!     Ok(None)
//! }
//!
//! fn registry() -> JobRegistry {
//!     let mut r = JobRegistry::new();
//!     r.register("report.crunch", crunch).isolate(
//!         "report.crunch",
//!         ProcessIsolation { memory_limit_bytes: Some(1 << 30), cpu_limit_seconds: Some(600) },
//!     );
//!     r
//! }
//!
//! fn main() {
//!     // In a child this runs the job and exits; in the application it returns at once.
//!     bildad_runtime::isolation::child_main(registry);
//!     // ... start the tokio runtime, the store and `NodeRuntime::start(store, registry(), config)`
//! }
//! ```

#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
mod parent;
#[cfg(target_os = "linux")]
mod protocol;

use bildad_core::{JobRegistry, JobStore};
use std::sync::Arc;

/// Call this first thing in `main`, before any thread or runtime starts, with the
/// function that builds the application's job registry. In a process started to run an
/// isolated job it runs that job, reports its outcome to the parent and exits (it never
/// returns); in any other process it returns at once.
pub fn child_main(registry: impl FnOnce() -> JobRegistry) {
    #[cfg(target_os = "linux")]
    if let Some(parent) = child::parent_pid() {
        child::run(parent, registry);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

/// `registry` with each job type marked process-isolated replaced, in this process, by
/// the job that runs it in a child. The engine calls it; the child keeps the originals.
pub(crate) fn wrap(mut registry: JobRegistry, store: &Arc<dyn JobStore>) -> JobRegistry {
    for name in registry.job_types() {
        let Some(limits) = registry.isolation(&name) else {
            continue;
        };
        #[cfg(target_os = "linux")]
        registry.register(
            name.clone(),
            parent::IsolatedJob {
                job_type: name.clone(),
                limits,
                store: store.clone(),
            },
        );
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (limits, store);
            registry.register(name.clone(), unsupported);
        }
    }
    registry
}

#[cfg(not(target_os = "linux"))]
async fn unsupported(
    _: bildad_core::JobContext,
) -> Result<Option<serde_json::Value>, bildad_core::JobError> {
    Err(bildad_core::JobError::permanent(
        "process isolation is supported on Linux only",
    ))
}
