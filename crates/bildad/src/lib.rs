//! Bildad: durable background jobs for web applications whose nodes share one SQL
//! database. No broker, no gossip, no leader: every piece of coordination goes through
//! the database.
//!
//! This facade re-exports the crates a user needs, behind features:
//!
//! | feature | brings |
//! |---|---|
//! | (always) | [`core`] (model, `JobStore`, typed jobs, `Job`, `JobRegistry`), [`runtime`] (`Engine`, `NodeRuntime`), [`demo`] |
//! | `postgres`, `sqlite` | [`store`]: `bildad_store_diesel` (`connect(url)`, `migrate(url)`) |
//! | `http` | [`http`]: the axum router of the REST API |
//! | `dashboard` | the HTML dashboard at `/jobs/dashboard` in that router (on by default) |
//! | `testing` | [`testing`]: run a worker without a database, assert what was enqueued, drain the queue (on by default) |
//!
//! The most used names are at the top level. Typed jobs (SPEC §7, docs/JOBS.md):
//! [`JobArgs`] (the arguments, naming their job type once), [`Worker`], [`RunInfo`] and
//! [`State`] (what a worker receives), [`JobRegistry::worker`], [`Jobs`] (typed enqueue)
//! with [`EnqueueOptions`], [`JobError`] (anything boxable, `anyhow::Error` included,
//! converts with `?`) and [`async_trait`]. Untyped: [`Job`], [`JobContext`],
//! [`NewEntry`], [`NewTemplate`]. Running: [`JobStore`], [`NodeConfig`], [`Engine`],
//! [`NodeRuntime`].
//!
//! # A typed job, end to end
//!
//! ```
//! use bildad::{JobArgs, JobError, JobRegistry, JobStore, Jobs, NodeConfig, NodeRuntime, RunInfo, State};
//! use serde::{Deserialize, Serialize};
//! use std::sync::Arc;
//!
//! /// The arguments; `KIND` is the job type and the code of its template, whose
//! /// schema is derived from the type.
//! #[derive(Serialize, Deserialize, schemars::JsonSchema)]
//! struct Welcome { email: String }
//! impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
//!
//! /// The application's shared state (a pool, a mailer).
//! #[derive(Clone)]
//! struct App { sender: &'static str }
//!
//! async fn welcome(args: Welcome, run: RunInfo, State(app): State<App>) -> Result<(), JobError> {
//!     println!("{} welcomes {} (attempt {})", app.sender, args.email, run.retry + 1);
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bildad::StoreError> {
//! // In an application: bildad::store::connect(&database_url).await?
//! let store: Arc<dyn JobStore> = Arc::new(bildad::MemoryStore::new());
//! let registry = JobRegistry::new()
//!     .with_state(App { sender: "hello@example.com" })
//!     .with_worker(welcome);
//! // Creates or updates the template "welcome", then runs the node.
//! let node = NodeRuntime::start(store.clone(), registry, NodeConfig::default()).await?;
//!
//! let jobs = Jobs::new(store.clone());
//! let entry = jobs.enqueue(Welcome { email: "ann@example.com".into() }).await?;
//! assert_eq!(entry.template, "welcome");
//! node.engine().run_until_idle().await?;
//! node.shutdown(std::time::Duration::from_secs(5)).await;
//! # Ok(())
//! # }
//! ```

pub use bildad_core as core;
pub use bildad_runtime as runtime;

#[cfg(feature = "http")]
pub use bildad_http as http;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
pub use bildad_store_diesel as store;

pub use bildad_core::{
    DeclaredTemplate, EnqueueOptions, Job, JobArgs, JobContext, JobDefaults, JobError, JobRegistry,
    JobStore, Jobs, MemoryStore, NewEntry, NewTemplate, NodeConfig, RunInfo, State, StoreError,
    Worker, async_trait,
};
pub use bildad_runtime::{Engine, EngineReport, NodeRuntime, isolation};

pub mod demo;
#[cfg(feature = "testing")]
pub mod testing;
