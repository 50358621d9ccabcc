//! Bildad's core: the domain model, the storage contract (`JobStore`), jobs and their
//! registry, the executor contract, context validation, and node configuration.
//!
//! **Architecture invariant:** this crate knows nothing of diesel, tokio or axum. A
//! custom storage backend depends on this crate alone.

pub mod backoff;
pub mod config;
pub mod declare;
pub mod depth;
pub mod error;
pub mod executor;
pub mod fate;
pub mod firing;
pub mod input;
pub mod job;
pub mod jobs;
pub mod lifecycle;
#[cfg(feature = "memory")]
pub mod memory;
pub mod model;
pub mod periodic;
pub mod queues;
pub mod schedule;
pub mod store;
pub mod trace_context;
pub mod typed;
pub mod unique;
pub mod validation;
pub mod worker;

pub use async_trait::async_trait;
pub use backoff::Backoff;
pub use config::NodeConfig;
pub use declare::{DeclaredTemplate, EnsuredTemplates};
pub use depth::{DepthPart, QueueDepth, merge_depths};
pub use error::{DbFailure, ErrorKind, StoreError, StoreResult, Violation};
pub use executor::JobExecutor;
pub use fate::{
    EntryAction, HARD_KILL_REASONS, KILLED_SUFFIX, NUL_ESCAPE, RetryState, RunEnd, entry_action,
    escape_nul, escape_nul_json, killed_reason,
};
pub use input::*;
pub use job::{Cancellation, Job, JobContext, JobError, JobRegistry, ProcessIsolation};
pub use jobs::Jobs;
pub use lifecycle::*;
#[cfg(feature = "memory")]
pub use memory::MemoryStore;
pub use model::*;
pub use periodic::EnsuredSchedules;
pub use queues::{
    QueueInfo, QueuePatch, QueueSettings, RateLimit, check_queue_name, claim_room, serves,
};
pub use schedule::{
    EvaluateSchedules, Fired, NewSchedule, Schedule, ScheduleEvaluation, ScheduleOptions,
    SchedulePatch,
};
pub use store::{EnqueueListener, JobStore, LocalEnqueueSignal};
pub use trace_context::{MAX_TRACE_CONTEXT_BYTES, Traceparent};
pub use typed::{EnqueueOptions, JobArgs, JobDefaults};
pub use unique::{MAX_UNIQUE_FOR_SECONDS, unique_key};
pub use validation::SchemaCache;
pub use worker::{IntoWorker, RunInfo, State, Worker};
