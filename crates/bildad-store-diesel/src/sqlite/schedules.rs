//! Schedules on SQLite (SPEC §9): as on PostgreSQL (`pg/schedules.rs`), each due
//! schedule advances in one `BEGIN IMMEDIATE` transaction, with a compare-and-set on the
//! `next_fire_at` it read, that also inserts its entries (`tx::in_savepoint`, the
//! enqueue's own code, in a savepoint).

use super::tx::in_savepoint;
use super::{SqliteStore, Tx, optional};
use crate::errors::{Fail, is_unique_violation};
use crate::rows::{CountRow, TEMPLATE_COLS, TemplateRow, TimeRow, micros};
use crate::schedules::{
    Advance, DueFire, SCHEDULE_COLS, ScheduleRow, options_json, plan_due, record, schedule_exists,
    schedule_not_found,
};
use crate::shared::{count, limit_offset};
use bildad_core::schedule::check_schedule_template;
use bildad_core::{
    EvaluateSchedules, JobTemplate, NewSchedule, Page, PageRequest, Schedule, ScheduleEvaluation,
    SchedulePatch, SchemaCache, StoreResult, Timestamp, Violation,
};
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{RunQueryDsl, SqliteConnection, sql_query};

use super::sql::NOW;

fn db_now(c: &mut SqliteConnection) -> Tx<Timestamp> {
    Ok(sql_query(format!("SELECT {NOW} AS t"))
        .get_result::<TimeRow>(c)?
        .t)
}

/// The template named by a schedule, unless its code already failed the field checks.
fn template_of(c: &mut SqliteConnection, code: &str, v: &[Violation]) -> Tx<Option<JobTemplate>> {
    if v.iter().any(|x| x.pointer == "/template") {
        return Ok(None);
    }
    let row = optional(
        sql_query(format!(
            "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ?1"
        ))
        .bind::<Text, _>(code)
        .get_result::<TemplateRow>(c),
    )?;
    Ok(row.map(Into::into))
}

fn read(c: &mut SqliteConnection, name: &str) -> Tx<Schedule> {
    optional(
        sql_query(format!(
            "SELECT {SCHEDULE_COLS} FROM bildad_schedules WHERE name = ?1"
        ))
        .bind::<Text, _>(name)
        .get_result::<ScheduleRow>(c),
    )?
    .map(Into::into)
    .ok_or_else(|| Fail(schedule_not_found(name)))
}

pub(super) async fn create_schedule(
    store: &SqliteStore,
    new: NewSchedule,
) -> StoreResult<Schedule> {
    let schemas = store.schemas.clone();
    store
        .write(move |c| {
            let mut v = Vec::new();
            let (firing, sample) = new.check(&mut v);
            let template = template_of(c, &new.template, &v)?;
            let firing = check_schedule_template(&schemas, template.as_ref(), &sample, firing, v)?;
            let next = firing.next_after(db_now(c)?).map(micros);
            let row: ScheduleRow = sql_query(format!(
                "INSERT INTO bildad_schedules
                   (name, cron, timezone, template, context, options, active, next_fire_at,
                    inserted_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, {NOW})
                 RETURNING {SCHEDULE_COLS}"
            ))
            .bind::<Text, _>(&new.name)
            .bind::<Text, _>(&new.cron)
            .bind::<Text, _>(&new.timezone)
            .bind::<Text, _>(&new.template)
            .bind::<Text, _>(new.context.to_string())
            .bind::<Text, _>(options_json(&new.options).to_string())
            .bind::<Bool, _>(new.active)
            .bind::<Nullable<BigInt>, _>(next)
            .get_result(c)
            .map_err(|e| match e {
                e if is_unique_violation(&e) => Fail(schedule_exists(&new.name)),
                e => e.into(),
            })?;
            Ok(row.into())
        })
        .await
}

pub(super) async fn get_schedule(store: &SqliteStore, name: &str) -> StoreResult<Schedule> {
    let name = name.to_string();
    store.run(move |c| read(c, &name)).await
}

pub(super) async fn list_schedules(
    store: &SqliteStore,
    page: PageRequest,
) -> StoreResult<Page<Schedule>> {
    let (limit, offset) = limit_offset(page);
    store
        .run(move |c| {
            let rows: Vec<ScheduleRow> = sql_query(format!(
                "SELECT {SCHEDULE_COLS} FROM bildad_schedules ORDER BY name LIMIT ?1 OFFSET ?2"
            ))
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)?;
            let total: CountRow =
                sql_query("SELECT count(*) AS n FROM bildad_schedules").get_result(c)?;
            Ok(Page::new(
                rows.into_iter().map(Into::into).collect(),
                count(total.n),
                page,
            ))
        })
        .await
}

