//! Schedules (SPEC §9): periodic jobs stored in the database, what a caller hands the
//! store to save or change one, and what one evaluation reports.

use crate::error::{StoreError, Violation};
use crate::firing::{DEFAULT_SCHEDULE_GRACE, Firing, MAX_FIRES_PER_EVALUATION, fire_identifier};
use crate::input::{MAX_NAME_CHARS, NewEntry, check_code};
use crate::model::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The longest schedule name: its entries' identifiers (`schedule:<name>:<time>`) must
/// stay within [`MAX_NAME_CHARS`].
pub const MAX_SCHEDULE_NAME_CHARS: usize = MAX_NAME_CHARS - 50;

/// What each entry of a schedule gets besides its template and context; `None` takes
/// the template's default, as an enqueue does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleOptions {
    /// The entries' priority (default 5).
    #[serde(default)]
    pub priority: Option<i32>,
    /// The entries' queue (SPEC §8); kept with the schedule.
    #[serde(default)]
    pub queue: Option<String>,
    /// The entries' `max_retries`.
    #[serde(default)]
    pub max_retries: Option<i32>,
    /// The entries' `timeout_seconds`.
    #[serde(default)]
    pub timeout_seconds: Option<i32>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Unique name (characters of a code).
    pub name: String,
    /// 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone the cron is read in.
    pub timezone: String,
    /// The template's code.
    pub template: String,
    /// Every entry's context.
    pub context: Value,
    /// Every entry's options.
    pub options: ScheduleOptions,
    /// An inactive schedule fires nothing.
    pub active: bool,
    /// The latest fire time enqueued; `None` before the first.
    pub last_fire_at: Option<Timestamp>,
    /// The next fire time; `None` when the expression never fires again.
    pub next_fire_at: Option<Timestamp>,
    /// When it was saved first (database clock).
    pub inserted_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Schedule {
    /// The entry this schedule enqueues for fire time `fire_at`.
    pub fn entry_for(&self, fire_at: Timestamp) -> NewEntry {
        entry(
            &self.name,
            &self.template,
            &self.context,
            &self.options,
            fire_at,
        )
    }

    /// The parsed cron and time zone. `Invalid` if the stored text no longer parses.
    pub fn firing(&self) -> Result<Firing, StoreError> {
        Firing::parse(&self.cron, &self.timezone).map_err(StoreError::Invalid)
    }
}

fn entry(
    name: &str,
    template: &str,
    context: &Value,
    o: &ScheduleOptions,
    fire_at: Timestamp,
) -> NewEntry {
    let mut e = NewEntry::new(template, context.clone()).identifier(fire_identifier(name, fire_at));
    e.priority = o.priority;
    e.timeout_seconds = o.timeout_seconds;
    e.max_retries = o.max_retries;
    e.queue = o.queue.clone();
    e
}

/// A schedule to save.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewSchedule {
    /// Unique name.
    pub name: String,
    /// 5 fields, or 6 with seconds first.
    pub cron: String,
    /// IANA time zone (default `"UTC"`).
    pub timezone: String,
    /// The template's code.
    pub template: String,
    /// Every entry's context, checked against the template's schema when saved.
    pub context: Value,
    /// Every entry's options.
    pub options: ScheduleOptions,
    /// Default true.
    pub active: bool,
}

impl NewSchedule {
    /// An active schedule in UTC with default options.
    pub fn new(
        name: impl Into<String>,
        cron: impl Into<String>,
        template: impl Into<String>,
        context: Value,
    ) -> Self {
        Self {
            name: name.into(),
            cron: cron.into(),
            timezone: "UTC".into(),
            template: template.into(),
            context,
            options: ScheduleOptions::default(),
            active: true,
        }
    }

    /// The same schedule in time zone `tz`.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }

    /// The rules that need no template (name, cron, time zone, option bounds), and the
    /// sample entry whose template and context a store checks as an enqueue would.
    pub fn check(&self, v: &mut Vec<Violation>) -> (Option<Firing>, NewEntry) {
        check_name(&self.name, v);
        let firing = check_firing(&self.cron, &self.timezone, v);
        let sample = entry(
            &self.name,
            &self.template,
            &self.context,
            &self.options,
            chrono::DateTime::UNIX_EPOCH,
        );
        check_sample(&sample, &self.options, v);
        (firing, sample)
    }
}

/// A partial update of a schedule; `None` keeps the field. A new cron or time zone, or
/// an activation, moves `next_fire_at` to the first fire time after now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulePatch {
    /// New cron expression.
    pub cron: Option<String>,
    /// New time zone.
    pub timezone: Option<String>,
    /// New template code.
    pub template: Option<String>,
    /// New context (checked against the template's schema).
    pub context: Option<Value>,
    /// New entry priority.
    pub priority: Option<i32>,
    /// New entry queue.
    pub queue: Option<String>,
    /// New entry `max_retries`.
    pub max_retries: Option<i32>,
    /// New entry `timeout_seconds`.
    pub timeout_seconds: Option<i32>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

