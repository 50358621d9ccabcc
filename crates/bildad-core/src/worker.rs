//! Typed workers (SPEC §7): a job type written against its arguments' Rust type, with the
//! application's shared state reached through the registry.
//!
//! Three forms register with [`JobRegistry::worker`], all under [`JobArgs::KIND`]:
//!
//! - an `async fn` or closure `(A, RunInfo) -> Result<O, JobError>`;
//! - an `async fn` or closure `(A, RunInfo, State<S>) -> Result<O, JobError>`, where `S`
//!   was given to the registry with [`JobRegistry::with_state`] (as axum's `State`);
//! - a struct implementing [`Worker<A>`], which may hold its own state.
//!
//! Each becomes an untyped [`Job`]: the context is decoded into `A` (a context that does
//! not decode fails the run permanently, with the reason), and the output `O` (any
//! `Serialize` value; `()` stores none) is encoded as the run's output. Registering also
//! declares the job type's template ([`crate::declare`]), which the node creates or
//! updates at start.

use crate::declare::DeclaredTemplate;
use crate::job::{Cancellation, Job, JobContext, JobError, JobRegistry};
use crate::model::RunId;
use crate::typed::JobArgs;
use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;
use std::any::{Any, TypeId, type_name};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// What a typed worker knows about the run it works on: [`JobContext`] without the
/// (already decoded) context.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// This run's id.
    pub run_id: RunId,
    /// The entry's identifier.
    pub job_run_identifier: String,
    /// 0 for the first attempt.
    pub retry: i32,
    /// The entry's `max_retries`.
    pub max_retries: i32,
    /// The template's code.
    pub template: String,
    /// Set when the run was ended from outside (timeout, stop, removal, shutdown).
    pub cancellation: Cancellation,
}

impl RunInfo {
    /// True once the run was ended from outside; the worker should return soon.
    pub fn is_cancelled(&self) -> bool {
        self.cancellation.is_cancelled()
    }

    /// True on the entry's last allowed attempt (`retry == max_retries`).
    pub fn is_last_attempt(&self) -> bool {
        self.retry >= self.max_retries
    }

    /// Splits a job's context into its JSON context and the rest.
    pub fn split(ctx: JobContext) -> (Value, Self) {
        let info = Self {
            run_id: ctx.run_id,
            job_run_identifier: ctx.job_run_identifier,
            retry: ctx.retry,
            max_retries: ctx.max_retries,
            template: ctx.template,
            cancellation: ctx.cancellation,
        };
        (ctx.context, info)
    }
}

/// A typed worker: the code that runs entries of `A`'s job type.
///
/// Implement it on a struct that holds what the work needs (a pool, a mailer); a plain
/// `async fn (A, RunInfo) -> Result<O, JobError>` implements it already.
///
/// ```
/// use bildad_core::{JobArgs, JobError, JobRegistry, RunInfo, Worker};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct Welcome { email: String }
/// impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
///
/// struct Mailer { from: String }
///
/// #[bildad_core::async_trait]
/// impl Worker<Welcome> for Mailer {
///     type Output = ();
///     async fn work(&self, args: Welcome, _run: RunInfo) -> Result<(), JobError> {
///         println!("mail from {} to {}", self.from, args.email);
///         Ok(())
///     }
/// }
///
/// let registry = JobRegistry::new().with_worker(Mailer { from: "hi@example.com".into() });
/// assert_eq!(registry.job_types(), ["welcome"]);
/// ```
#[async_trait]
pub trait Worker<A: JobArgs>: Send + Sync + 'static {
    /// What a successful run stores as its output (`()`: none).
    type Output: Serialize + Send;

    /// Works on one attempt. `Err` fails the run and the retry rule applies, unless the
    /// error is [`JobError::permanent`].
    async fn work(&self, args: A, run: RunInfo) -> Result<Self::Output, JobError>;
}

#[async_trait]
impl<A, F, Fut, O> Worker<A> for F
where
    A: JobArgs,
    F: Fn(A, RunInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, JobError>> + Send + 'static,
    O: Serialize + Send,
{
    type Output = O;

    async fn work(&self, args: A, run: RunInfo) -> Result<O, JobError> {
        (self)(args, run).await
    }
}

/// The application's shared state of type `S`, given to the registry with
/// [`JobRegistry::with_state`] and received by a worker function as its third argument.
#[derive(Debug, Clone, Copy, Default)]
pub struct State<S>(pub S);

/// Anything [`JobRegistry::worker`] accepts for job arguments `A`. `M` only tells the
/// forms apart (it is inferred): [`Worker`]s, and functions taking a [`State`].
pub trait IntoWorker<A: JobArgs, M>: Send + Sync + 'static {
    /// The untyped job that decodes `A` and runs this worker.
    #[doc(hidden)]
    fn into_job(self, registry: &JobRegistry) -> Arc<dyn Job>;
}

/// The [`IntoWorker`] form of a [`Worker`] (and so of `async fn (A, RunInfo)`).
#[doc(hidden)]
pub enum Plain {}

/// The [`IntoWorker`] form of an `async fn (A, RunInfo, State<S>)`.
#[doc(hidden)]
pub struct WithState<S>(PhantomData<S>);

