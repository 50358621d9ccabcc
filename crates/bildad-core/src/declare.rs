//! Templates from code (SPEC §7): the templates a registry declares, and the one step
//! that creates or updates them in a store when a node starts.
//!
//! The step uses the ordinary store methods and is safe when many nodes run it at once
//! on one database: a node that loses the race to create a template (`Conflict`) reads
//! the winner's and goes on as if it had found it; an update writes only what differs,
//! so a node that starts with an unchanged type writes nothing (no `updated_at` churn).
//!
//! What the code owns and what the operator owns: the code owns the fields in
//! [`DeclaredTemplate::owned`] — always the job type and the context schema, and for a
//! typed worker the name, timeout, retries and queue its [`JobArgs::defaults`] declares. The
//! operator owns the rest (whether the template is `active`, its `display_order`, and
//! every default the code leaves unset): they are written when the template is created,
//! never after, so a template an operator deactivated stays inactive.

use crate::error::{ErrorKind, StoreError};
use crate::job::JobRegistry;
use crate::model::JobTemplate;
use crate::store::JobStore;
use crate::typed::JobArgs;
use crate::{NewTemplate, TemplatePatch};

/// A template declared from code: what to create when it is missing, and the fields the
/// code keeps in step afterwards.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredTemplate {
    /// The template created when none has its code.
    pub template: NewTemplate,
    /// The fields the code owns: an existing template whose fields differ is updated to
    /// these. `active` and `display_order` are never owned.
    pub owned: TemplatePatch,
}

impl DeclaredTemplate {
    /// A template the code owns the job type and schema of (an untyped job type whose
    /// template is written by hand, as the demo's).
    pub fn new(template: NewTemplate) -> Self {
        let owned = TemplatePatch {
            job_type: Some(template.job_type.clone()),
            context_schema: Some(template.context_schema.clone()),
            ..TemplatePatch::default()
        };
        Self { template, owned }
    }

    /// The template of a typed job type: code and job type [`JobArgs::KIND`], the
    /// schema [`JobArgs::context_schema`], and the name, timeout, retries and queue of
    /// [`JobArgs::defaults`] (Bildad's defaults where it sets none).
    pub fn of<A: JobArgs>() -> Self {
        let d = A::defaults();
        let mut template = NewTemplate::new(
            A::KIND,
            d.name.unwrap_or(A::KIND),
            A::KIND,
            A::context_schema(),
        );
        if let Some(t) = d.timeout_seconds {
            template.default_timeout_seconds = t;
        }
        if let Some(r) = d.max_retries {
            template.default_max_retries = r;
        }
        if let Some(q) = &d.queue {
            template.queue.clone_from(q);
        }
        let mut declared = Self::new(template);
        declared.owned.name = d.name.map(str::to_owned);
        declared.owned.default_timeout_seconds = d.timeout_seconds;
        declared.owned.default_max_retries = d.max_retries;
        declared.owned.queue = d.queue;
        declared
    }

    /// The owned fields of `existing` that differ from the code's; `None` when none do.
    pub fn changes(&self, existing: &JobTemplate) -> Option<TemplatePatch> {
        fn differs<T: PartialEq + Clone>(owned: &Option<T>, current: &T) -> Option<T> {
            owned.as_ref().filter(|o| *o != current).cloned()
        }
        let o = &self.owned;
        let patch = TemplatePatch {
            name: differs(&o.name, &existing.name),
            job_type: differs(&o.job_type, &existing.job_type),
            context_schema: differs(&o.context_schema, &existing.context_schema),
            active: None,
            display_order: None,
            default_timeout_seconds: differs(
                &o.default_timeout_seconds,
                &existing.default_timeout_seconds,
            ),
            default_max_retries: differs(&o.default_max_retries, &existing.default_max_retries),
            queue: differs(&o.queue, &existing.queue),
        };
        (patch != TemplatePatch::default()).then_some(patch)
    }
}

/// What [`JobRegistry::ensure_templates`] did, by template code.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsuredTemplates {
    /// Templates this call created.
    pub created: Vec<String>,
    /// Existing templates this call updated (their owned fields differed).
    pub updated: Vec<String>,
    /// Templates that were already as declared.
    pub unchanged: Vec<String>,
}

/// How often one template's create-or-update is retried when another writer changes it
/// in between (a node that created it first, an operator who deleted it). Each retry
/// follows another writer's success, so a few always suffice.
const ENSURE_ATTEMPTS: usize = 5;

