//! Schedules on PostgreSQL (SPEC §9): save, read, change, delete, and the evaluation —
//! one transaction per round of due schedules that, for each, advances it with a
//! compare-and-set on the `next_fire_at` it read and inserts its entries (the enqueue
//! of `enqueue.rs`, in a savepoint), so that of any number of racing nodes exactly one
//! wins each fire time, and a fire time's entries exist if and only if its advance
//! committed.

use super::PgStore;
use super::enqueue::enqueue_on;
use crate::errors::{Fail, db_error, is_unique_violation};
use crate::rows::TextRow;
use crate::schedules::{
    Advance, DueFire, SCHEDULE_COLS, ScheduleRow, options_json, plan_due, record, schedule_exists,
};
use bildad_core::schedule::check_schedule_template;
use bildad_core::{
    EvaluateSchedules, JobStore, NewEntry, NewSchedule, Schedule, ScheduleEvaluation, SchemaCache,
    StoreResult, Timestamp,
};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

crate::pooled::pooled_schedules!(
    PgStore,
    AsyncPgConnection,
    diesel::pg::Pg,
    crate::dialect::Dialect::Postgres
);

pub(super) async fn create_schedule(store: &PgStore, new: NewSchedule) -> StoreResult<Schedule> {
    let mut v = Vec::new();
    let (firing, sample) = new.check(&mut v);
    let mut conn = store.conn().await?;
    let template = template_of(&mut conn, &new.template, &v).await?;
    let firing = check_schedule_template(&store.schemas, template.as_ref(), &sample, firing, v)?;
    let now = store.now().await?;
    let row: ScheduleRow = sql_query(format!(
        "INSERT INTO bildad_schedules
           (name, cron, timezone, template, context, options, active, next_fire_at,
            inserted_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now())
         RETURNING {SCHEDULE_COLS}"
    ))
    .bind::<Text, _>(&new.name)
    .bind::<Text, _>(&new.cron)
    .bind::<Text, _>(&new.timezone)
    .bind::<Text, _>(&new.template)
    .bind::<Jsonb, _>(&new.context)
    .bind::<Jsonb, _>(options_json(&new.options))
    .bind::<Bool, _>(new.active)
    .bind::<Nullable<Timestamptz>, _>(firing.next_after(now))
    .get_result(&mut conn)
    .await
    .map_err(|e| match e {
        e if is_unique_violation(&e) => schedule_exists(&new.name),
        e => db_error(e),
    })?;
    Ok(row.into())
}

/// Writes every changeable column of `s` (the row is locked by the caller).
async fn write(c: &mut AsyncPgConnection, s: &Schedule) -> Result<Schedule, Fail> {
    let row: ScheduleRow = sql_query(format!(
        "UPDATE bildad_schedules
         SET cron = $2, timezone = $3, template = $4, context = $5, options = $6,
             active = $7, next_fire_at = $8, updated_at = now()
         WHERE name = $1
         RETURNING {SCHEDULE_COLS}"
    ))
    .bind::<Text, _>(&s.name)
    .bind::<Text, _>(&s.cron)
    .bind::<Text, _>(&s.timezone)
    .bind::<Text, _>(&s.template)
    .bind::<Jsonb, _>(&s.context)
    .bind::<Jsonb, _>(options_json(&s.options))
    .bind::<Bool, _>(s.active)
    .bind::<Nullable<Timestamptz>, _>(s.next_fire_at)
    .get_result(c)
    .await?;
    Ok(row.into())
}

async fn db_now(c: &mut AsyncPgConnection) -> StoreResult<Timestamp> {
    #[derive(diesel::QueryableByName)]
    struct Now {
        #[diesel(sql_type = Timestamptz)]
        t: Timestamp,
    }
    let row: Now = sql_query("SELECT now() AS t")
        .get_result(c)
        .await
        .map_err(db_error)?;
    Ok(row.t)
}

