//! Bildad: durable background jobs for web applications whose nodes share one SQL
//! database. No broker, no gossip, no leader: every piece of coordination goes through
//! the database.
//!
//! This facade re-exports the crates a user needs, behind features:
//!
//! | feature | brings |
//! |---|---|
//! | (always) | [`core`] (model, `JobStore`, `Job`, `JobRegistry`), [`runtime`] (`Engine`, `NodeRuntime`), [`demo`] |
//! | `postgres`, `sqlite` | [`store`]: `bildad_store_diesel` (`connect(url)`, `migrate(url)`) |
//! | `http` | [`http`]: the axum router of the REST API |
//! | `dashboard` | the HTML dashboard at `/jobs/dashboard` in that router (on by default) |
//!
//! The most used names are at the top level: [`Job`], [`JobRegistry`], [`JobContext`],
//! [`JobError`], [`JobStore`], [`NewEntry`], [`NewTemplate`], [`NodeConfig`],
//! [`Engine`], [`NodeRuntime`].

pub use bildad_core as core;
pub use bildad_runtime as runtime;

#[cfg(feature = "http")]
pub use bildad_http as http;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use bildad_store_diesel as store;

pub use bildad_core::{
    Job, JobContext, JobError, JobRegistry, JobStore, NewEntry, NewTemplate, NodeConfig, StoreError,
};
pub use bildad_runtime::{Engine, EngineReport, NodeRuntime, isolation};

pub mod demo;
