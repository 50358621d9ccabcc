//! Row shapes shared by both backends, and their conversion into the domain model.
//!
//! Two SQL types differ between the backends: timestamps (`timestamptz` in PostgreSQL,
//! integer microseconds in SQLite) and JSON (`jsonb`, text). `DbTime` and `DbJson` name
//! them once, so one set of row structs reads both.

use crate::shared::count;
use bildad_core::{
    ActivityBucket, EntryStatus, JobRun, JobTemplate, Node, QueueEntry, RunActivity, RunResult,
    RunStatus, StoreError, Timestamp,
};
use diesel::QueryableByName;
use diesel::deserialize::{self, FromSql};
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use serde_json::Value;

/// The columns of a template, in [`TemplateRow`]'s order.
pub(crate) const TEMPLATE_COLS: &str = "id, code, name, job_type, active, display_order, \
    default_timeout_seconds, default_max_retries, context_schema, inserted_at, updated_at, queue";

/// The columns of an entry (`e`) with its template's code (`t`), as [`EntryRow`] reads them.
pub(crate) const ENTRY_COLS: &str = "e.id, e.job_run_identifier, t.code AS template, e.status, \
    e.priority, e.timeout_seconds, e.max_retries, e.context, e.run_at, e.attempts, \
    e.current_run_id, e.inserted_at, e.updated_at, e.queue";

/// The columns of a run, as [`RunRow`] reads them.
pub(crate) const RUN_COLS: &str = "id, job_run_identifier, template, job_type, retry, process_name, \
    node, node_name, status, result, reason, context, output, started_at, timeout_at, \
    expires_at, ended_at, queue";

/// A point in time: `timestamptz` in PostgreSQL, microseconds since the epoch in SQLite.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[cfg_attr(
    feature = "postgres",
    diesel(postgres_type(oid = 1184, array_oid = 1185))
)]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Long")))]
#[cfg_attr(feature = "mysql", diesel(mysql_type(name = "DateTime")))]
pub(crate) struct DbTime;

/// A JSON document: `jsonb` in PostgreSQL, text in SQLite.
#[derive(
    Debug, Clone, Copy, Default, diesel::sql_types::SqlType, diesel::query_builder::QueryId,
)]
#[cfg_attr(
    feature = "postgres",
    diesel(postgres_type(oid = 3802, array_oid = 3807))
)]
#[cfg_attr(feature = "sqlite", diesel(sqlite_type(name = "Text")))]
#[cfg_attr(feature = "mysql", diesel(mysql_type(name = "String")))]
pub(crate) struct DbJson;

#[cfg(feature = "postgres")]
mod pg_impls {
    use super::*;
    use diesel::pg::{Pg, PgValue};
    use diesel::sql_types::{Jsonb, Timestamptz};

    impl FromSql<DbTime, Pg> for Timestamp {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <Timestamp as FromSql<Timestamptz, Pg>>::from_sql(bytes)
        }
    }

    impl diesel::serialize::ToSql<DbJson, Pg> for Value {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, Pg>,
        ) -> diesel::serialize::Result {
            <Value as diesel::serialize::ToSql<Jsonb, Pg>>::to_sql(self, out)
        }
    }

    impl FromSql<DbJson, Pg> for Value {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            <Value as FromSql<Jsonb, Pg>>::from_sql(bytes)
        }
    }
}

#[cfg(feature = "sqlite")]
mod sqlite_impls {
    use super::*;
    use diesel::sqlite::{Sqlite, SqliteValue};

    impl FromSql<DbTime, Sqlite> for Timestamp {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let us = <i64 as FromSql<BigInt, Sqlite>>::from_sql(value)?;
            chrono::DateTime::from_timestamp_micros(us)
                .ok_or_else(|| format!("timestamp {us} µs is out of range").into())
        }
    }

    impl diesel::serialize::ToSql<DbJson, Sqlite> for Value {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, Sqlite>,
        ) -> diesel::serialize::Result {
            out.set_value(self.to_string());
            Ok(diesel::serialize::IsNull::No)
        }
    }

    impl FromSql<DbJson, Sqlite> for Value {
        fn from_sql(value: SqliteValue<'_, '_, '_>) -> deserialize::Result<Self> {
            let text = <String as FromSql<Text, Sqlite>>::from_sql(value)?;
            Ok(serde_json::from_str(&text)?)
        }
    }
}

#[cfg(feature = "mysql")]
mod mysql_impls {
    use super::*;
    use diesel::mysql::{Mysql, MysqlValue};
    use diesel::sql_types::Datetime;