impl JobRegistry {
    /// Declares a template that the node creates or updates at start (see
    /// [`crate::declare`]); replaces an earlier declaration of the same code.
    pub fn declare(&mut self, template: DeclaredTemplate) -> &mut Self {
        self.typed
            .templates
            .insert(template.template.code.clone(), template);
        self
    }

    /// The declared templates, by code.
    pub fn declared_templates(&self) -> Vec<&DeclaredTemplate> {
        self.typed.templates.values().collect()
    }

    /// Creates the declared templates that are missing and updates those whose owned
    /// fields differ; leaves the rest alone. `NodeRuntime::start` calls it; call it
    /// yourself when you drive an `Engine` without a `NodeRuntime`. Idempotent, and safe
    /// when many nodes call it at once on one database.
    ///
    /// The first error stops it: `Invalid` when a declared template breaks a rule (a
    /// schema that does not resolve locally, say), or the store's error.
    pub async fn ensure_templates(
        &self,
        store: &dyn JobStore,
    ) -> Result<EnsuredTemplates, StoreError> {
        let mut done = EnsuredTemplates::default();
        for declared in self.typed.templates.values() {
            declared.template.validate()?;
            let code = declared.template.code.clone();
            match ensure(store, declared).await? {
                Ensured::Created => done.created.push(code),
                Ensured::Updated => done.updated.push(code),
                Ensured::Unchanged => done.unchanged.push(code),
            }
        }
        Ok(done)
    }
}

/// What one create-or-update did.
pub(crate) enum Ensured {
    Created,
    Updated,
    Unchanged,
}

/// Something declared in code and saved by the create-or-update step: a template, a
/// schedule (`periodic.rs`). The step is written once, in [`ensure`].
#[async_trait::async_trait]
pub(crate) trait Declaration: Sync {
    /// What the store holds for it.
    type Stored: Send;
    /// The change that puts the owned fields back.
    type Patch: Send;
    /// What a failure names (`template "x"`).
    fn what(&self) -> String;
    /// The stored one. `NotFound` when missing.
    async fn read(&self, store: &dyn JobStore) -> Result<Self::Stored, StoreError>;
    /// Creates it. `Conflict` when another writer was first.
    async fn create(&self, store: &dyn JobStore) -> Result<(), StoreError>;
    /// The owned fields of `existing` that differ; `None` when none do.
    fn patch(&self, existing: &Self::Stored) -> Option<Self::Patch>;
    /// Applies `patch`. `NotFound` when deleted in between.
    async fn update(&self, store: &dyn JobStore, patch: Self::Patch) -> Result<(), StoreError>;
}

/// The one create-or-update step, race-safe on the ordinary store methods (see the
/// module's doc).
pub(crate) async fn ensure<D: Declaration>(
    store: &dyn JobStore,
    declared: &D,
) -> Result<Ensured, StoreError> {
    let mut last = None;
    for _ in 0..ENSURE_ATTEMPTS {
        let existing = match declared.read(store).await {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => match declared.create(store).await {
                Ok(()) => return Ok(Ensured::Created),
                // Another node created it first: compare with theirs.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let Some(patch) = declared.patch(&existing) else {
            return Ok(Ensured::Unchanged);
        };
        match declared.update(store, patch).await {
            Ok(()) => return Ok(Ensured::Updated),
            // Deleted in between: create it again.
            Err(e) if e.kind() == ErrorKind::NotFound => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| StoreError::Conflict(declared.what())))
}

#[async_trait::async_trait]
impl Declaration for DeclaredTemplate {
    type Stored = JobTemplate;
    type Patch = TemplatePatch;

    fn what(&self) -> String {
        format!("template {:?}", self.template.code)
    }

    async fn read(&self, store: &dyn JobStore) -> Result<JobTemplate, StoreError> {
        store.get_template(&self.template.code).await
    }

    async fn create(&self, store: &dyn JobStore) -> Result<(), StoreError> {
        store.create_template(self.template.clone()).await.map(drop)
    }

    fn patch(&self, existing: &JobTemplate) -> Option<TemplatePatch> {
        self.changes(existing)
    }

    async fn update(&self, store: &dyn JobStore, patch: TemplatePatch) -> Result<(), StoreError> {
        store
            .update_template(&self.template.code, patch)
            .await
            .map(drop)
    }
}
