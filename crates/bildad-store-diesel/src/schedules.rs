//! Schedules (SPEC §9) on both backends: the row shape, the errors, and the evaluation
//! loop, written once. Each backend (`pg/schedules.rs`, `sqlite/schedules.rs`) writes
//! the SQL and the one transaction that advances a schedule and inserts its entries.

use crate::rows::{DbJson, DbTime};
use bildad_core::firing::FirePlan;
use bildad_core::{
    EvaluateSchedules, NewEntry, Schedule, ScheduleEvaluation, ScheduleOptions, StoreError,
    Timestamp, schedule::plan_evaluation,
};
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Nullable, Text};
use serde_json::Value;

/// The columns of a schedule, in [`ScheduleRow`]'s order.
pub(crate) const SCHEDULE_COLS: &str = "name, cron, timezone, template, context, options, \
    active, last_fire_at, next_fire_at, inserted_at, updated_at";

#[derive(QueryableByName)]
pub(crate) struct ScheduleRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    cron: String,
    #[diesel(sql_type = Text)]
    timezone: String,
    #[diesel(sql_type = Text)]
    template: String,
    #[diesel(sql_type = DbJson)]
    context: Value,
    #[diesel(sql_type = DbJson)]
    options: Value,
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Nullable<DbTime>)]
    last_fire_at: Option<Timestamp>,
    #[diesel(sql_type = Nullable<DbTime>)]
    next_fire_at: Option<Timestamp>,
    #[diesel(sql_type = DbTime)]
    inserted_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    updated_at: Timestamp,
}

impl From<ScheduleRow> for Schedule {
    fn from(r: ScheduleRow) -> Self {
        Schedule {
            name: r.name,
            cron: r.cron,
            timezone: r.timezone,
            template: r.template,
            context: r.context,
            // Written by the store from `ScheduleOptions`; unknown keys are ignored.
            options: serde_json::from_value(r.options).unwrap_or_default(),
            active: r.active,
            last_fire_at: r.last_fire_at,
            next_fire_at: r.next_fire_at,
            inserted_at: r.inserted_at,
            updated_at: r.updated_at,
        }
    }
}

/// The options as the `options` column stores them.
pub(crate) fn options_json(o: &ScheduleOptions) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

pub(crate) fn schedule_not_found(name: &str) -> StoreError {
    StoreError::NotFound(format!("schedule {name:?}"))
}

pub(crate) fn schedule_exists(name: &str) -> StoreError {
    StoreError::Conflict(format!("a schedule named {name:?} exists"))
}

/// What one schedule's transaction did.
pub(crate) enum Advance {
    /// Another evaluation advanced the schedule first: nothing changed. (PostgreSQL
    /// batches its rounds and counts its losses without this.)
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    Lost,
    /// The schedule advanced; its entries were inserted (`Ok`) or refused (`Err`, the
    /// fire times passed without entries).
    Won(Result<(), String>),
}

/// One due schedule's share of an evaluation: the schedule as read, its plan, and the
/// entries of its fire times.
pub(crate) struct DueFire {
    pub(crate) schedule: Schedule,
    pub(crate) plan: FirePlan,
    pub(crate) entries: Vec<NewEntry>,
}

/// The plans of the `due` schedules (read with one more row than `req.max_schedules`,
/// to tell whether more were due) at `now`, and the report to fill with
/// [`record`] as each backend runs its one transaction per schedule.
pub(crate) fn plan_due(
    mut due: Vec<Schedule>,
    now: Timestamp,
    req: &EvaluateSchedules,
) -> (ScheduleEvaluation, Vec<DueFire>) {
    let out = ScheduleEvaluation {
        more: due.len() > req.max_schedules as usize,
        ..ScheduleEvaluation::default()
    };
    due.truncate(req.max_schedules as usize);
    let fires = due
        .into_iter()
        .filter_map(|schedule| {
            let (plan, entries) = plan_evaluation(&schedule, now, req)?;
            Some(DueFire {
                schedule,
                plan,
                entries,
            })
        })
        .collect();
    (out, fires)
}

/// Adds what one schedule's transaction did to the report.
pub(crate) fn record(out: &mut ScheduleEvaluation, name: &str, fires: &[Timestamp], a: Advance) {
    match a {
        Advance::Lost => out.lost += 1,
        Advance::Won(outcome) => out.record(name, fires, outcome),
    }
}