/// Writes every changeable column of `s`.
fn write(c: &mut SqliteConnection, s: &Schedule) -> Tx<Schedule> {
    let row: ScheduleRow = sql_query(format!(
        "UPDATE bildad_schedules
         SET cron = ?2, timezone = ?3, template = ?4, context = ?5, options = ?6,
             active = ?7, next_fire_at = ?8, updated_at = {NOW}
         WHERE name = ?1
         RETURNING {SCHEDULE_COLS}"
    ))
    .bind::<Text, _>(&s.name)
    .bind::<Text, _>(&s.cron)
    .bind::<Text, _>(&s.timezone)
    .bind::<Text, _>(&s.template)
    .bind::<Text, _>(s.context.to_string())
    .bind::<Text, _>(options_json(&s.options).to_string())
    .bind::<Bool, _>(s.active)
    .bind::<Nullable<BigInt>, _>(s.next_fire_at.map(micros))
    .get_result(c)?;
    Ok(row.into())
}

pub(super) async fn update_schedule(
    store: &SqliteStore,
    name: &str,
    patch: SchedulePatch,
) -> StoreResult<Schedule> {
    let name = name.to_string();
    let schemas = store.schemas.clone();
    store
        .write(move |c| {
            let mut s = read(c, &name)?;
            let mut v = Vec::new();
            let (firing, sample, reclock) = patch.apply(&mut s, &mut v);
            let template = template_of(c, &s.template, &v)?;
            let firing = check_schedule_template(&schemas, template.as_ref(), &sample, firing, v)?;
            if reclock {
                s.next_fire_at = firing.next_after(db_now(c)?);
            }
            write(c, &s)
        })
        .await
}

pub(super) async fn delete_schedule(store: &SqliteStore, name: &str) -> StoreResult<()> {
    let name = name.to_string();
    store
        .run(move |c| {
            let n = sql_query("DELETE FROM bildad_schedules WHERE name = ?1")
                .bind::<Text, _>(&name)
                .execute(c)?;
            if n == 0 {
                return Err(Fail(schedule_not_found(&name)));
            }
            Ok(())
        })
        .await
}

pub(super) async fn rewind_schedule(
    store: &SqliteStore,
    name: &str,
    from: Timestamp,
) -> StoreResult<Schedule> {
    let name = name.to_string();
    store
        .write(move |c| {
            let mut s = read(c, &name)?;
            s.next_fire_at = s.firing()?.next_after(from);
            write(c, &s)
        })
        .await
}

pub(super) async fn evaluate_schedules(
    store: &SqliteStore,
    req: EvaluateSchedules,
) -> StoreResult<ScheduleEvaluation> {
    let schemas = store.schemas.clone();
    let out = store
        .run(move |c| {
            let now = match req.at {
                Some(t) => t,
                None => db_now(c)?,
            };
            // Only the due rows, through the partial index on next_fire_at.
            let due: Vec<ScheduleRow> = sql_query(format!(
                "SELECT {SCHEDULE_COLS} FROM bildad_schedules
                 WHERE active = 1 AND next_fire_at <= ?1
                 ORDER BY next_fire_at LIMIT ?2"
            ))
            .bind::<BigInt, _>(micros(now))
            .bind::<BigInt, _>(i64::from(req.max_schedules) + 1)
            .load(c)?;
            let (mut out, due) = plan_due(due.into_iter().map(Into::into).collect(), now, &req);
            for d in due {
                let name = d.schedule.name.clone();
                let fires = d.plan.fires.clone();
                let a = c.immediate_transaction(|c| advance(&schemas, c, d))?;
                record(&mut out, &name, &fires, a);
            }
            Ok(out)
        })
        .await?;
    if !out.fired.is_empty() {
        store.enqueued.notify();
    }
    Ok(out)
}

/// One schedule's transaction: the advance, guarded by the `next_fire_at` read, and the
/// entries of its fire times.
fn advance(schemas: &SchemaCache, c: &mut SqliteConnection, d: DueFire) -> Tx<Advance> {
    let DueFire {
        schedule: s,
        plan,
        entries,
    } = d;
    let won = sql_query(
        "UPDATE bildad_schedules SET last_fire_at = ?2, next_fire_at = ?3
         WHERE name = ?1 AND active = 1 AND next_fire_at = ?4",
    )
    .bind::<Text, _>(&s.name)
    .bind::<BigInt, _>(micros(plan.last_fire_at))
    .bind::<Nullable<BigInt>, _>(plan.next_fire_at.map(micros))
    .bind::<Nullable<BigInt>, _>(s.next_fire_at.map(micros))
    .execute(c)?;
    if won == 0 {
        return Ok(Advance::Lost);
    }
    // A savepoint: a refused enqueue leaves the advance to commit.
    let inserted = in_savepoint(schemas, c, entries);
    Ok(Advance::Won(
        inserted.map(|_| ()).map_err(|e| e.to_string()),
    ))
}
