//! Bildad's runtime: the engine, the job killer and the tokio executor (SPEC §1–§2).
//!
//! **Architecture invariant:** the runtime never writes SQL and never speaks HTTP; it
//! talks to the database only through `Arc<dyn JobStore>`.
//!
//! - [`NodeRuntime::start`] starts one node: a new instance id, its [`TokioExecutor`],
//!   its [`JobKiller`], its [`Scheduler`] (periodic jobs, SPEC §9) and, when configured,
//!   an engine ticker.
//! - [`Engine::run_once`] is one engine pass (what `POST /jobs/engine/run` does);
//!   [`Engine::run_until_idle`] keeps claiming while work is available.
//! - Killing is cooperative: an aborted job stops at its next `.await`. A job with long
//!   blocking sections must check [`bildad_core::JobContext::is_cancelled`] or run them
//!   in `tokio::task::spawn_blocking` (see `docs/RUNTIME.md`) — or be marked
//!   process-isolated ([`isolation`]): its runs then execute in a child process that is
//!   killed with `SIGKILL`.

mod engine;
mod executor;
pub mod isolation;
mod killer;
pub mod metrics;
mod node;
mod pacing;
mod queues;
mod scheduler;
mod trace;

pub use engine::{Counts, Engine, EngineReport};
pub use executor::TokioExecutor;
pub use killer::{JobKiller, KillReport};
pub use node::{NodeRuntime, SHUTDOWN_FINALIZE_BOUND};
pub use pacing::EXPIRY_CHECK_EVERY;
pub use scheduler::Scheduler;
