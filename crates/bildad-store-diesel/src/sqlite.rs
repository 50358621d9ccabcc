//! `SqliteStore`: the `JobStore` on embedded SQLite (bundled libsqlite3), for a single
//! node. Connections are diesel-async `SyncConnectionWrapper`s in a deadpool pool; each
//! call runs its synchronous diesel work on the blocking pool, and every multi-statement
//! write is one `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's lock (WAL
//! mode, busy timeout) instead of failing.
//!
//! Timestamps are integer microseconds from SQLite's own clock, read in SQL.

use crate::PoolOptions;
use crate::rows::{
    ActivityRow, CountRow, EntryRow, IdRow, NodeRow, PositionRow, RunRefRow, RunRow, StatsRow,
    TemplateRow, TextRow, TimeRow, activity, convert, duration_us, micros,
};
use crate::shared::{
    EntryAction, Fail, RunEnding, count, db_error, entry_action, entry_not_found, identifier_taken,
    in_request_order, is_foreign_key_violation, is_unique_violation, limit_offset, pool_error,
    prepare_entries, strip_index, template_exists, template_in_use, template_not_found,
};
use async_trait::async_trait;
use bildad_core::{
    ClaimRequest, ClaimedRun, EnqueueListener, EntryFate, EntryFilter, EntryStatus, FailureKind,
    Finalize, FinalizeResult, JobRun, JobStore, JobTemplate, LocalEnqueueSignal, NewEntry,
    NewTemplate, Node, NodeRef, Outcome, Page, PageRequest, QueueEntry, QueueStats, RemoveResult,
    RunActivity, RunFilter, RunId, RunRef, SchemaCache, StopResult, StoreError, StoreResult,
    TemplateFilter, TemplatePatch, Timestamp,
};
use diesel::connection::SimpleConnection;
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Bool, Integer, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection, sql_query};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

type Wrapped = SyncConnectionWrapper<SqliteConnection>;

/// The embedded migrations, in order: (diesel version, up.sql).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261127000001",
        include_str!("../../../migrations/sqlite/2026-11-27-000001_create_bildad/up.sql"),
    ),
    (
        "20261127000002",
        include_str!(
            "../../../migrations/sqlite/2026-11-27-000002_runs_process_name_not_unique/up.sql"
        ),
    ),
    (
        "20261127000003",
        include_str!(
            "../../../migrations/sqlite/2026-11-27-000003_queue_template_reference_checked_by_store/up.sql"
        ),
    ),
];

/// SQLite's clock in microseconds. Its resolution is a millisecond; ties in run order are
/// broken by id. Stable within one statement.
const NOW: &str = "(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)";

/// Applied to every new connection.
const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
    PRAGMA busy_timeout = 5000;
    PRAGMA foreign_keys = ON;
    PRAGMA synchronous = NORMAL;";

const TEMPLATE_COLS: &str = "id, code, name, job_type, active, display_order, \
    default_timeout_seconds, default_max_retries, context_schema, inserted_at, updated_at";

const ENTRY_COLS: &str = "e.id, e.job_run_identifier, t.code AS template, e.status, \
    e.priority, e.timeout_seconds, e.max_retries, e.context, e.run_at, e.attempts, \
    e.current_run_id, e.inserted_at, e.updated_at";

const RUN_COLS: &str = "id, job_run_identifier, template, job_type, retry, process_name, \
    node, node_name, status, result, reason, context, output, started_at, timeout_at, \
    expires_at, ended_at";

/// A `JobStore` on an SQLite file. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct SqliteStore {
    pool: Pool<Wrapped>,
    schemas: Arc<SchemaCache>,
    path: String,
    /// Wake-ups for enqueues through this store (this process): SQLite is the single
    /// embedded node, and it has no LISTEN/NOTIFY.
    enqueued: LocalEnqueueSignal,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("pool", &self.pool.status())
            .finish()
    }
}

type Tx<T> = Result<T, Fail>;

#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = BigInt)]
    template_id: i64,
    #[diesel(sql_type = crate::rows::DbTime)]
    template_updated_at: Timestamp,
}

#[derive(QueryableByName)]
struct EndedRun {
    #[diesel(sql_type = BigInt)]
    run_id: i64,
    #[diesel(sql_type = Integer)]
    retry: i32,
    #[diesel(sql_type = Text)]
    node: String,
    #[diesel(sql_type = BigInt)]
    entry_id: i64,
}

