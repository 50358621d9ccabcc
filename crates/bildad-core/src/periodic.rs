//! Schedules from code (SPEC §9, §7): a typed job's schedule declared on the registry
//! beside its worker, and the one step that saves the declared schedules when a node
//! starts — idempotent, and safe when many nodes start at once (as for templates,
//! [`crate::declare`]).
//!
//! The code owns a declared schedule's cron, time zone, template, context and options;
//! the operator owns whether it is `active` (written when the schedule is created,
//! never after), so a schedule an operator paused stays paused across deploys.

use crate::declare::{Declaration, Ensured, ensure};
use crate::error::StoreError;
use crate::job::JobRegistry;
use crate::schedule::{NewSchedule, Schedule, ScheduleOptions, SchedulePatch};
use crate::store::JobStore;
use crate::typed::JobArgs;

/// What [`JobRegistry::ensure_schedules`] did, by schedule name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsuredSchedules {
    /// Schedules this call created.
    pub created: Vec<String>,
    /// Existing schedules this call updated (their definition differed).
    pub updated: Vec<String>,
    /// Schedules that were already as declared.
    pub unchanged: Vec<String>,
}

impl JobRegistry {
    /// Declares the schedule `name` of job type `A::KIND`: `args` as the context of every
    /// entry, `cron` (5 fields, or 6 with seconds first) read in time zone `tz` (IANA),
    /// and `A::defaults()`'s priority for its entries. The node saves it at start
    /// ([`JobRegistry::ensure_schedules`]); a second declaration of `name` replaces the
    /// first. `Invalid` when `args` cannot be serialized.
    ///
    /// ```
    /// use bildad_core::{JobArgs, JobError, JobRegistry, RunInfo};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Serialize, Deserialize, schemars::JsonSchema)]
    /// struct Digest { audience: String }
    /// impl JobArgs for Digest { const KIND: &'static str = "digest"; }
    ///
    /// async fn digest(args: Digest, _: RunInfo) -> Result<(), JobError> { Ok(()) }
    ///
    /// let mut registry = JobRegistry::new().with_worker(digest);
    /// registry
    ///     .schedule("morning-digest", "0 7 * * *", "Europe/Paris", &Digest { audience: "all".into() })
    ///     .unwrap();
    /// assert_eq!(registry.declared_schedules()[0].name, "morning-digest");
    /// ```
    pub fn schedule<A: JobArgs>(
        &mut self,
        name: impl Into<String>,
        cron: impl Into<String>,
        tz: impl Into<String>,
        args: &A,
    ) -> Result<&mut Self, StoreError> {
        let context = serde_json::to_value(args)
            .map_err(|e| StoreError::invalid("/context", format!("cannot serialize: {e}")))?;
        let mut s = NewSchedule::new(name, cron, A::KIND, context).timezone(tz);
        s.options = ScheduleOptions {
            priority: A::defaults().priority,
            ..ScheduleOptions::default()
        };
        self.declare_schedule(s);
        Ok(self)
    }

    /// Declares an untyped schedule, saved at start like a typed one.
    pub fn declare_schedule(&mut self, schedule: NewSchedule) -> &mut Self {
        self.typed.schedules.insert(schedule.name.clone(), schedule);
        self
    }

    /// The declared schedules, by name.
    pub fn declared_schedules(&self) -> Vec<&NewSchedule> {
        self.typed.schedules.values().collect()
    }

    /// Creates the declared schedules that are missing and updates those whose
    /// definition differs; leaves the rest (and every schedule's `active`) alone.
    /// `NodeRuntime::start` calls it after [`JobRegistry::ensure_templates`].
    /// Idempotent, and safe when many nodes call it at once on one database.
    ///
    /// The first error stops it: `Invalid` when a declared schedule breaks a rule (a
    /// bad cron, a context its template's schema refuses), or the store's error.
    pub async fn ensure_schedules(
        &self,
        store: &dyn JobStore,
    ) -> Result<EnsuredSchedules, StoreError> {
        let mut done = EnsuredSchedules::default();
        for declared in self.typed.schedules.values() {
            let name = declared.name.clone();
            match ensure(store, declared).await? {
                Ensured::Created => done.created.push(name),
                Ensured::Updated => done.updated.push(name),
                Ensured::Unchanged => done.unchanged.push(name),
            }
        }
        Ok(done)
    }
}

/// The fields of `existing` that differ from the declaration; `None` when none do.
fn changes(declared: &NewSchedule, existing: &Schedule) -> Option<SchedulePatch> {
    fn differs<T: PartialEq + Clone>(want: &T, current: &T) -> Option<T> {
        (want != current).then(|| want.clone())
    }
    let (o, e) = (&declared.options, &existing.options);
    let patch = SchedulePatch {
        cron: differs(&declared.cron, &existing.cron),
        timezone: differs(&declared.timezone, &existing.timezone),
        template: differs(&declared.template, &existing.template),
        context: differs(&declared.context, &existing.context),
        priority: differs(&o.priority, &e.priority).flatten(),
        queue: differs(&o.queue, &e.queue).flatten(),
        max_retries: differs(&o.max_retries, &e.max_retries).flatten(),
        timeout_seconds: differs(&o.timeout_seconds, &e.timeout_seconds).flatten(),
        active: None,
    };
    (patch != SchedulePatch::default()).then_some(patch)
}

#[async_trait::async_trait]
impl Declaration for NewSchedule {
    type Stored = Schedule;
    type Patch = SchedulePatch;

    fn what(&self) -> String {
        format!("schedule {:?}", self.name)
    }

    async fn read(&self, store: &dyn JobStore) -> Result<Schedule, StoreError> {
        store.get_schedule(&self.name).await
    }

    async fn create(&self, store: &dyn JobStore) -> Result<(), StoreError> {
        store.create_schedule(self.clone()).await.map(drop)
    }

    fn patch(&self, existing: &Schedule) -> Option<SchedulePatch> {
        changes(self, existing)
    }

    async fn update(&self, store: &dyn JobStore, patch: SchedulePatch) -> Result<(), StoreError> {
        store.update_schedule(&self.name, patch).await.map(drop)
    }
}