    /// `DATETIME(6)` holds UTC (every session of the store is UTC; the store writes only
    /// `UTC_TIMESTAMP(6)` and values it read).
    impl FromSql<DbTime, Mysql> for Timestamp {
        fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
            let t = <chrono::NaiveDateTime as FromSql<Datetime, Mysql>>::from_sql(value)?;
            Ok(t.and_utc())
        }
    }

    impl diesel::serialize::ToSql<DbTime, Mysql> for Timestamp {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, Mysql>,
        ) -> diesel::serialize::Result {
            let naive = self.naive_utc();
            <chrono::NaiveDateTime as diesel::serialize::ToSql<Datetime, Mysql>>::to_sql(
                &naive,
                &mut out.reborrow(),
            )
        }
    }

    impl diesel::serialize::ToSql<DbJson, Mysql> for Value {
        fn to_sql<'b>(
            &'b self,
            out: &mut diesel::serialize::Output<'b, '_, Mysql>,
        ) -> diesel::serialize::Result {
            use std::io::Write;
            out.write_all(self.to_string().as_bytes())?;
            Ok(diesel::serialize::IsNull::No)
        }
    }

    impl FromSql<DbJson, Mysql> for Value {
        fn from_sql(value: MysqlValue<'_>) -> deserialize::Result<Self> {
            Ok(serde_json::from_slice(value.as_bytes())?)
        }
    }
}

/// Microseconds since the epoch, as SQLite stores timestamps.
#[cfg(feature = "sqlite")]
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.timestamp_micros()
}

/// A duration in whole microseconds, saturating.
pub(crate) fn duration_us(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::database(format!("unexpected value in the database: {e}")))
}

#[derive(QueryableByName)]
pub(crate) struct TemplateRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    code: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    job_type: String,
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Integer)]
    display_order: i32,
    #[diesel(sql_type = Integer)]
    default_timeout_seconds: i32,
    #[diesel(sql_type = Integer)]
    default_max_retries: i32,
    #[diesel(sql_type = DbJson)]
    context_schema: Value,
    #[diesel(sql_type = DbTime)]
    inserted_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    updated_at: Timestamp,
    #[diesel(sql_type = Text)]
    queue: String,
}

impl From<TemplateRow> for JobTemplate {
    fn from(r: TemplateRow) -> Self {
        JobTemplate {
            id: r.id,
            code: r.code,
            name: r.name,
            job_type: r.job_type,
            active: r.active,
            display_order: r.display_order,
            default_timeout_seconds: r.default_timeout_seconds,
            default_max_retries: r.default_max_retries,
            context_schema: r.context_schema,
            inserted_at: r.inserted_at,
            updated_at: r.updated_at,
            queue: r.queue,
        }
    }
}

#[derive(QueryableByName)]
pub(crate) struct EntryRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) job_run_identifier: String,
    #[diesel(sql_type = Text)]
    template: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Integer)]
    priority: i32,
    #[diesel(sql_type = Integer)]
    timeout_seconds: i32,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = DbJson)]
    context: Value,
    #[diesel(sql_type = DbTime)]
    run_at: Timestamp,
    #[diesel(sql_type = Integer)]
    attempts: i32,
    #[diesel(sql_type = Nullable<BigInt>)]
    current_run_id: Option<i64>,
    #[diesel(sql_type = DbTime)]
    inserted_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    updated_at: Timestamp,
    #[diesel(sql_type = Text)]
    queue: String,
}

impl TryFrom<EntryRow> for QueueEntry {
    type Error = StoreError;
    fn try_from(r: EntryRow) -> Result<Self, StoreError> {
        Ok(QueueEntry {
            id: r.id,
            job_run_identifier: r.job_run_identifier,
            template: r.template,
            status: parse::<EntryStatus>(&r.status)?,
            priority: r.priority,
            timeout_seconds: r.timeout_seconds,
            max_retries: r.max_retries,
            context: r.context,
            run_at: r.run_at,
            attempts: r.attempts,
            current_run_id: r.current_run_id,
            inserted_at: r.inserted_at,
            updated_at: r.updated_at,
            queue: r.queue,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct RunRow {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Text)]
    job_run_identifier: String,
    #[diesel(sql_type = Text)]
    template: String,
    #[diesel(sql_type = Text)]
    job_type: String,
    #[diesel(sql_type = Integer)]
    retry: i32,
    #[diesel(sql_type = Text)]
    process_name: String,
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = Text)]
    node_name: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = Nullable<Text>)]
    result: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    reason: Option<String>,
    #[diesel(sql_type = DbJson)]
    context: Value,
    #[diesel(sql_type = Nullable<DbJson>)]
    output: Option<Value>,
    #[diesel(sql_type = DbTime)]
    started_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    timeout_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    expires_at: Timestamp,
    #[diesel(sql_type = Nullable<DbTime>)]
    ended_at: Option<Timestamp>,
    #[diesel(sql_type = Text)]
    queue: String,
}