#[derive(QueryableByName)]
struct MaxRetries {
    #[diesel(sql_type = Integer)]
    max_retries: i32,
}

#[derive(QueryableByName)]
struct EntryRun {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    current_run_id: Option<i64>,
}

#[derive(QueryableByName)]
struct NowRow {
    #[diesel(sql_type = BigInt)]
    now: i64,
}

/// What one finalize did, with the run's node (for `stop_entry`).
struct Ended {
    result: FinalizeResult,
    node: Option<String>,
}

/// The file path in a `sqlite://path` / `sqlite:path` URL, or a plain path.
fn path_of(url: &str) -> StoreResult<String> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.is_empty() {
        return Err(StoreError::invalid(
            "/database_url",
            "names no SQLite file: expected sqlite://<path>",
        ));
    }
    Ok(path.to_string())
}

impl SqliteStore {
    /// Opens (creating it if missing) the SQLite file named by `url` — `sqlite://path`,
    /// `sqlite:path` or a plain path — with the default [`PoolOptions`]. Does not migrate:
    /// see [`SqliteStore::migrate`]. `Unavailable` when the file cannot be opened.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PoolOptions::default()).await
    }

    /// Opens the file with `options`. An in-memory database (`sqlite://:memory:`) gets a
    /// single connection, since each connection would see its own database.
    pub async fn connect_with(url: &str, options: PoolOptions) -> StoreResult<Self> {
        let path = path_of(url)?;
        let max_size = if path == ":memory:" {
            1
        } else {
            options.max_size.max(1)
        };
        let mut config = ManagerConfig::<Wrapped>::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|path| {
            let path = path.to_string();
            Box::pin(async move {
                let mut conn = Wrapped::establish(&path).await?;
                conn.batch_execute(PRAGMAS)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                Ok(conn)
            })
        });
        let manager = AsyncDieselConnectionManager::<Wrapped>::new_with_config(&path, config);
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))?;
        let store = Self {
            pool,
            schemas: Default::default(),
            path,
            enqueued: LocalEnqueueSignal::default(),
        };
        drop(store.pool.get().await.map_err(pool_error)?);
        Ok(store)
    }

    /// The database file's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Applies the embedded migrations that this file has not run yet (tracked in
    /// diesel's `__diesel_schema_migrations`), in one `BEGIN IMMEDIATE` transaction.
    pub async fn migrate(&self) -> StoreResult<()> {
        self.write(|c| {
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                    version VARCHAR(50) PRIMARY KEY NOT NULL,
                    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            )?;
            let done: Vec<TextRow> =
                sql_query("SELECT version AS text FROM __diesel_schema_migrations").load(c)?;
            for (version, up) in MIGRATIONS {
                if done.iter().any(|d| d.text == *version) {
                    continue;
                }
                c.batch_execute(up)?;
                sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES (?1)")
                    .bind::<Text, _>(*version)
                    .execute(c)?;
                tracing::info!(version, "applied migration");
            }
            Ok(())
        })
        .await
    }

    /// Closes the pool: later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
    }

    /// Runs `f` on a pooled connection, on the blocking pool.
    async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Tx<R> + Send + 'static,
    ) -> StoreResult<R> {
        let mut conn = self.pool.get().await.map_err(pool_error)?;
        conn.spawn_blocking(move |c| Ok(f(c)))
            .await
            .map_err(db_error)?
            .map_err(|f| f.0)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: all of it or nothing.
    async fn write<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut SqliteConnection) -> Tx<R> + Send + 'static,
    ) -> StoreResult<R> {
        self.run(move |c| c.immediate_transaction(f)).await
    }
}

fn now_us(c: &mut SqliteConnection) -> Tx<i64> {
    Ok(sql_query(format!("SELECT {NOW} AS now"))
        .get_result::<NowRow>(c)?
        .now)
}

