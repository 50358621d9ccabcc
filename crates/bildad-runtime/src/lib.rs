//! Bildad's runtime: the engine, the job killer and the tokio executor (SPEC §1–§2).
//!
//! **Architecture invariant:** the runtime never writes SQL and never speaks HTTP; it
//! talks to the database only through `Arc<dyn JobStore>`.

mod engine;

pub use engine::{Counts, Engine, EngineReport, NodeRuntime};
