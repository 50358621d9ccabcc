//! Schedules on MariaDB (SPEC §9): save, read, change, delete, and the evaluation. Each
//! due schedule advances in a transaction of its own, with a compare-and-set on the
//! `next_fire_at` it read, that also inserts its entries (the enqueue's own code, in a
//! savepoint): of any number of racing nodes exactly one wins each fire time, and a fire
//! time's entries exist if and only if its advance committed.

use super::MysqlStore;
use super::enqueue::enqueue_on;
use crate::errors::{Fail, db_error, is_unique_violation};
use crate::rows::{DbJson, DbTime, TimeRow};
use crate::schedules::{
    Advance, DueFire, SCHEDULE_COLS, ScheduleRow, options_json, plan_due, record, schedule_exists,
};
use bildad_core::schedule::check_schedule_template;
use bildad_core::{
    EvaluateSchedules, NewSchedule, Schedule, ScheduleEvaluation, SchemaCache, StoreResult,
    Timestamp,
};
use diesel::sql_query;
use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

crate::pooled::pooled_schedules!(
    MysqlStore,
    AsyncMysqlConnection,
    diesel::mysql::Mysql,
    crate::dialect::Dialect::Mysql
);

async fn db_now(c: &mut AsyncMysqlConnection) -> StoreResult<Timestamp> {
    Ok(sql_query("SELECT UTC_TIMESTAMP(6) AS t")
        .get_result::<TimeRow>(c)
        .await
        .map_err(db_error)?
        .t)
}

pub(super) async fn create_schedule(store: &MysqlStore, new: NewSchedule) -> StoreResult<Schedule> {
    let mut v = Vec::new();
    let (firing, sample) = new.check(&mut v);
    let mut conn = store.conn().await?;
    let schemas = &store.schemas;
    conn.transaction::<_, Fail, _>(async |c| {
        let template = template_of(c, &new.template, &v).await?;
        let firing = check_schedule_template(schemas, template.as_ref(), &sample, firing, v)?;
        let next = firing.next_after(db_now(c).await?);
        sql_query(
            "INSERT INTO bildad_schedules
               (name, cron, timezone, template, context, options, active, next_fire_at,
                inserted_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind::<Text, _>(&new.name)
        .bind::<Text, _>(&new.cron)
        .bind::<Text, _>(&new.timezone)
        .bind::<Text, _>(&new.template)
        .bind::<DbJson, _>(&new.context)
        .bind::<DbJson, _>(options_json(&new.options))
        .bind::<Bool, _>(new.active)
        .bind::<Nullable<DbTime>, _>(next)
        .execute(c)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => Fail(schedule_exists(&new.name)),
            e => e.into(),
        })?;
        Ok(read(c, &new.name, false).await?)
    })
    .await
    .map_err(|f| f.0)
}

/// Writes every changeable column of `s`, and reads it back.
async fn write(c: &mut AsyncMysqlConnection, s: &Schedule) -> Result<Schedule, Fail> {
    sql_query(
        "UPDATE bildad_schedules
         SET cron = ?, timezone = ?, template = ?, context = ?, options = ?,
             active = ?, next_fire_at = ?, updated_at = UTC_TIMESTAMP(6)
         WHERE name = ?",
    )
    .bind::<Text, _>(&s.cron)
    .bind::<Text, _>(&s.timezone)
    .bind::<Text, _>(&s.template)
    .bind::<DbJson, _>(&s.context)
    .bind::<DbJson, _>(options_json(&s.options))
    .bind::<Bool, _>(s.active)
    .bind::<Nullable<DbTime>, _>(s.next_fire_at)
    .bind::<Text, _>(&s.name)
    .execute(c)
    .await?;
    Ok(read(c, &s.name, false).await?)
}

pub(super) async fn evaluate_schedules(
    store: &MysqlStore,
    req: EvaluateSchedules,
) -> StoreResult<ScheduleEvaluation> {
    let mut conn = store.conn().await?;
    let now = match req.at {
        Some(t) => t,
        None => db_now(&mut conn).await?,
    };
    // Only the due rows, through the index on (active, next_fire_at).
    let due: Vec<ScheduleRow> = sql_query(format!(
        "SELECT {SCHEDULE_COLS} FROM bildad_schedules
         WHERE active AND next_fire_at <= ?
         ORDER BY next_fire_at LIMIT ?"
    ))
    .bind::<DbTime, _>(now)
    .bind::<BigInt, _>(i64::from(req.max_schedules) + 1)
    .load(&mut conn)
    .await
    .map_err(db_error)?;
    let (mut out, due) = plan_due(due.into_iter().map(Into::into).collect(), now, &req);
    for d in due {
        let name = d.schedule.name.clone();
        let fires = d.plan.fires.clone();
        let schemas = &store.schemas;
        let a = conn
            .transaction::<_, Fail, _>(async |c| advance(schemas, c, d).await)
            .await
            .map_err(|f| f.0)?;
        record(&mut out, &name, &fires, a);
    }
    if !out.fired.is_empty() {
        store.enqueued.notify();
    }
    Ok(out)
}

/// One schedule's transaction: the advance, guarded by the `next_fire_at` read, and the
/// entries of its fire times.
async fn advance(
    schemas: &SchemaCache,
    c: &mut AsyncMysqlConnection,
    d: DueFire,
) -> Result<Advance, Fail> {
    let DueFire {
        schedule: s,
        plan,
        entries,
    } = d;
    let won = sql_query(
        "UPDATE bildad_schedules SET last_fire_at = ?, next_fire_at = ?
         WHERE name = ? AND active AND next_fire_at = ?",
    )
    .bind::<DbTime, _>(plan.last_fire_at)
    .bind::<Nullable<DbTime>, _>(plan.next_fire_at)
    .bind::<Text, _>(&s.name)
    .bind::<Nullable<DbTime>, _>(s.next_fire_at)
    .execute(c)
    .await?;
    if won == 0 {
        return Ok(Advance::Lost);
    }
    // A savepoint: a refused enqueue leaves the advance to commit.
    let inserted = c
        .transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, entries).await?))
        .await;
    Ok(Advance::Won(
        inserted.map(|_| ()).map_err(|f| f.0.to_string()),
    ))
}