fn json_array<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn optional<T>(r: Result<T, DieselError>) -> Tx<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(DieselError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The one conditional step of SPEC §2.4 for each run in turn, inside the caller's
/// transaction (so later duplicates of a run id lose, as if serial).
fn finalize_in(c: &mut SqliteConnection, reqs: &[Finalize]) -> Tx<Vec<Ended>> {
    let now = now_us(c)?;
    let mut out = Vec::with_capacity(reqs.len());
    for req in reqs {
        let end = RunEnding::of(&req.outcome);
        let ended: Option<EndedRun> = optional(
            sql_query(
                "UPDATE bildad_runs
                 SET status = 'DONE', result = ?2, reason = ?3, output = ?4, ended_at = ?5
                 WHERE id = ?1 AND status = 'RUNNING'
                 RETURNING id AS run_id, retry, node, entry_id",
            )
            .bind::<BigInt, _>(req.run_id)
            .bind::<Text, _>(end.result)
            .bind::<Nullable<Text>, _>(end.reason)
            .bind::<Nullable<Text>, _>(end.output.map(|o| o.to_string()))
            .bind::<BigInt, _>(now)
            .get_result(c),
        )?;
        let Some(ended) = ended else {
            out.push(Ended {
                result: FinalizeResult {
                    run_id: req.run_id,
                    won: false,
                    entry: EntryFate::Untouched,
                },
                node: None,
            });
            continue;
        };
        let entry: Option<MaxRetries> = optional(
            sql_query("SELECT max_retries FROM bildad_queue WHERE id = ?1 AND current_run_id = ?2")
                .bind::<BigInt, _>(ended.entry_id)
                .bind::<BigInt, _>(ended.run_id)
                .get_result(c),
        )?;
        let fate = match entry.map(|e| entry_action(req, ended.retry, e.max_retries)) {
            None => EntryFate::Deleted,
            Some(EntryAction::Delete) => {
                sql_query("DELETE FROM bildad_queue WHERE id = ?1")
                    .bind::<BigInt, _>(ended.entry_id)
                    .execute(c)?;
                EntryFate::Deleted
            }
            Some(EntryAction::Requeue { delay_us }) => {
                let row: TimeRow = sql_query(
                    "UPDATE bildad_queue
                     SET status = 'AVAILABLE', current_run_id = NULL, node = NULL,
                         timeout_at = NULL, expires_at = NULL, run_at = ?2 + ?3, updated_at = ?2
                     WHERE id = ?1
                     RETURNING run_at AS t",
                )
                .bind::<BigInt, _>(ended.entry_id)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(delay_us)
                .get_result(c)?;
                EntryFate::Requeued { run_at: row.t }
            }
        };
        out.push(Ended {
            result: FinalizeResult {
                run_id: ended.run_id,
                won: true,
                entry: fate,
            },
            node: Some(ended.node),
        });
    }
    Ok(out)
}

fn entry_run(c: &mut SqliteConnection, identifier: &str) -> Tx<EntryRun> {
    optional(
        sql_query("SELECT id, current_run_id FROM bildad_queue WHERE job_run_identifier = ?1")
            .bind::<Text, _>(identifier)
            .get_result::<EntryRun>(c),
    )?
    .ok_or_else(|| Fail(entry_not_found(identifier)))
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.run(|c| {
            sql_query("SELECT 1").execute(c)?;
            Ok(())
        })
        .await
    }

    async fn now(&self) -> StoreResult<Timestamp> {
        self.run(|c| {
            Ok(sql_query(format!("SELECT {NOW} AS t"))
                .get_result::<TimeRow>(c)?
                .t)
        })
        .await
    }

    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate> {
        new.validate()?;
        self.run(move |c| {
            let row: TemplateRow = sql_query(format!(
                "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
                    default_timeout_seconds, default_max_retries, context_schema,
                    inserted_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, {NOW}, {NOW})
                 RETURNING {TEMPLATE_COLS}"
            ))
            .bind::<Text, _>(&new.code)
            .bind::<Text, _>(&new.name)
            .bind::<Text, _>(&new.job_type)
            .bind::<Bool, _>(new.active)
            .bind::<Integer, _>(new.display_order)
            .bind::<Integer, _>(new.default_timeout_seconds)
            .bind::<Integer, _>(new.default_max_retries)
            .bind::<Text, _>(new.context_schema.to_string())
            .get_result(c)
            .map_err(|e| match e {
                e if is_unique_violation(&e) => Fail(template_exists(&new.code)),
                e => e.into(),
            })?;
            Ok(row.into())
        })
        .await
    }

    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate> {
        let code = code.to_string();
        self.run(move |c| {
            optional(
                sql_query(format!(
                    "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ?1"
                ))
                .bind::<Text, _>(&code)
                .get_result::<TemplateRow>(c),
            )?
            .map(Into::into)
            .ok_or_else(|| Fail(template_not_found(&code)))
        })
        .await
    }

    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate> {
        patch.validate()?;
        let code = code.to_string();
        self.run(move |c| {
            // updated_at names the schema version: it must change even within the
            // clock's resolution.
            optional(
                sql_query(format!(
                    "UPDATE bildad_templates SET
                        name = COALESCE(?2, name),
                        job_type = COALESCE(?3, job_type),
                        context_schema = COALESCE(?4, context_schema),
                        active = COALESCE(?5, active),
                        display_order = COALESCE(?6, display_order),
                        default_timeout_seconds = COALESCE(?7, default_timeout_seconds),
                        default_max_retries = COALESCE(?8, default_max_retries),
                        updated_at = MAX({NOW}, updated_at + 1)
                     WHERE code = ?1
                     RETURNING {TEMPLATE_COLS}"
                ))
                .bind::<Text, _>(&code)
                .bind::<Nullable<Text>, _>(patch.name)
                .bind::<Nullable<Text>, _>(patch.job_type)
                .bind::<Nullable<Text>, _>(patch.context_schema.map(|s| s.to_string()))
                .bind::<Nullable<Bool>, _>(patch.active)
                .bind::<Nullable<Integer>, _>(patch.display_order)
                .bind::<Nullable<Integer>, _>(patch.default_timeout_seconds)
                .bind::<Nullable<Integer>, _>(patch.default_max_retries)
                .get_result::<TemplateRow>(c),
            )?
            .map(Into::into)
            .ok_or_else(|| Fail(template_not_found(&code)))
        })
        .await
    }

    async fn delete_template(&self, code: &str) -> StoreResult<()> {
        let code = code.to_string();
        self.run(move |c| {
            let n = sql_query("DELETE FROM bildad_templates WHERE code = ?1")
                .bind::<Text, _>(&code)
                .execute(c)
                .map_err(|e| match e {
                    e if is_foreign_key_violation(&e) => Fail(template_in_use(&code)),
                    e => e.into(),
                })?;
            if n == 0 {
                return Err(Fail(template_not_found(&code)));
            }
            Ok(())
        })
        .await
    }

    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>> {
        let predicate = match filter {
            TemplateFilter::Active => "active",
            TemplateFilter::Inactive => "NOT active",
            TemplateFilter::All => "1",
        };
        let (limit, offset) = limit_offset(page);
        self.run(move |c| {
            let rows: Vec<TemplateRow> = sql_query(format!(
                "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE {predicate}
                 ORDER BY display_order, code LIMIT ?1 OFFSET ?2"
            ))
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)?;
            let total: CountRow = sql_query(format!(
                "SELECT count(*) AS n FROM bildad_templates WHERE {predicate}"
            ))
            .get_result(c)?;
            Ok(Page::new(
                rows.into_iter().map(Into::into).collect(),
                count(total.n),
                page,
            ))
        })
        .await
    }

    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry> {
        let mut out = self.enqueue_many(vec![new]).await.map_err(strip_index)?;
        Ok(out.remove(0))
    }

    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let codes: Vec<&str> = new.iter().map(|n| n.template.as_str()).collect();
        let codes = json_array(&codes);
        let templates: HashMap<String, JobTemplate> = self
            .run(move |c| {
                let rows: Vec<TemplateRow> = sql_query(format!(
                    "SELECT {TEMPLATE_COLS} FROM bildad_templates
                     WHERE code IN (SELECT value FROM json_each(?1))"
                ))
                .bind::<Text, _>(codes)
                .load(c)?;
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let t = JobTemplate::from(r);
                        (t.code.clone(), t)
                    })
                    .collect())
            })
            .await?;
        let prepared = prepare_entries(&self.schemas, &templates, new)?;
        self.write(move |c| {
            let identifiers: Vec<String> = prepared.iter().map(|p| p.identifier.clone()).collect();
            let wanted = json_array(&identifiers);
            // An identifier with history is taken too (SPEC §2.1; see MemoryStore).
            let taken: Vec<TextRow> = sql_query(
                "SELECT job_run_identifier AS text FROM bildad_queue
                    WHERE job_run_identifier IN (SELECT value FROM json_each(?1))
                 UNION
                 SELECT job_run_identifier FROM bildad_runs
                    WHERE job_run_identifier IN (SELECT value FROM json_each(?1))",
            )
            .bind::<Text, _>(&wanted)
            .load(c)?;
            if let Some(first) = identifiers
                .iter()
                .find(|i| taken.iter().any(|t| &t.text == *i))
            {
                return Err(Fail(identifier_taken(first)));
            }
            let now = now_us(c)?;
            for p in prepared {
                sql_query(
                    "INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
                        timeout_seconds, max_retries, context, run_at, inserted_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, ?8), ?8, ?8)",
                )
                .bind::<Text, _>(&p.identifier)
                .bind::<BigInt, _>(p.template_id)
                .bind::<Integer, _>(p.priority)
                .bind::<Integer, _>(p.timeout_seconds)
                .bind::<Integer, _>(p.max_retries)
                .bind::<Text, _>(p.context.to_string())
                .bind::<Nullable<BigInt>, _>(p.run_at.map(micros))
                .bind::<BigInt, _>(now)
                .execute(c)?;
            }
            let rows: Vec<EntryRow> = sql_query(format!(
                "SELECT {ENTRY_COLS} FROM bildad_queue e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE e.job_run_identifier IN (SELECT value FROM json_each(?1))"
            ))
            .bind::<Text, _>(&wanted)
            .load(c)?;
            Ok(in_request_order(&identifiers, rows)?)
        })
        .await
        .inspect(|_| self.enqueued.notify())
    }

    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry> {
        let identifier = identifier.to_string();
        self.run(move |c| {
            let row = optional(
                sql_query(format!(
                    "SELECT {ENTRY_COLS} FROM bildad_queue e
                     JOIN bildad_templates t ON t.id = e.template_id
                     WHERE e.job_run_identifier = ?1"
                ))
                .bind::<Text, _>(&identifier)
                .get_result::<EntryRow>(c),
            )?;
            Ok(row
                .ok_or_else(|| entry_not_found(&identifier))?
                .try_into()?)
        })
        .await
    }

    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>> {
        let identifier = identifier.to_string();
        self.run(move |c| {
            let row = optional(
                sql_query(
                    "SELECT e.status,
                        (SELECT count(*) FROM bildad_queue o
                         WHERE o.status = 'AVAILABLE'
                           AND (o.priority, o.inserted_at, o.id)
                               < (e.priority, e.inserted_at, e.id)) AS ahead
                     FROM bildad_queue e WHERE e.job_run_identifier = ?1",
                )
                .bind::<Text, _>(&identifier)
                .get_result::<PositionRow>(c),
            )?
            .ok_or_else(|| Fail(entry_not_found(&identifier)))?;
            Ok((row.status == EntryStatus::Available.as_str()).then(|| count(row.ahead) + 1))
        })
        .await
    }

    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        let (limit, offset) = limit_offset(page);
        let status = status.map(|s| s.as_str());
        self.run(move |c| {
            let rows: Vec<EntryRow> = sql_query(format!(
                "SELECT {ENTRY_COLS} FROM bildad_queue e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE (?1 IS NULL OR e.status = ?1)
                 ORDER BY e.priority, e.inserted_at, e.id LIMIT ?2 OFFSET ?3"
            ))
            .bind::<Nullable<Text>, _>(status)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)?;
            let total: CountRow = sql_query(
                "SELECT count(*) AS n FROM bildad_queue WHERE (?1 IS NULL OR status = ?1)",
            )
            .bind::<Nullable<Text>, _>(status)
            .get_result(c)?;
            Ok(Page::new(convert(rows)?, count(total.n), page))
        })
        .await
    }

    async fn list_entries_where(
        &self,
        filter: EntryFilter,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        let Some(template) = filter.template else {
            return self.list_entries(filter.status, page).await;
        };
        let (limit, offset) = limit_offset(page);
        let status = filter.status.map(|s| s.as_str());
        self.run(move |c| {
            let rows: Vec<EntryRow> = sql_query(format!(
                "SELECT {ENTRY_COLS} FROM bildad_queue e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE (?1 IS NULL OR e.status = ?1) AND t.code = ?2
                 ORDER BY e.priority, e.inserted_at, e.id LIMIT ?3 OFFSET ?4"
            ))
            .bind::<Nullable<Text>, _>(status)
            .bind::<Text, _>(&template)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)?;
            let total: CountRow = sql_query(
                "SELECT count(*) AS n FROM bildad_queue e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE (?1 IS NULL OR e.status = ?1) AND t.code = ?2",
            )
            .bind::<Nullable<Text>, _>(status)
            .bind::<Text, _>(&template)
            .get_result(c)?;
            Ok(Page::new(convert(rows)?, count(total.n), page))
        })
        .await
    }

    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult> {
        let identifier = identifier.to_string();
        self.write(move |c| {
            let entry = entry_run(c, &identifier)?;
            if let Some(run_id) = entry.current_run_id {
                finalize_in(
                    c,
                    &[Finalize {
                        run_id,
                        outcome: Outcome::standard(FailureKind::Removed),
                        backoff: bildad_core::Backoff::immediate(),
                    }],
                )?;
            }
            sql_query("DELETE FROM bildad_queue WHERE id = ?1")
                .bind::<BigInt, _>(entry.id)
                .execute(c)?;
            Ok(RemoveResult {
                stopped_run: entry.current_run_id,
            })
        })
        .await
    }

    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult> {
        let identifier = identifier.to_string();
        self.write(move |c| {
            let entry = entry_run(c, &identifier)?;
            let Some(run_id) = entry.current_run_id else {
                return Err(Fail(StoreError::Conflict(format!(
                    "queue entry {identifier:?} is not running"
                ))));
            };
            let ended = finalize_in(
                c,
                &[Finalize {
                    run_id,
                    outcome: Outcome::standard(FailureKind::Stopped),
                    backoff: bildad_core::Backoff::immediate(),
                }],
            )?;
            let node = ended
                .into_iter()
                .next()
                .and_then(|e| e.node)
                .ok_or_else(|| {
                    // The invariant (entry RUNNING ⇔ its run RUNNING) was broken.
                    Fail(StoreError::Database(format!(
                        "run {run_id} of queue entry {identifier:?} is not running"
                    )))
                })?;
            Ok(StopResult { run_id, node })
        })
        .await
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
        if req.limit == 0 || req.job_types.is_empty() {
            return Ok(Vec::new());
        }
        self.write(move |c| {
            let now = now_us(c)?;
            let filter = if req.only_identifier.is_some() {
                "e.job_run_identifier = ?4 AND ?3 IS NOT NULL"
            } else {
                // SQLite refuses a bound parameter that the statement does not name.
                "e.run_at <= ?3 AND ?4 IS NULL"
            };
            let picked: Vec<Picked> = sql_query(format!(
                "SELECT e.id, e.max_retries, t.id AS template_id,
                        t.updated_at AS template_updated_at
                 FROM bildad_queue e
                 JOIN bildad_templates t ON t.id = e.template_id
                 WHERE e.status = 'AVAILABLE' AND {filter}
                   AND t.job_type IN (SELECT value FROM json_each(?1))
                 ORDER BY e.priority, e.inserted_at, e.id
                 LIMIT ?2"
            ))
            .bind::<Text, _>(json_array(&req.job_types))
            .bind::<BigInt, _>(i64::from(req.limit))
            .bind::<BigInt, _>(now)
            .bind::<Nullable<Text>, _>(req.only_identifier.as_deref())
            .load(c)?;
            let grace = duration_us(req.expiry_grace);
            let mut out = Vec::with_capacity(picked.len());
            for p in picked {
                let run: RunRow = sql_query(format!(
                    "INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type,
                        retry, process_name, node, node_name, status, context, started_at,
                        timeout_at, expires_at)
                     SELECT e.id, e.job_run_identifier, t.code, t.job_type, e.attempts,
                            ?2 || '/' || e.job_run_identifier || '/' || e.attempts, ?2, ?3,
                            'RUNNING', e.context, ?4,
                            ?4 + e.timeout_seconds * 1000000,
                            ?4 + e.timeout_seconds * 1000000 + ?5
                     FROM bildad_queue e JOIN bildad_templates t ON t.id = e.template_id
                     WHERE e.id = ?1
                     RETURNING {RUN_COLS}"
                ))
                .bind::<BigInt, _>(p.id)
                .bind::<Text, _>(&req.node.instance_id)
                .bind::<Text, _>(&req.node.name)
                .bind::<BigInt, _>(now)
                .bind::<BigInt, _>(grace)
                .get_result(c)?;
                let run: JobRun = run.try_into()?;
                sql_query(
                    "UPDATE bildad_queue
                     SET status = 'RUNNING', current_run_id = ?2, attempts = attempts + 1,
                         node = ?3, timeout_at = ?4, expires_at = ?5, updated_at = ?6
                     WHERE id = ?1",
                )
                .bind::<BigInt, _>(p.id)
                .bind::<BigInt, _>(run.id)
                .bind::<Text, _>(&run.node)
                .bind::<BigInt, _>(micros(run.timeout_at))
                .bind::<BigInt, _>(micros(run.expires_at))
                .bind::<BigInt, _>(now)
                .execute(c)?;
                out.push(ClaimedRun {
                    run,
                    max_retries: p.max_retries,
                    template_id: p.template_id,
                    template_updated_at: p.template_updated_at,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult> {
        let mut out = self.finalize_many(vec![req]).await?;
        Ok(out.remove(0))
    }

    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let ended = self.write(move |c| finalize_in(c, &reqs)).await?;
        Ok(ended.into_iter().map(|e| e.result).collect())
    }

    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>> {
        let node = node.to_string();
        self.run(move |c| {
            let rows: Vec<RunRefRow> = sql_query(format!(
                "SELECT current_run_id AS run_id, job_run_identifier, attempts - 1 AS retry, node
                 FROM bildad_queue
                 WHERE status = 'RUNNING' AND node = ?1 AND timeout_at < {NOW}
                 ORDER BY current_run_id"
            ))
            .bind::<Text, _>(&node)
            .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }

    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>> {
        let dead_after = duration_us(node_dead_after);
        self.run(move |c| {
            let now = now_us(c)?;
            let rows: Vec<RunRefRow> = sql_query(
                "SELECT current_run_id AS run_id, job_run_identifier, attempts - 1 AS retry, node
                 FROM bildad_queue
                 WHERE status = 'RUNNING' AND expires_at < ?1
                 UNION
                 SELECT e.current_run_id, e.job_run_identifier, e.attempts - 1, e.node
                 FROM bildad_nodes n
                 JOIN bildad_queue e ON e.node = n.instance_id AND e.status = 'RUNNING'
                 WHERE n.stopped_at IS NOT NULL OR n.last_heartbeat_at < ?1 - ?2
                 ORDER BY run_id",
            )
            .bind::<BigInt, _>(now)
            .bind::<BigInt, _>(dead_after)
            .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }

    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let ids = json_array(runs);
        self.run(move |c| {
            let rows: Vec<IdRow> = sql_query(
                "SELECT CAST(j.value AS INTEGER) AS id FROM json_each(?1) j
                 WHERE NOT EXISTS (SELECT 1 FROM bildad_runs r
                                   WHERE r.id = CAST(j.value AS INTEGER)
                                     AND r.status = 'RUNNING')
                 ORDER BY j.key",
            )
            .bind::<Text, _>(ids)
            .load(c)?;
            Ok(rows.into_iter().map(|r| r.id).collect())
        })
        .await
    }

    async fn get_run(&self, id: RunId) -> StoreResult<JobRun> {
        self.run(move |c| {
            let row = optional(
                sql_query(format!("SELECT {RUN_COLS} FROM bildad_runs WHERE id = ?1"))
                    .bind::<BigInt, _>(id)
                    .get_result::<RunRow>(c),
            )?;
            Ok(row
                .ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
                .try_into()?)
        })
        .await
    }

    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>> {
        const WHERE: &str = "(?1 IS NULL OR job_run_identifier = ?1)
            AND (?2 IS NULL OR status = ?2)
            AND (?3 IS NULL OR result = ?3)
            AND (?4 IS NULL OR template = ?4)
            AND (?5 IS NULL OR node = ?5 OR node_name = ?5)";
        let (limit, offset) = limit_offset(page);
        let status = filter.status.map(|s| s.as_str());
        let result = filter.result.map(|s| s.as_str());
        self.run(move |c| {
            let rows: Vec<RunRow> = sql_query(format!(
                "SELECT {RUN_COLS} FROM bildad_runs WHERE {WHERE}
                 ORDER BY started_at DESC, id DESC LIMIT ?6 OFFSET ?7"
            ))
            .bind::<Nullable<Text>, _>(&filter.identifier)
            .bind::<Nullable<Text>, _>(status)
            .bind::<Nullable<Text>, _>(result)
            .bind::<Nullable<Text>, _>(&filter.template)
            .bind::<Nullable<Text>, _>(&filter.node)
            .bind::<BigInt, _>(limit)
            .bind::<BigInt, _>(offset)
            .load(c)?;
            let total: CountRow = sql_query(format!(
                "SELECT count(*) AS n FROM bildad_runs WHERE {WHERE}"
            ))
            .bind::<Nullable<Text>, _>(&filter.identifier)
            .bind::<Nullable<Text>, _>(status)
            .bind::<Nullable<Text>, _>(result)
            .bind::<Nullable<Text>, _>(&filter.template)
            .bind::<Nullable<Text>, _>(&filter.node)
            .get_result(c)?;
            Ok(Page::new(convert(rows)?, count(total.n), page))
        })
        .await
    }

    async fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity> {
        // One grouped query on integer microseconds: the bucket of a run is
        // floor(ms since `since`) / bucket ms, exactly as `RunActivity::record` computes it.
        let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
        self.run(move |c| {
            let rows: Vec<ActivityRow> = sql_query(
                "SELECT (max(ended_at - ?1, 0) / 1000) / ?2 AS bucket,
                        sum(result = 'SUCCEEDED') AS succeeded,
                        sum(result = 'FAILED') AS failed
                 FROM bildad_runs
                 WHERE status = 'DONE' AND started_at >= ?1
                   AND result IS NOT NULL AND ended_at IS NOT NULL
                 GROUP BY 1 ORDER BY 1",
            )
            .bind::<BigInt, _>(micros(since))
            .bind::<BigInt, _>(bucket_ms)
            .load(c)?;
            Ok(activity(rows))
        })
        .await
    }

    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64> {
        self.run(move |c| {
            let n = sql_query("DELETE FROM bildad_runs WHERE status = 'DONE' AND ended_at < ?1")
                .bind::<BigInt, _>(micros(older_than))
                .execute(c)?;
            Ok(n as u64)
        })
        .await
    }

    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()> {
        let node = node.clone();
        self.run(move |c| {
            sql_query(format!(
                "INSERT INTO bildad_nodes (instance_id, name, started_at, last_heartbeat_at)
                 VALUES (?1, ?2, {NOW}, {NOW})
                 ON CONFLICT (instance_id) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at"
            ))
            .bind::<Text, _>(&node.instance_id)
            .bind::<Text, _>(&node.name)
            .execute(c)?;
            Ok(())
        })
        .await
    }

    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()> {
        let instance_id = instance_id.to_string();
        self.run(move |c| {
            sql_query(format!(
                "UPDATE bildad_nodes SET stopped_at = {NOW} WHERE instance_id = ?1"
            ))
            .bind::<Text, _>(&instance_id)
            .execute(c)?;
            Ok(())
        })
        .await
    }

    async fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        self.run(|c| {
            let rows: Vec<NodeRow> = sql_query(
                "SELECT instance_id, name, started_at, last_heartbeat_at, stopped_at
                 FROM bildad_nodes ORDER BY last_heartbeat_at DESC",
            )
            .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
    }

    /// Wakes for enqueues through this store instance only (and its clones): the
    /// embedded node's own HTTP API and library calls, not another process on the file.
    async fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
        Ok(Some(self.enqueued.listener()))
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        self.run(|c| {
            let now = now_us(c)?;
            let row: StatsRow = sql_query(
                "SELECT
                    (SELECT count(*) FROM bildad_queue
                     WHERE status = 'AVAILABLE' AND run_at <= ?1) AS available,
                    (SELECT count(*) FROM bildad_queue
                     WHERE status = 'AVAILABLE' AND run_at > ?1) AS scheduled,
                    (SELECT count(*) FROM bildad_queue WHERE status = 'RUNNING') AS running,
                    (SELECT count(*) FROM bildad_runs WHERE result = 'SUCCEEDED') AS succeeded,
                    (SELECT count(*) FROM bildad_runs WHERE result = 'FAILED') AS failed,
                    (SELECT count(*) FROM bildad_templates) AS templates",
            )
            .bind::<BigInt, _>(now)
            .get_result(c)?;
            Ok(row.into())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_path() {
        assert_eq!(path_of("sqlite://data/b.db").unwrap(), "data/b.db");
        assert_eq!(path_of("sqlite:///tmp/b.db").unwrap(), "/tmp/b.db");
        assert_eq!(path_of("sqlite:b.db").unwrap(), "b.db");
        assert_eq!(path_of("b.db").unwrap(), "b.db");
        assert!(path_of("sqlite://").is_err());
    }
}