impl TryFrom<RunRow> for JobRun {
    type Error = StoreError;
    fn try_from(r: RunRow) -> Result<Self, StoreError> {
        Ok(JobRun {
            id: r.id,
            job_run_identifier: r.job_run_identifier,
            template: r.template,
            job_type: r.job_type,
            retry: r.retry,
            process_name: r.process_name,
            node: r.node,
            node_name: r.node_name,
            status: parse::<RunStatus>(&r.status)?,
            result: r.result.as_deref().map(parse::<RunResult>).transpose()?,
            reason: r.reason,
            context: r.context,
            output: r.output,
            started_at: r.started_at,
            timeout_at: r.timeout_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            queue: r.queue,
        })
    }
}

/// What the database decided for an entry an enqueue inserted: the rest of the entry is
/// the request's own (see `PgStore::enqueue_many`).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
#[derive(QueryableByName)]
pub(crate) struct InsertedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Text)]
    pub(crate) job_run_identifier: String,
    #[diesel(sql_type = DbTime)]
    pub(crate) run_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    pub(crate) inserted_at: Timestamp,
}

/// A run just created by a claim, with what the runtime needs to start it.
#[derive(QueryableByName)]
pub(crate) struct ClaimRow {
    #[diesel(embed)]
    pub(crate) run: RunRow,
    #[diesel(sql_type = Integer)]
    pub(crate) max_retries: i32,
    #[diesel(sql_type = BigInt)]
    pub(crate) template_id: i64,
    #[diesel(sql_type = DbTime)]
    pub(crate) template_updated_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    pub(crate) entry_run_at: Timestamp,
    #[diesel(sql_type = Nullable<Text>)]
    pub(crate) trace_context: Option<String>,
    /// The entry's place in run order (`priority`, `inserted_at`, id): a batch is listed
    /// in it ([`ClaimRow::run_order`]), sorted by the store rather than by the server.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[diesel(sql_type = Integer)]
    pub(crate) priority: i32,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[diesel(sql_type = DbTime)]
    pub(crate) entry_inserted_at: Timestamp,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    #[diesel(sql_type = BigInt)]
    pub(crate) entry_id: i64,
}

impl ClaimRow {
    /// The key that puts a claimed batch in run order.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn run_order(&self) -> (i32, Timestamp, i64) {
        (self.priority, self.entry_inserted_at, self.entry_id)
    }
}

impl TryFrom<ClaimRow> for bildad_core::ClaimedRun {
    type Error = StoreError;
    fn try_from(r: ClaimRow) -> Result<Self, StoreError> {
        Ok(bildad_core::ClaimedRun {
            run: r.run.try_into()?,
            max_retries: r.max_retries,
            template_id: r.template_id,
            template_updated_at: r.template_updated_at,
            entry_run_at: r.entry_run_at,
            trace_context: r.trace_context,
        })
    }
}

#[derive(QueryableByName)]
pub(crate) struct NodeRow {
    #[diesel(sql_type = Text)]
    instance_id: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = DbTime)]
    started_at: Timestamp,
    #[diesel(sql_type = DbTime)]
    last_heartbeat_at: Timestamp,
    #[diesel(sql_type = Nullable<DbTime>)]
    stopped_at: Option<Timestamp>,
}

impl From<NodeRow> for Node {
    fn from(r: NodeRow) -> Self {
        Node {
            instance_id: r.instance_id,
            name: r.name,
            started_at: r.started_at,
            last_heartbeat_at: r.last_heartbeat_at,
            stopped_at: r.stopped_at,
        }
    }
}

/// A running run as the killer and the engine see it.
#[derive(QueryableByName)]
pub(crate) struct RunRefRow {
    #[diesel(sql_type = BigInt)]
    run_id: i64,
    #[diesel(sql_type = Text)]
    job_run_identifier: String,
    #[diesel(sql_type = Integer)]
    retry: i32,
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = Text)]
    queue: String,
}

