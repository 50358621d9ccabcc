//! `Jobs`: typed enqueue over any store (SPEC §7). Each call becomes [`NewEntry::typed`]
//! and one [`JobStore::enqueue`] or [`JobStore::enqueue_many`]: the same checks and
//! errors as an enqueue over HTTP, and no extra round trip.

use crate::NewEntry;
use crate::error::StoreError;
use crate::model::QueueEntry;
use crate::store::JobStore;
use crate::typed::{EnqueueOptions, JobArgs};
use std::sync::Arc;

/// A handle for typed enqueues. Cheap to clone; keep one in the application's state.
///
/// ```
/// use bildad_core::{EnqueueOptions, JobArgs, Jobs, JobRegistry, JobStore, MemoryStore, RunInfo};
/// use serde::{Deserialize, Serialize};
/// use std::sync::Arc;
///
/// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
/// struct Welcome { email: String }
/// impl JobArgs for Welcome { const KIND: &'static str = "welcome"; }
///
/// # futures::executor::block_on(async {
/// let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
/// let registry = JobRegistry::new().with_worker(|_: Welcome, _: RunInfo| async { Ok(()) });
/// registry.ensure_templates(&*store).await?; // NodeRuntime::start does this
///
/// let jobs = Jobs::new(store);
/// let entry = jobs.enqueue(Welcome { email: "ann@example.com".into() }).await?;
/// assert_eq!(entry.template, "welcome");
/// let again = EnqueueOptions::default().identifier("welcome-ann").priority(1);
/// jobs.enqueue_with(Welcome { email: "ann@example.com".into() }, again).await?;
/// jobs.enqueue_many((0..3).map(|i| Welcome { email: format!("{i}@example.com") })).await?;
/// # Ok::<(), bildad_core::StoreError>(())
/// # }).unwrap();
/// ```
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn JobStore>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs").finish_non_exhaustive()
    }
}

impl From<Arc<dyn JobStore>> for Jobs {
    fn from(store: Arc<dyn JobStore>) -> Self {
        Self::new(store)
    }
}

impl Jobs {
    /// Typed enqueues into `store`.
    pub fn new(store: Arc<dyn JobStore>) -> Self {
        Self { store }
    }

    /// The store it enqueues into.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.store
    }

    /// Enqueues `args` with the job type's defaults. The errors of
    /// [`JobStore::enqueue`]: `Invalid` (at `/template` when there is no template
    /// `A::KIND`: was a node started with its worker?), `Conflict`.
    pub async fn enqueue<A: JobArgs>(&self, args: A) -> Result<QueueEntry, StoreError> {
        self.enqueue_with(args, EnqueueOptions::default()).await
    }

    /// Enqueues `args` with `options` (identifier, priority, `run_at` or `run_in`,
    /// retries, timeout).
    pub async fn enqueue_with<A: JobArgs>(
        &self,
        args: A,
        options: EnqueueOptions,
    ) -> Result<QueueEntry, StoreError> {
        self.store.enqueue(NewEntry::typed(&args, options)?).await
    }

    /// Enqueues every item with the job type's defaults, in one round trip, all or
    /// nothing (violations point at `/<index>/…`).
    pub async fn enqueue_many<A: JobArgs>(
        &self,
        args: impl IntoIterator<Item = A>,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        self.enqueue_many_with(args.into_iter().map(|a| (a, EnqueueOptions::default())))
            .await
    }

    /// Enqueues every item with its options, in one round trip, all or nothing.
    pub async fn enqueue_many_with<A: JobArgs>(
        &self,
        items: impl IntoIterator<Item = (A, EnqueueOptions)>,
    ) -> Result<Vec<QueueEntry>, StoreError> {
        self.store.enqueue_many(typed_entries(items)?).await
    }
}

/// The entries of a typed batch; an item that does not serialize is `Invalid` at
/// `/<index>/context`, as a store reports a batch's violations.
pub fn typed_entries<A: JobArgs>(
    items: impl IntoIterator<Item = (A, EnqueueOptions)>,
) -> Result<Vec<NewEntry>, StoreError> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, (args, options))| {
            NewEntry::typed(&args, options).map_err(|e| match e {
                StoreError::Invalid(v) => StoreError::Invalid(
                    v.into_iter()
                        .map(|mut x| {
                            x.pointer = format!("/{i}{}", x.pointer);
                            x
                        })
                        .collect(),
                ),
                other => other,
            })
        })
        .collect()
}