impl<A: JobArgs, W: Worker<A>> IntoWorker<A, Plain> for W {
    fn into_job(self, _: &JobRegistry) -> Arc<dyn Job> {
        Arc::new(Typed::<A, W>(self, PhantomData))
    }
}

impl<A, S, F, Fut, O> IntoWorker<A, WithState<S>> for F
where
    A: JobArgs,
    S: Clone + Send + Sync + 'static,
    F: Fn(A, RunInfo, State<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, JobError>> + Send + 'static,
    O: Serialize + Send,
{
    fn into_job(self, registry: &JobRegistry) -> Arc<dyn Job> {
        let Some(state) = registry.state::<S>() else {
            panic!(
                "the worker for {:?} needs State<{}>: give it to the registry with \
                 JobRegistry::with_state before registering the worker",
                A::KIND,
                type_name::<S>()
            );
        };
        let bound = move |args: A, run: RunInfo| self(args, run, State(state.clone()));
        Arc::new(Typed::<A, _>(bound, PhantomData))
    }
}

/// A typed worker as an untyped job.
struct Typed<A, W>(W, PhantomData<fn() -> A>);

#[async_trait]
impl<A: JobArgs, W: Worker<A>> Job for Typed<A, W> {
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        let (context, run) = RunInfo::split(ctx);
        let args = decode::<A>(context)?;
        let output = self.0.work(args, run).await?;
        encode_output(&output)
    }
}

/// Decodes a context into `A`; failing that, a permanent error naming the type.
pub fn decode<A: JobArgs>(context: Value) -> Result<A, JobError> {
    serde_json::from_value(context).map_err(|e| {
        JobError::permanent(format!(
            "the context does not decode into the arguments of {:?} ({}): {e}",
            A::KIND,
            type_name::<A>()
        ))
    })
}

/// A worker's output as the run's output: `None` for `()` (JSON null).
fn encode_output<O: Serialize>(output: &O) -> Result<Option<Value>, JobError> {
    match serde_json::to_value(output) {
        Ok(Value::Null) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => Err(JobError::permanent(format!(
            "the worker's output does not encode as JSON: {e}"
        ))),
    }
}

/// The typed side of a registry: shared states by type, templates declared from code.
#[derive(Clone, Default)]
pub(crate) struct Declared {
    states: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    pub(crate) templates: BTreeMap<String, DeclaredTemplate>,
    /// Schedules declared from code (`periodic.rs`).
    pub(crate) schedules: BTreeMap<String, crate::NewSchedule>,
}

impl JobRegistry {
    /// Gives the registry a shared state of type `S` (one per type; a second call
    /// replaces it), received by worker functions that take a [`State<S>`]. Give it
    /// before registering those workers.
    pub fn with_state<S: Clone + Send + Sync + 'static>(mut self, state: S) -> Self {
        self.typed.states.insert(TypeId::of::<S>(), Arc::new(state));
        self
    }

    /// The shared state of type `S`, when one was given.
    pub fn state<S: Clone + Send + Sync + 'static>(&self) -> Option<S> {
        self.typed
            .states
            .get(&TypeId::of::<S>())
            .and_then(|s| s.downcast_ref::<S>())
            .cloned()
    }

    /// Registers a typed worker under `A::KIND` and declares its template
    /// ([`DeclaredTemplate::of`]): the node creates or updates it at start.
    ///
    /// ```
    /// use bildad_core::{JobArgs, JobError, JobRegistry, RunInfo, State};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    /// struct Welcome { email: String }
    /// impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    ///
    /// #[derive(Clone)]
    /// struct AppState { sender: String }
    ///
    /// async fn welcome(args: Welcome, run: RunInfo, State(app): State<AppState>) -> Result<String, JobError> {
    ///     Ok(format!("{} greets {} (attempt {})", app.sender, args.email, run.retry))
    /// }
    ///
    /// let mut registry = JobRegistry::new().with_state(AppState { sender: "bildad".into() });
    /// registry.worker(welcome);
    /// assert_eq!(registry.declared_templates()[0].template.code, "welcome");
    /// ```
    ///
    /// # Panics
    /// When the worker takes a [`State<S>`] and no `S` was given with
    /// [`JobRegistry::with_state`]: a mistake in the program's setup, found when it
    /// builds its registry.
    pub fn worker<A: JobArgs, M>(&mut self, worker: impl IntoWorker<A, M>) -> &mut Self {
        let job = worker.into_job(self);
        self.register(A::KIND, ArcJob(job));
        self.declare(DeclaredTemplate::of::<A>())
    }

    /// Builder form of [`JobRegistry::worker`].
    pub fn with_worker<A: JobArgs, M>(mut self, worker: impl IntoWorker<A, M>) -> Self {
        self.worker(worker);
        self
    }
}

/// An already shared job, registered as it is.
struct ArcJob(Arc<dyn Job>);

#[async_trait]
impl Job for ArcJob {
    async fn run(&self, ctx: JobContext) -> Result<Option<Value>, JobError> {
        self.0.run(ctx).await
    }
}