impl From<RunRefRow> for bildad_core::RunRef {
    fn from(r: RunRefRow) -> Self {
        bildad_core::RunRef {
            run_id: r.run_id,
            job_run_identifier: r.job_run_identifier,
            retry: r.retry,
            node: r.node,
            queue: r.queue,
        }
    }
}

/// What a finalize found: the run it ended, with what the retry rule reads (NULL only on
/// runs from before migration 000005, which a finalize never finds RUNNING).
#[cfg(feature = "postgres")]
#[derive(QueryableByName)]
pub(crate) struct EndedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) run_id: i64,
    #[diesel(sql_type = Integer)]
    pub(crate) retry: i32,
    #[diesel(sql_type = Text)]
    pub(crate) node: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) entry_id: i64,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) max_retries: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub(crate) uncounted_runs: Option<i32>,
    /// When the statement itself requeued the entry (a stop): its new `run_at`.
    #[diesel(sql_type = Nullable<DbTime>)]
    pub(crate) requeued_at: Option<Timestamp>,
}

/// An entry's id and the run it points at.
#[derive(QueryableByName)]
pub(crate) struct EntryRunRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub(crate) current_run_id: Option<i64>,
}

/// A requeued entry and its new `run_at`.
#[cfg(any(feature = "postgres", feature = "mysql"))]
#[derive(QueryableByName)]
pub(crate) struct RequeuedRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
    #[diesel(sql_type = DbTime)]
    pub(crate) run_at: Timestamp,
}

/// Any single count.
#[derive(QueryableByName)]
pub(crate) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) n: i64,
}

/// One bucket of `run_activity`: its number and its runs by result.
#[derive(QueryableByName)]
pub(crate) struct ActivityRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) bucket: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) succeeded: i64,
    #[diesel(sql_type = BigInt)]
    pub(crate) failed: i64,
}

/// Builds a [`RunActivity`] from grouped rows ordered by bucket, as
/// [`RunActivity::record`] would have counted the runs one by one (bucket numbers past
/// `u32::MAX` saturate and merge into one, as there).
pub(crate) fn activity(rows: Vec<ActivityRow>) -> RunActivity {
    let mut out = RunActivity {
        complete: true,
        ..RunActivity::default()
    };
    for r in rows {
        let index = u32::try_from(r.bucket.max(0)).unwrap_or(u32::MAX);
        let (succeeded, failed) = (count(r.succeeded), count(r.failed));
        out.succeeded += succeeded;
        out.failed += failed;
        match out.buckets.last_mut() {
            Some(last) if last.index == index => {
                last.succeeded += succeeded;
                last.failed += failed;
            }
            _ => out.buckets.push(ActivityBucket {
                index,
                succeeded,
                failed,
            }),
        }
    }
    out
}

/// A single id.
#[derive(QueryableByName)]
pub(crate) struct IdRow {
    #[diesel(sql_type = BigInt)]
    pub(crate) id: i64,
}

/// A single text.
#[derive(QueryableByName)]
pub(crate) struct TextRow {
    #[diesel(sql_type = Text)]
    pub(crate) text: String,
}

/// A single timestamp.
#[derive(QueryableByName)]
pub(crate) struct TimeRow {
    #[diesel(sql_type = DbTime)]
    pub(crate) t: Timestamp,
}

/// An entry's status and the number of available entries ahead of it.
#[derive(QueryableByName)]
pub(crate) struct PositionRow {
    #[diesel(sql_type = Text)]
    pub(crate) status: String,
    #[diesel(sql_type = BigInt)]
    pub(crate) ahead: i64,
}

#[derive(QueryableByName)]
pub(crate) struct StatsRow {
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    scheduled: i64,
    #[diesel(sql_type = BigInt)]
    running: i64,
    #[diesel(sql_type = BigInt)]
    succeeded: i64,
    #[diesel(sql_type = BigInt)]
    failed: i64,
    #[diesel(sql_type = BigInt)]
    templates: i64,
}

impl From<StatsRow> for bildad_core::QueueStats {
    fn from(r: StatsRow) -> Self {
        let u = |x: i64| u64::try_from(x).unwrap_or(0);
        bildad_core::QueueStats {
            available: u(r.available),
            scheduled: u(r.scheduled),
            running: u(r.running),
            succeeded: u(r.succeeded),
            failed: u(r.failed),
            templates: u(r.templates),
        }
    }
}

/// Converts a list of rows, failing on the first bad one.
pub(crate) fn convert<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}