pub(super) async fn evaluate_schedules(
    store: &PgStore,
    req: EvaluateSchedules,
) -> StoreResult<ScheduleEvaluation> {
    let mut conn = store.conn().await?;
    let now = match req.at {
        Some(t) => t,
        None => db_now(&mut conn).await?,
    };
    // Only the due rows, through the partial index on next_fire_at.
    let due: Vec<ScheduleRow> = sql_query(format!(
        "SELECT {SCHEDULE_COLS} FROM bildad_schedules
         WHERE active AND next_fire_at <= $1
         ORDER BY next_fire_at LIMIT $2"
    ))
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(i64::from(req.max_schedules) + 1)
    .load(&mut conn)
    .await
    .map_err(db_error)?;
    let (mut out, due) = plan_due(due.into_iter().map(Into::into).collect(), now, &req);
    if due.is_empty() {
        // Nothing due (the common case, every second on every node): no transaction.
        return Ok(out);
    }
    // One transaction for the round (one commit, not one per schedule); each schedule
    // is decided alone inside it: its own compare-and-set, then the entries of every
    // won schedule in one insert (a savepoint), or, when that is refused, each
    // schedule's in a savepoint of its own, so that one refused enqueue skips only its
    // own fire times.
    let schemas = &store.schemas;
    let decided = conn
        .transaction::<_, Fail, _>(async |c| {
            let moved = advance(c, &due).await?;
            let (won, lost): (Vec<DueFire>, Vec<DueFire>) = due
                .into_iter()
                .partition(|d| moved.contains(&d.schedule.name));
            out.lost += lost.len() as u32;
            let all: Vec<NewEntry> = won.iter().flat_map(|d| d.entries.clone()).collect();
            if insert(schemas, c, all).await.is_ok() {
                return Ok(won.into_iter().map(|d| (d, Ok(()))).collect::<Vec<_>>());
            }
            let mut decided = Vec::with_capacity(won.len());
            for d in won {
                let inserted = insert(schemas, c, d.entries.clone()).await;
                decided.push((d, inserted));
            }
            Ok(decided)
        })
        .await
        .map_err(|f| f.0)?;
    for (d, inserted) in decided {
        record(
            &mut out,
            &d.schedule.name,
            &d.plan.fires,
            Advance::Won(inserted),
        );
    }
    Ok(out)
}

/// Entries in a savepoint: a refused enqueue leaves the rest of the round to commit.
async fn insert(
    schemas: &SchemaCache,
    c: &mut AsyncPgConnection,
    entries: Vec<NewEntry>,
) -> Result<(), String> {
    c.transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, entries).await?))
        .await
        .map(|_| ())
        .map_err(|f| f.0.to_string())
}

/// The compare-and-set of the round's due schedules, in one statement: the names of
/// those this evaluation moved from the `next_fire_at` it read. A racing evaluation
/// finds a row moved, or locked by the evaluation that is moving it (SKIP LOCKED: it
/// goes on instead of waiting; should that evaluation roll back, the fire time is still
/// due at the next tick).
async fn advance(c: &mut AsyncPgConnection, due: &[DueFire]) -> Result<Vec<String>, Fail> {
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<&str> = due.iter().map(|d| d.schedule.name.as_str()).collect();
    let last: Vec<Timestamp> = due.iter().map(|d| d.plan.last_fire_at).collect();
    let next: Vec<Option<Timestamp>> = due.iter().map(|d| d.plan.next_fire_at).collect();
    let seen: Vec<Option<Timestamp>> = due.iter().map(|d| d.schedule.next_fire_at).collect();
    let rows: Vec<TextRow> = sql_query(
        "WITH want AS (
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],
                                  $4::timestamptz[]) AS w(name, last_fire, next_fire, seen)),
         mine AS (
             SELECT s.name FROM bildad_schedules s
             JOIN want w ON w.name = s.name AND s.next_fire_at = w.seen
             WHERE s.active
             FOR UPDATE OF s SKIP LOCKED)
         UPDATE bildad_schedules s SET last_fire_at = w.last_fire, next_fire_at = w.next_fire
         FROM want w, mine
         WHERE s.name = w.name AND s.name = mine.name
         RETURNING s.name AS text",
    )
    .bind::<Array<Text>, _>(&names)
    .bind::<Array<Timestamptz>, _>(&last)
    .bind::<Array<Nullable<Timestamptz>>, _>(&next)
    .bind::<Array<Nullable<Timestamptz>>, _>(&seen)
    .load(c)
    .await?;
    Ok(rows.into_iter().map(|r| r.text).collect())
}