impl SchedulePatch {
    /// Applies the patch to `s` (only in memory) and checks the result as a new schedule
    /// would be. Returns the parsed firing, the sample entry to check against the
    /// template, and whether the clock must move (a new cron, time zone or activation).
    pub fn apply(
        &self,
        s: &mut Schedule,
        v: &mut Vec<Violation>,
    ) -> (Option<Firing>, NewEntry, bool) {
        let reclock = self.cron.as_ref().is_some_and(|c| *c != s.cron)
            || self.timezone.as_ref().is_some_and(|t| *t != s.timezone)
            || (self.active == Some(true) && !s.active);
        if let Some(x) = &self.cron {
            s.cron = x.clone();
        }
        if let Some(x) = &self.timezone {
            s.timezone = x.clone();
        }
        if let Some(x) = &self.template {
            s.template = x.clone();
        }
        if let Some(x) = &self.context {
            s.context = x.clone();
        }
        let o = &mut s.options;
        o.priority = self.priority.or(o.priority);
        o.queue = self.queue.clone().or(o.queue.take());
        o.max_retries = self.max_retries.or(o.max_retries);
        o.timeout_seconds = self.timeout_seconds.or(o.timeout_seconds);
        if let Some(x) = self.active {
            s.active = x;
        }
        let firing = check_firing(&s.cron, &s.timezone, v);
        let sample = s.entry_for(chrono::DateTime::UNIX_EPOCH);
        check_sample(&sample, &s.options, v);
        (firing, sample, reclock)
    }
}

fn check_name(name: &str, v: &mut Vec<Violation>) {
    check_code("/name", name, v);
    if name.len() > MAX_SCHEDULE_NAME_CHARS {
        v.push(Violation::new(
            "/name",
            format!("must be at most {MAX_SCHEDULE_NAME_CHARS} characters"),
        ));
    }
}

fn check_firing(cron: &str, tz: &str, v: &mut Vec<Violation>) -> Option<Firing> {
    Firing::parse(cron, tz).map_err(|e| v.extend(e)).ok()
}

/// The bounds of the options, and what the template-free checks of an enqueue find in
/// the sample entry (NULs in the context, priority and retries out of range).
fn check_sample(sample: &NewEntry, o: &ScheduleOptions, v: &mut Vec<Violation>) {
    if let Some(q) = &o.queue {
        check_code("/queue", q, v);
    }
    let mut fields = Vec::new();
    sample.check_fields("", &mut fields);
    // The identifier is built from the name, which has its own check.
    v.extend(
        fields
            .into_iter()
            .filter(|x| x.pointer != "/job_run_identifier"),
    );
}

/// One evaluation of the schedules (see [`crate::JobStore::evaluate_schedules`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvaluateSchedules {
    /// See [`crate::firing::Firing::plan`] (default 60 s).
    pub grace: Duration,
    /// The most schedules advanced in this evaluation (default 100); the report says
    /// when more were due.
    pub max_schedules: u32,
    /// The most fire times of one schedule enqueued in this evaluation (default 1,000).
    pub max_fires: u32,
    /// **Tests only**: evaluate as if the database clock read this instant. `None`
    /// (always, outside tests) reads the database clock.
    pub at: Option<Timestamp>,
}

impl Default for EvaluateSchedules {
    fn default() -> Self {
        Self {
            grace: DEFAULT_SCHEDULE_GRACE,
            max_schedules: 100,
            max_fires: MAX_FIRES_PER_EVALUATION as u32,
            at: None,
        }
    }
}

/// A fire time that this evaluation enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fired {
    /// The schedule.
    pub schedule: String,
    /// The fire time.
    pub fire_at: Timestamp,
    /// The entry's identifier (`schedule:<name>:<fire time>`).
    pub job_run_identifier: String,
}

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleEvaluation {
    /// The fire times this evaluation enqueued (and no other evaluation did).
    pub fired: Vec<Fired>,
    /// Due schedules another evaluation advanced first: this one changed nothing there.
    pub lost: u32,
    /// Fire times passed without an entry, because the enqueue was refused (template
    /// gone or inactive, context no longer valid): the schedule still moved on.
    pub skipped: Vec<(Fired, String)>,
    /// More schedules were due than `max_schedules`: evaluate again.
    pub more: bool,
}

impl ScheduleEvaluation {
    /// Records the outcome of enqueuing the entries of `fires` for `schedule`.
    pub fn record(&mut self, schedule: &str, fires: &[Timestamp], outcome: Result<(), String>) {
        let each = fires.iter().map(|t| Fired {
            schedule: schedule.to_string(),
            fire_at: *t,
            job_run_identifier: fire_identifier(schedule, *t),
        });
        match outcome {
            Ok(()) => self.fired.extend(each),
            Err(e) => self.skipped.extend(each.map(|f| (f, e.clone()))),
        }
    }
}

/// The template checks of an enqueue on a schedule's sample entry (the template exists
/// and is active, the context satisfies its schema), added to the violations `v` the
/// field checks found (without repeating one); then the verdict: the parsed firing, or
/// `Invalid` with every violation. Every store calls it when a schedule is saved.
pub fn check_schedule_template(
    schemas: &crate::SchemaCache,
    template: Option<&crate::JobTemplate>,
    sample: &NewEntry,
    firing: Option<Firing>,
    mut v: Vec<Violation>,
) -> Result<Firing, StoreError> {
    let mut more = Vec::new();
    schemas.check_entry(template, sample, "", &mut more);
    for x in more {
        if !v.contains(&x) {
            v.push(x);
        }
    }
    match firing {
        Some(f) if v.is_empty() => Ok(f),
        _ => Err(StoreError::Invalid(v)),
    }
}

/// A due schedule's plan for one evaluation at `now`: the fire times, the entries to
/// insert, and the clock to set. `None` when the stored cron no longer parses or nothing
/// is due.
pub fn plan_evaluation(
    s: &Schedule,
    now: Timestamp,
    req: &EvaluateSchedules,
) -> Option<(crate::firing::FirePlan, Vec<NewEntry>)> {
    let firing = s.firing().ok()?;
    let plan = firing.plan(s.next_fire_at?, now, req.grace, req.max_fires as usize)?;
    let entries = plan.fires.iter().map(|t| s.entry_for(*t)).collect();
    Some((plan, entries))
}
