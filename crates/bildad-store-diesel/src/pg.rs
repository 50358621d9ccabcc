//! `PgStore`: the `JobStore` on PostgreSQL, through diesel-async's pure-Rust driver
//! (tokio-postgres; no libpq) and a deadpool pool.
//!
//! Every timestamp is the database's `now()`. The claim is one statement (a
//! data-modifying CTE with `FOR UPDATE SKIP LOCKED`); finalizes are batched by explicit
//! run ids with `unnest`, guarded by `status = 'RUNNING'` on the run.

use crate::PoolOptions;
use crate::rows::{
    ActivityRow, ClaimRow, CountRow, EndedRow, EntryRow, EntryRunRow, IdRow, InsertedRow, NodeRow,
    PositionRow, RequeuedRow, RunRefRow, RunRow, StatsRow, TemplateRow, TextRow, TimeRow, activity,
    convert, duration_us,
};
use crate::shared::{
    EntryAction, Fail, RunEnding, count, db_error, entry_action, entry_not_found, identifier_taken,
    is_not_null_violation, is_unique_violation, limit_offset, pool_error, prepare_entries,
    strip_index, template_exists, template_in_use, template_not_found,
};
use async_trait::async_trait;
use bildad_core::{
    ClaimRequest, ClaimedRun, Disposition, EnqueueListener, EntryFate, EntryFilter, EntryStatus,
    FailureKind, Finalize, FinalizeResult, JobRun, JobStore, JobTemplate, NewEntry, NewTemplate,
    Node, NodeRef, Outcome, Page, PageRequest, QueueEntry, QueueStats, RemoveResult, RunActivity,
    RunFilter, RunId, RunRef, SchemaCache, StopResult, StoreError, StoreResult, TemplateFilter,
    TemplatePatch, Timestamp, Violation,
};
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::Error as DieselError;
use diesel::sql_query;
use diesel::sql_types::{
    Array, BigInt, Bool, Integer, Jsonb, Nullable, SmallInt, Text, Timestamptz,
};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use std::collections::HashMap;
use std::time::Duration;

/// The embedded migrations, in order: (diesel version, up.sql).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261127000001",
        include_str!("../../../migrations/postgres/2026-11-27-000001_create_bildad/up.sql"),
    ),
    (
        "20261127000002",
        include_str!(
            "../../../migrations/postgres/2026-11-27-000002_runs_process_name_not_unique/up.sql"
        ),
    ),
    (
        "20261127000003",
        include_str!(
            "../../../migrations/postgres/2026-11-27-000003_queue_template_reference_checked_by_store/up.sql"
        ),
    ),
];

/// Serialises concurrent `migrate()` calls of several nodes (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x6269_6c64_6164;

const TEMPLATE_COLS: &str = "id, code, name, job_type, active, display_order, \
    default_timeout_seconds, default_max_retries, context_schema, inserted_at, updated_at";

const ENTRY_COLS: &str = "e.id, e.job_run_identifier, t.code AS template, e.status, \
    e.priority, e.timeout_seconds, e.max_retries, e.context, e.run_at, e.attempts, \
    e.current_run_id, e.inserted_at, e.updated_at";

const RUN_COLS: &str = "id, job_run_identifier, template, job_type, retry, process_name, \
    node, node_name, status, result, reason, context, output, started_at, timeout_at, \
    expires_at, ended_at";

/// The claim, one statement: pick (skipping rows other claims hold), insert the runs,
/// point the entries at them from the runs' RETURNING (a CTE cannot update a row twice).
/// `{filter}` is one of two constant predicates.
const CLAIM: &str = "
WITH picked AS (
    SELECT e.id, e.job_run_identifier, e.attempts, e.context, e.timeout_seconds,
           e.max_retries, e.priority, e.inserted_at,
           t.id AS template_id, t.code, t.job_type, t.updated_at AS template_updated_at
    FROM bildad_queue e
    JOIN bildad_templates t ON t.id = e.template_id
    WHERE e.status = 'AVAILABLE' AND {filter} AND t.job_type = ANY($1)
    ORDER BY e.priority, e.inserted_at, e.id
    LIMIT $2
    FOR UPDATE OF e SKIP LOCKED
), started AS (
    INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry,
        process_name, node, node_name, status, context, started_at, timeout_at, expires_at)
    SELECT p.id, p.job_run_identifier, p.code, p.job_type, p.attempts,
           $3 || '/' || p.job_run_identifier || '/' || p.attempts, $3, $4, 'RUNNING',
           p.context, now(),
           now() + p.timeout_seconds * interval '1 second',
           now() + p.timeout_seconds * interval '1 second' + $5 * interval '1 microsecond'
    FROM picked p
    RETURNING *
), claimed AS (
    UPDATE bildad_queue e
    SET status = 'RUNNING', current_run_id = s.id, attempts = e.attempts + 1,
        node = s.node, timeout_at = s.timeout_at, expires_at = s.expires_at,
        updated_at = now()
    FROM started s
    WHERE e.id = s.entry_id
    RETURNING s.id, s.job_run_identifier, s.template, s.job_type, s.retry, s.process_name,
        s.node, s.node_name, s.status, s.result, s.reason, s.context, s.output,
        s.started_at, s.timeout_at, s.expires_at, s.ended_at,
        e.max_retries, e.template_id, e.priority, e.inserted_at, e.id AS entry_id
)
-- From the UPDATE's RETURNING, not a join of `started` with `picked`: without hash joins
-- (see CLAIM_PLANNER) that join would compare every pair, 250,000 for a batch of 500.
SELECT c.id, c.job_run_identifier, c.template, c.job_type, c.retry, c.process_name,
       c.node, c.node_name, c.status, c.result, c.reason, c.context, c.output,
       c.started_at, c.timeout_at, c.expires_at, c.ended_at,
       c.max_retries, c.template_id, t.updated_at AS template_updated_at
FROM claimed c
JOIN bildad_templates t ON t.id = c.template_id
ORDER BY c.priority, c.inserted_at, c.entry_id";

/// Planner settings for the claim's transaction. The queue's statistics are usually wrong
/// (a burst of enqueues after the last ANALYZE; a fresh table has none): the planner
/// then expects one available entry, and picks a bitmap scan of *every* available entry
/// plus a sort (spilling to disk with the contexts) before the LIMIT, and a hash of the
/// whole queue for the UPDATE — work proportional to the queue on every claim, 80 ms a
/// claim of 500 with 20,000 entries. Without sorts, bitmaps and hash or merge joins, the
/// only plan left walks `bildad_queue_claim` in run order, stops at the LIMIT, and
/// probes primary keys: proportional to the batch, whatever the statistics say.
/// A disabled node type costs 10^10, which would make PostgreSQL JIT-compile the
/// statement (0.7 s a claim): hence `jit = off`.
/// (The claim's own connections have them for the session: [`CLAIM_SESSION`]; the
/// explain helper sends these.)
#[cfg_attr(not(feature = "testing"), allow(dead_code))]
const CLAIM_PLANNER: &str = "SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; \
    SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off";

/// [`CLAIM_PLANNER`] for a whole session: run once on each connection of the claim pool,
/// which serves nothing but [`CLAIM`], so that each claim is one statement in one round
/// trip — no BEGIN, no `SET LOCAL`, no COMMIT — and the other statements keep the
/// planner's defaults on their own pool.
const CLAIM_SESSION: &str = "SET enable_sort = off; SET enable_bitmapscan = off; \
    SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off";

/// Connections of the claim pool (at most this many; never more than the main pool's).
const CLAIM_CONNECTIONS: usize = 2;

/// Ends runs by explicit id, only those still RUNNING, and in the same statement settles
/// the entries whose fate does not depend on the run's retry: `$5` is per run
/// [`SETTLE_DELETE`] (success, removed, invalid, permanent), [`SETTLE_REQUEUE_NOW`] (stopped)
/// or [`SETTLE_LATER`] (the retry rule: the caller decides from `retry` and `max_retries`,
/// in the same transaction). Only entries that still point at their run are touched.
/// Every row reports the entry as it was before the statement (`entry_id`, `max_retries`)
/// and, for a requeue, its new `run_at`.
///
/// The CTEs read the snapshot from before the statement, so the final `LEFT JOIN` sees
/// the entries even when `settled` deleted them.
const END_RUNS: &str = "
WITH i AS (
    SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::jsonb[], $5::int2[])
        AS i(id, result, reason, output, settle)
), ended AS (
    UPDATE bildad_runs r
    SET status = 'DONE', result = i.result, reason = i.reason, output = i.output,
        ended_at = now()
    FROM i
    WHERE r.id = i.id AND r.status = 'RUNNING'
    RETURNING r.id, r.retry, r.node, r.entry_id, i.settle
), deleted AS (
    DELETE FROM bildad_queue e
    USING ended d
    WHERE d.settle = 0 AND e.id = d.entry_id AND e.current_run_id = d.id
), requeued AS (
    UPDATE bildad_queue e
    SET status = 'AVAILABLE', current_run_id = NULL, node = NULL, timeout_at = NULL,
        expires_at = NULL, run_at = now(), updated_at = now()
    FROM ended d
    WHERE d.settle = 1 AND e.id = d.entry_id AND e.current_run_id = d.id
    RETURNING e.id, e.run_at
)
SELECT d.id AS run_id, d.retry, d.node, e.id AS entry_id, e.max_retries,
       q.run_at AS requeued_at
FROM ended d
LEFT JOIN bildad_queue e ON e.id = d.entry_id AND e.current_run_id = d.id
LEFT JOIN requeued q ON q.id = d.entry_id";

/// `END_RUNS`' `settle`: delete the entry.
const SETTLE_DELETE: i16 = 0;
/// `END_RUNS`' `settle`: requeue the entry now.
const SETTLE_REQUEUE_NOW: i16 = 1;
/// `END_RUNS`' `settle`: the retry rule, decided after the statement.
const SETTLE_LATER: i16 = 2;

/// The killer's lookup: this node's runs past `timeout_at`, on the entries table.
const KILL: &str = "
SELECT current_run_id AS run_id, job_run_identifier, attempts - 1 AS retry, node
FROM bildad_queue
WHERE status = 'RUNNING' AND node = $1 AND timeout_at < now()
ORDER BY current_run_id";

/// The engine's expiry lookup: runs past `expires_at`, and runs of dead or stopped node
/// instances, on the entries table.
const EXPIRE: &str = "
SELECT current_run_id AS run_id, job_run_identifier, attempts - 1 AS retry, node
FROM bildad_queue
WHERE status = 'RUNNING' AND expires_at < now()
UNION
SELECT e.current_run_id, e.job_run_identifier, e.attempts - 1, e.node
FROM bildad_nodes n
JOIN bildad_queue e ON e.node = n.instance_id AND e.status = 'RUNNING'
WHERE n.stopped_at IS NOT NULL
   OR n.last_heartbeat_at < now() - $1 * interval '1 microsecond'
ORDER BY run_id";

const REQUEUE: &str = "
UPDATE bildad_queue e
SET status = 'AVAILABLE', current_run_id = NULL, node = NULL, timeout_at = NULL,
    expires_at = NULL, run_at = now() + d.delay * interval '1 microsecond',
    updated_at = now()
FROM unnest($1::int8[], $2::int8[]) AS d(id, delay)
WHERE e.id = d.id
RETURNING e.id, e.run_at";

/// A raw SQL statement (`sql_query` with its binds) that the connection prepares once
/// and reuses: diesel refuses to cache `sql_query` statements because their text may be
/// built at run time, which would grow the cache without bound. Only wrap statements
/// whose text is one of a few constants (the hot paths: claim, finalize, expiry, kill,
/// heartbeat, enqueue); each then costs one round trip (bind + execute) instead of two
/// (parse + describe, then bind + execute). The cache is per connection, keyed by the
/// SQL text and the bind types.
#[derive(Debug, Clone)]
struct Cached<Q>(Q);

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Cached<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> diesel::QueryResult<()> {
        self.0.walk_ast(out)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> QueryId for Cached<Q> {
    type QueryId = ();
    // No static id: the cache is keyed by the SQL text.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: Query> Query for Cached<Q> {
    type SqlType = Q::SqlType;
}

/// A `JobStore` on PostgreSQL. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    /// Connections for [`CLAIM`] only, with [`CLAIM_SESSION`]'s planner settings.
    claim_pool: Pool<AsyncPgConnection>,
    schemas: std::sync::Arc<SchemaCache>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// What one finalize did, with the run's node (for `stop_entry`).
struct Ended {
    result: FinalizeResult,
    node: Option<String>,
}

impl PgStore {
    /// Connects with the default [`PoolOptions`]. `Unavailable` when the server cannot
    /// be reached; `Invalid` for a malformed URL. Does not migrate: see [`PgStore::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PoolOptions::default()).await
    }

    /// Connects with `options` and checks that one connection can be opened.
    pub async fn connect_with(url: &str, options: PoolOptions) -> StoreResult<Self> {
        if url.parse::<tokio_postgres_config::Config>().is_err() {
            return Err(StoreError::invalid(
                "/database_url",
                "is not a valid PostgreSQL connection URL",
            ));
        }
        let build = |config: ManagerConfig<AsyncPgConnection>, max_size: usize| {
            let manager =
                AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
            Pool::builder(manager)
                .max_size(max_size)
                .wait_timeout(Some(options.wait_timeout))
                .create_timeout(Some(options.connect_timeout))
                .recycle_timeout(Some(options.connect_timeout))
                .runtime(deadpool::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Database(format!("cannot build the connection pool: {e}")))
        };
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let pool = build(config, options.max_size.max(1))?;
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(CLAIM_SESSION)
                    .await
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(conn)
            })
        });
        let claim_pool = build(config, CLAIM_CONNECTIONS.min(options.max_size.max(1)))?;
        let store = Self {
            pool,
            claim_pool,
            schemas: Default::default(),
        };
        drop(store.conn().await?);
        Ok(store)
    }

    /// Applies the embedded migrations that this database has not run yet (tracked in
    /// diesel's `__diesel_schema_migrations`), each in its own transaction. Several nodes
    /// may call it at once: an advisory lock serialises them.
    pub async fn migrate(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        conn.transaction::<_, Fail, _>(async |c| {
            sql_query("SELECT pg_advisory_xact_lock($1)")
                .bind::<BigInt, _>(MIGRATION_LOCK)
                .execute(c)
                .await?;
            c.batch_execute(
                "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                    version VARCHAR(50) PRIMARY KEY NOT NULL,
                    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)",
            )
            .await?;
            let done: Vec<TextRow> =
                sql_query("SELECT version AS text FROM __diesel_schema_migrations")
                    .load(c)
                    .await?;
            for (version, up) in MIGRATIONS {
                if done.iter().any(|d| d.text == *version) {
                    continue;
                }
                c.batch_execute(up).await?;
                sql_query("INSERT INTO __diesel_schema_migrations (version) VALUES ($1)")
                    .bind::<Text, _>(*version)
                    .execute(c)
                    .await?;
                tracing::info!(version, "applied migration");
            }
            Ok(())
        })
        .await
        .map_err(|f| f.0)
    }

    /// Closes the pool: later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
        self.claim_pool.close();
    }

    async fn conn(&self) -> StoreResult<Object<AsyncPgConnection>> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Reads an entry's id and current run.
    async fn entry_run(conn: &mut AsyncPgConnection, identifier: &str) -> StoreResult<EntryRunRow> {
        sql_query("SELECT id, current_run_id FROM bildad_queue WHERE job_run_identifier = $1")
            .bind::<Text, _>(identifier)
            .get_result::<EntryRunRow>(conn)
            .await
            .map_err(|e| match e {
                DieselError::NotFound => entry_not_found(identifier),
                e => db_error(e),
            })
    }
}

#[cfg(feature = "testing")]
impl PgStore {
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the hot paths — claim, kill, expiry, finalize — with
    /// their real SQL, inside a transaction that is rolled back (nothing changes).
    pub(crate) async fn explain_hot_paths(
        &self,
        job_types: Vec<String>,
        node: String,
    ) -> StoreResult<Vec<(&'static str, String)>> {
        #[derive(diesel::QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = Text)]
            #[diesel(column_name = "QUERY PLAN")]
            line: String,
        }
        fn text(lines: Vec<PlanLine>) -> String {
            lines
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n")
        }
        let mut conn = self.conn().await?;
        // Manual BEGIN … ROLLBACK: EXPLAIN ANALYZE executes the writes.
        conn.batch_execute("BEGIN").await.map_err(db_error)?;
        let plans = async {
            let c = &mut *conn;
            let mut out = Vec::new();
            let claim = CLAIM.replace("{filter}", "e.run_at <= now()");
            // As `claim` runs it: with the planner settings of its transaction.
            c.batch_execute(CLAIM_PLANNER).await?;
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {claim}"))
                    .bind::<Array<Text>, _>(&job_types)
                    .bind::<BigInt, _>(500_i64)
                    .bind::<Text, _>(&node)
                    .bind::<Text, _>("explain")
                    .bind::<BigInt, _>(600_000_000_i64)
                    .load(c)
                    .await?;
            out.push(("claim (500 entries)", text(lines)));
            c.batch_execute(
                "RESET enable_sort; RESET enable_bitmapscan; RESET enable_hashjoin; \
                 RESET enable_mergejoin; RESET jit",
            )
            .await?;
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {KILL}"))
                    .bind::<Text, _>(&node)
                    .load(c)
                    .await?;
            out.push(("kill (runs_to_kill)", text(lines)));
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {EXPIRE}"))
                    .bind::<BigInt, _>(60_000_000_i64)
                    .load(c)
                    .await?;
            out.push(("expiry (runs_to_expire)", text(lines)));
            let running: Vec<IdRow> = sql_query(
                "SELECT current_run_id AS id FROM bildad_queue
                     WHERE status = 'RUNNING' ORDER BY id LIMIT 500",
            )
            .load(c)
            .await?;
            let ids: Vec<i64> = running.into_iter().map(|r| r.id).collect();
            let n = ids.len();
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {END_RUNS}"))
                    .bind::<Array<BigInt>, _>(ids)
                    .bind::<Array<Text>, _>(vec!["SUCCEEDED"; n])
                    .bind::<Array<Nullable<Text>>, _>(vec![None::<String>; n])
                    .bind::<Array<Nullable<Jsonb>>, _>(vec![None::<serde_json::Value>; n])
                    .bind::<Array<SmallInt>, _>(vec![SETTLE_DELETE; n])
                    .load(c)
                    .await?;
            out.push((
                "finalize: end runs by id and delete their entries (500 runs)",
                text(lines),
            ));
            Ok::<_, Fail>(out)
        }
        .await;
        conn.batch_execute("ROLLBACK").await.map_err(db_error)?;
        plans.map_err(|f| f.0)
    }
}

/// Parses URLs the way tokio-postgres will, so a malformed URL is `Invalid`, not
/// `Unavailable`.
mod tokio_postgres_config {
    pub(crate) use tokio_postgres::Config;
}

/// How `END_RUNS` settles the entry of a run this request ends.
fn settle_of(req: &Finalize) -> i16 {
    let disposition = match &req.outcome {
        Outcome::Succeeded { .. } => Disposition::Delete,
        Outcome::Failed { kind, .. } => kind.disposition(),
    };
    match disposition {
        Disposition::Delete => SETTLE_DELETE,
        Disposition::RequeueNow => SETTLE_REQUEUE_NOW,
        Disposition::RetryRule => SETTLE_LATER,
    }
}

/// True when a batch needs a transaction: a retry-rule failure is settled by a second
/// statement, which must commit with the first. Any other batch is one statement.
fn needs_transaction(reqs: &[Finalize]) -> bool {
    reqs.iter().any(|r| settle_of(r) == SETTLE_LATER)
}

/// The one conditional step of SPEC §2.4 for a batch of runs: one statement (`END_RUNS`)
/// when no request follows the retry rule, else at most three, which the caller must run
/// inside a transaction (see [`needs_transaction`]).
async fn finalize_in(c: &mut AsyncPgConnection, reqs: &[Finalize]) -> Result<Vec<Ended>, Fail> {
    // A run id given twice: the first finalize decides, later ones lose (as if serial).
    let mut first: HashMap<RunId, usize> = HashMap::with_capacity(reqs.len());
    for (i, r) in reqs.iter().enumerate() {
        first.entry(r.run_id).or_insert(i);
    }
    // Rows are locked in run-id order, so that concurrent batches (a node's finalizer,
    // another node's expiry, an operator's stop) cannot deadlock on each other.
    let mut order: Vec<usize> = first.values().copied().collect();
    order.sort_unstable_by_key(|&i| reqs[i].run_id);
    let n = order.len();
    let (mut ids, mut results, mut reasons, mut outputs, mut settles) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for i in order {
        let r = &reqs[i];
        let end = RunEnding::of(&r.outcome);
        ids.push(r.run_id);
        results.push(end.result);
        reasons.push(end.reason);
        outputs.push(end.output);
        settles.push(settle_of(r));
    }
    let ended: Vec<EndedRow> = Cached(
        sql_query(END_RUNS)
            .bind::<Array<BigInt>, _>(ids)
            .bind::<Array<Text>, _>(results)
            .bind::<Array<Nullable<Text>>, _>(reasons)
            .bind::<Array<Nullable<Jsonb>>, _>(outputs)
            .bind::<Array<SmallInt>, _>(settles),
    )
    .load(c)
    .await?;

    let mut out: Vec<Ended> = reqs
        .iter()
        .map(|r| Ended {
            result: FinalizeResult {
                run_id: r.run_id,
                won: false,
                entry: EntryFate::Untouched,
            },
            node: None,
        })
        .collect();
    let (mut delete, mut requeue, mut delays) = (vec![], vec![], vec![]);
    let mut requeued_slot: HashMap<i64, usize> = HashMap::new();
    for row in ended {
        let slot = first[&row.run_id];
        out[slot].result.won = true;
        out[slot].node = Some(row.node);
        out[slot].result.entry = match row.requeued_at {
            Some(run_at) => EntryFate::Requeued { run_at },
            None => EntryFate::Deleted,
        };
        if settle_of(&reqs[slot]) != SETTLE_LATER {
            continue; // settled by END_RUNS itself
        }
        let (Some(entry_id), Some(max_retries)) = (row.entry_id, row.max_retries) else {
            continue;
        };
        match entry_action(&reqs[slot], row.retry, max_retries) {
            EntryAction::Delete => delete.push(entry_id),
            EntryAction::Requeue { delay_us } => {
                requeue.push(entry_id);
                delays.push(delay_us);
                requeued_slot.insert(entry_id, slot);
            }
        }
    }
    if !delete.is_empty() {
        sql_query("DELETE FROM bildad_queue WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(delete)
            .execute(c)
            .await?;
    }
    if !requeue.is_empty() {
        let rows: Vec<RequeuedRow> = Cached(
            sql_query(REQUEUE)
                .bind::<Array<BigInt>, _>(requeue)
                .bind::<Array<BigInt>, _>(delays),
        )
        .load(c)
        .await?;
        for r in rows {
            out[requeued_slot[&r.id]].result.entry = EntryFate::Requeued { run_at: r.run_at };
        }
    }
    Ok(out)
}

#[async_trait]
impl JobStore for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn now(&self) -> StoreResult<Timestamp> {
        let mut conn = self.conn().await?;
        let row: TimeRow = sql_query("SELECT now() AS t")
            .get_result(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(row.t)
    }

    async fn create_template(&self, new: NewTemplate) -> StoreResult<JobTemplate> {
        new.validate()?;
        let mut conn = self.conn().await?;
        let row: TemplateRow = sql_query(format!(
            "INSERT INTO bildad_templates (code, name, job_type, active, display_order,
                default_timeout_seconds, default_max_retries, context_schema,
                inserted_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now())
             RETURNING {TEMPLATE_COLS}"
        ))
        .bind::<Text, _>(&new.code)
        .bind::<Text, _>(&new.name)
        .bind::<Text, _>(&new.job_type)
        .bind::<Bool, _>(new.active)
        .bind::<Integer, _>(new.display_order)
        .bind::<Integer, _>(new.default_timeout_seconds)
        .bind::<Integer, _>(new.default_max_retries)
        .bind::<Jsonb, _>(&new.context_schema)
        .get_result(&mut conn)
        .await
        .map_err(|e| match e {
            e if is_unique_violation(&e) => template_exists(&new.code),
            e => db_error(e),
        })?;
        Ok(row.into())
    }

    async fn get_template(&self, code: &str) -> StoreResult<JobTemplate> {
        let mut conn = self.conn().await?;
        let row: Option<TemplateRow> = Cached(
            sql_query(format!(
                "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = $1"
            ))
            .bind::<Text, _>(code),
        )
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
        row.map(Into::into).ok_or_else(|| template_not_found(code))
    }

    async fn update_template(&self, code: &str, patch: TemplatePatch) -> StoreResult<JobTemplate> {
        patch.validate()?;
        let mut conn = self.conn().await?;
        // updated_at names the schema version: it must change even within a microsecond.
        let row: Option<TemplateRow> = sql_query(format!(
            "UPDATE bildad_templates SET
                name = COALESCE($2, name),
                job_type = COALESCE($3, job_type),
                context_schema = COALESCE($4, context_schema),
                active = COALESCE($5, active),
                display_order = COALESCE($6, display_order),
                default_timeout_seconds = COALESCE($7, default_timeout_seconds),
                default_max_retries = COALESCE($8, default_max_retries),
                updated_at = greatest(now(), updated_at + interval '1 microsecond')
             WHERE code = $1
             RETURNING {TEMPLATE_COLS}"
        ))
        .bind::<Text, _>(code)
        .bind::<Nullable<Text>, _>(patch.name)
        .bind::<Nullable<Text>, _>(patch.job_type)
        .bind::<Nullable<Jsonb>, _>(patch.context_schema)
        .bind::<Nullable<Bool>, _>(patch.active)
        .bind::<Nullable<Integer>, _>(patch.display_order)
        .bind::<Nullable<Integer>, _>(patch.default_timeout_seconds)
        .bind::<Nullable<Integer>, _>(patch.default_max_retries)
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
        row.map(Into::into).ok_or_else(|| template_not_found(code))
    }

    async fn delete_template(&self, code: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        // No foreign key guards the queue's template_id (migration 000003). Lock the
        // template first: FOR UPDATE waits for every enqueue holding it FOR KEY SHARE
        // and keeps new ones out; then the next statement's fresh snapshot sees every
        // entry those enqueues committed.
        conn.transaction::<_, Fail, _>(async |c| {
            let id = sql_query("SELECT id FROM bildad_templates WHERE code = $1 FOR UPDATE")
                .bind::<Text, _>(code)
                .get_result::<IdRow>(c)
                .await
                .map(|r| r.id)
                .map_err(|e| match e {
                    DieselError::NotFound => Fail(template_not_found(code)),
                    e => Fail::from(e),
                })?;
            let used: CountRow = sql_query(
                "SELECT count(*) AS n FROM (
                    SELECT 1 FROM bildad_queue WHERE template_id = $1 LIMIT 1) x",
            )
            .bind::<BigInt, _>(id)
            .get_result(c)
            .await?;
            if used.n > 0 {
                return Err(Fail(template_in_use(code)));
            }
            sql_query("DELETE FROM bildad_templates WHERE id = $1")
                .bind::<BigInt, _>(id)
                .execute(c)
                .await?;
            Ok(())
        })
        .await
        .map_err(|f| f.0)
    }

    async fn list_templates(
        &self,
        filter: TemplateFilter,
        page: PageRequest,
    ) -> StoreResult<Page<JobTemplate>> {
        let predicate = match filter {
            TemplateFilter::Active => "active",
            TemplateFilter::Inactive => "NOT active",
            TemplateFilter::All => "TRUE",
        };
        let (limit, offset) = limit_offset(page);
        let mut conn = self.conn().await?;
        let rows: Vec<TemplateRow> = sql_query(format!(
            "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE {predicate}
             ORDER BY display_order, code LIMIT $1 OFFSET $2"
        ))
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        let total: CountRow = sql_query(format!(
            "SELECT count(*) AS n FROM bildad_templates WHERE {predicate}"
        ))
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(Page::new(
            rows.into_iter().map(Into::into).collect(),
            count(total.n),
            page,
        ))
    }

    async fn enqueue(&self, new: NewEntry) -> StoreResult<QueueEntry> {
        let mut out = self.enqueue_many(vec![new]).await.map_err(strip_index)?;
        Ok(out.remove(0))
    }

    async fn enqueue_many(&self, new: Vec<NewEntry>) -> StoreResult<Vec<QueueEntry>> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let mut new = new;
        // Only identifiers the caller chose can be taken: the ones drawn here are fresh
        // UUIDv7s (a millisecond clock and 74 random bits), unique without a lookup, and
        // the queue's unique index still stands behind them. PostgreSQL rejects a NUL in
        // text outright (a database error, not a validation error): such an identifier
        // is left out of the read, and the field checks of `prepare_entries` reject it as
        // invalid, as they did before the reads were pipelined.
        let wanted: Vec<String> = new
            .iter()
            .filter_map(|n| n.job_run_identifier.clone())
            .filter(|i| !i.contains('\0'))
            .collect();
        for n in &mut new {
            if n.job_run_identifier.is_none() {
                n.job_run_identifier = Some(bildad_core::new_identifier());
            }
        }
        let mut codes: Vec<String> = new.iter().map(|n| n.template.clone()).collect();
        codes.sort();
        codes.dedup();
        let conn = self.conn().await?;
        let (template_rows, taken) = {
            let mut c: &AsyncPgConnection = &conn;
            let templates = Cached(
                sql_query(format!(
                    "SELECT {TEMPLATE_COLS} FROM bildad_templates WHERE code = ANY($1)"
                ))
                .bind::<Array<Text>, _>(codes),
            )
            .load::<TemplateRow>(&mut c);
            // An identifier with history is taken too (SPEC §2.1; see MemoryStore).
            let taken = Cached(
                sql_query(
                    "SELECT job_run_identifier AS text FROM bildad_queue
                    WHERE job_run_identifier = ANY($1)
                 UNION
                 SELECT job_run_identifier FROM bildad_runs WHERE job_run_identifier = ANY($1)",
                )
                .bind::<Array<Text>, _>(wanted),
            )
            .load::<TextRow>(&mut c);
            tokio::try_join!(templates, taken).map_err(db_error)?
        };
        let templates: HashMap<String, JobTemplate> = template_rows
            .into_iter()
            .map(|r| {
                let t = JobTemplate::from(r);
                (t.code.clone(), t)
            })
            .collect();
        // Invalid entries first, then conflicts, as before the reads were pipelined.
        let prepared = prepare_entries(&self.schemas, &templates, new)?;
        let identifiers: Vec<String> = prepared.iter().map(|p| p.identifier.clone()).collect();
        if let Some(first) = identifiers
            .iter()
            .find(|i| taken.iter().any(|t| &t.text == *i))
        {
            return Err(identifier_taken(first));
        }
        let mut conn = conn;

        let mut template_ids = Vec::with_capacity(prepared.len());
        let mut priorities = Vec::with_capacity(prepared.len());
        let mut timeouts = Vec::with_capacity(prepared.len());
        let mut retries = Vec::with_capacity(prepared.len());
        let mut contexts = Vec::with_capacity(prepared.len());
        let mut run_ats = Vec::with_capacity(prepared.len());
        for p in prepared {
            template_ids.push(p.template_id);
            priorities.push(p.priority);
            timeouts.push(p.timeout_seconds);
            retries.push(p.max_retries);
            contexts.push(p.context);
            run_ats.push(p.run_at);
        }
        let code_of: HashMap<i64, &str> = templates
            .values()
            .map(|t| (t.id, t.code.as_str()))
            .collect();
        let mut distinct_templates = template_ids.clone();
        distinct_templates.sort_unstable();
        distinct_templates.dedup();
        // One multi-row INSERT: all or nothing. It takes the place of a foreign key
        // (migration 000003): each distinct template is locked FOR KEY SHARE once, so a
        // concurrent `delete_template` (which locks it FOR UPDATE) either waits for this
        // insert and then sees its entries, or deletes first, and then the LEFT JOIN
        // gives this entry a NULL template id and the NOT NULL constraint fails the
        // whole statement. It returns only what the database decides (id, times): the
        // rest of each entry is the request's, so the contexts are not sent back.
        // `pg_notify` wakes the nodes that listen (`listen_for_enqueues`) when, and only
        // if, the insert commits; one notification per transaction.
        let inserted = Cached(
            sql_query(
                "WITH tpl AS MATERIALIZED (
                SELECT id, pg_notify('bildad_enqueued', '')
                FROM bildad_templates WHERE id = ANY($8) FOR KEY SHARE
             )
             INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
                 timeout_seconds, max_retries, context, run_at, inserted_at, updated_at)
             SELECT i.identifier, tpl.id, i.priority, i.timeout_seconds,
                    i.max_retries, i.context, COALESCE(i.run_at, now()), now(), now()
             FROM unnest($1::text[], $2::int8[], $3::int4[], $4::int4[], $5::int4[],
                         $6::jsonb[], $7::timestamptz[]) WITH ORDINALITY
                 AS i(identifier, template_id, priority, timeout_seconds, max_retries,
                      context, run_at, ord)
             LEFT JOIN tpl ON tpl.id = i.template_id
             ORDER BY i.ord
             RETURNING id, job_run_identifier, run_at, inserted_at",
            )
            .bind::<Array<Text>, _>(&identifiers)
            .bind::<Array<BigInt>, _>(&template_ids)
            .bind::<Array<Integer>, _>(&priorities)
            .bind::<Array<Integer>, _>(&timeouts)
            .bind::<Array<Integer>, _>(&retries)
            .bind::<Array<Jsonb>, _>(&contexts)
            .bind::<Array<Nullable<Timestamptz>>, _>(run_ats)
            .bind::<Array<BigInt>, _>(&distinct_templates),
        )
        .load::<InsertedRow>(&mut conn)
        .await;
        let mut rows = match inserted {
            Ok(rows) => rows,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(
                    "a job_run_identifier of this request is already used".into(),
                ));
            }
            Err(e) if is_not_null_violation(&e) => {
                return Err(deleted_templates(
                    &mut conn,
                    &code_of,
                    &distinct_templates,
                    &template_ids,
                )
                .await);
            }
            Err(e) => return Err(db_error(e)),
        };
        // The rows were inserted in request order, so their ids ascend in it; the
        // identifiers are checked all the same.
        if rows.len() != identifiers.len() {
            return Err(StoreError::Database(format!(
                "enqueue: {} rows came back for {} entries",
                rows.len(),
                identifiers.len()
            )));
        }
        rows.sort_unstable_by_key(|r| r.id);
        let mut out = Vec::with_capacity(rows.len());
        for (k, ((row, context), identifier)) in
            rows.into_iter().zip(contexts).zip(identifiers).enumerate()
        {
            if row.job_run_identifier != identifier {
                return Err(StoreError::Database(format!(
                    "enqueue: row {k} came back as {:?}, expected {identifier:?}",
                    row.job_run_identifier
                )));
            }
            out.push(QueueEntry {
                id: row.id,
                job_run_identifier: identifier,
                template: code_of
                    .get(&template_ids[k])
                    .copied()
                    .unwrap_or_default()
                    .to_string(),
                status: EntryStatus::Available,
                priority: priorities[k],
                timeout_seconds: timeouts[k],
                max_retries: retries[k],
                context,
                run_at: row.run_at,
                attempts: 0,
                current_run_id: None,
                inserted_at: row.inserted_at,
                updated_at: row.inserted_at,
            });
        }
        Ok(out)
    }

    async fn get_entry(&self, identifier: &str) -> StoreResult<QueueEntry> {
        let mut conn = self.conn().await?;
        let row: Option<EntryRow> = sql_query(format!(
            "SELECT {ENTRY_COLS} FROM bildad_queue e
             JOIN bildad_templates t ON t.id = e.template_id
             WHERE e.job_run_identifier = $1"
        ))
        .bind::<Text, _>(identifier)
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
        row.ok_or_else(|| entry_not_found(identifier))?.try_into()
    }

    async fn entry_position(&self, identifier: &str) -> StoreResult<Option<u64>> {
        let mut conn = self.conn().await?;
        let row: Option<PositionRow> = sql_query(
            "SELECT e.status,
                    (SELECT count(*) FROM bildad_queue o
                     WHERE o.status = 'AVAILABLE'
                       AND (o.priority, o.inserted_at, o.id) < (e.priority, e.inserted_at, e.id)
                    ) AS ahead
             FROM bildad_queue e WHERE e.job_run_identifier = $1",
        )
        .bind::<Text, _>(identifier)
        .get_result(&mut conn)
        .await
        .map(Some)
        .or_else(not_found_is_none)?;
        let row = row.ok_or_else(|| entry_not_found(identifier))?;
        Ok((row.status == EntryStatus::Available.as_str()).then(|| count(row.ahead) + 1))
    }

    async fn list_entries(
        &self,
        status: Option<EntryStatus>,
        page: PageRequest,
    ) -> StoreResult<Page<QueueEntry>> {
        let (limit, offset) = limit_offset(page);
        let status = status.map(|s| s.as_str());
        let mut conn = self.conn().await?;
        let rows: Vec<EntryRow> = sql_query(format!(
            "SELECT {ENTRY_COLS} FROM bildad_queue e
             JOIN bildad_templates t ON t.id = e.template_id
             WHERE ($1::text IS NULL OR e.status = $1)
             ORDER BY e.priority, e.inserted_at, e.id LIMIT $2 OFFSET $3"
        ))
        .bind::<Nullable<Text>, _>(status)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        let total: CountRow = sql_query(
            "SELECT count(*) AS n FROM bildad_queue WHERE ($1::text IS NULL OR status = $1)",
        )
        .bind::<Nullable<Text>, _>(status)
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(Page::new(convert(rows)?, count(total.n), page))
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
        let mut conn = self.conn().await?;
        let rows: Vec<EntryRow> = sql_query(format!(
            "SELECT {ENTRY_COLS} FROM bildad_queue e
             JOIN bildad_templates t ON t.id = e.template_id
             WHERE ($1::text IS NULL OR e.status = $1) AND t.code = $2
             ORDER BY e.priority, e.inserted_at, e.id LIMIT $3 OFFSET $4"
        ))
        .bind::<Nullable<Text>, _>(status)
        .bind::<Text, _>(&template)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        let total: CountRow = sql_query(
            "SELECT count(*) AS n FROM bildad_queue e
             JOIN bildad_templates t ON t.id = e.template_id
             WHERE ($1::text IS NULL OR e.status = $1) AND t.code = $2",
        )
        .bind::<Nullable<Text>, _>(status)
        .bind::<Text, _>(&template)
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(Page::new(convert(rows)?, count(total.n), page))
    }

    async fn remove_entry(&self, identifier: &str) -> StoreResult<RemoveResult> {
        let mut conn = self.conn().await?;
        // Optimistic: read the entry, then act only if it is still in that state (a run
        // is locked before its entry, as in every finalize, so no deadlock).
        for _ in 0..16 {
            let entry = Self::entry_run(&mut conn, identifier).await?;
            let done = conn
                .transaction::<_, Fail, _>(async |c| match entry.current_run_id {
                    Some(run_id) => {
                        let ended = finalize_in(
                            c,
                            &[Finalize {
                                run_id,
                                outcome: Outcome::standard(FailureKind::Removed),
                                backoff: bildad_core::Backoff::immediate(),
                            }],
                        )
                        .await?;
                        // The Removed disposition deleted the entry with its run.
                        Ok(ended[0].result.won.then_some(RemoveResult {
                            stopped_run: Some(run_id),
                        }))
                    }
                    None => {
                        let n = sql_query(
                            "DELETE FROM bildad_queue WHERE id = $1 AND current_run_id IS NULL",
                        )
                        .bind::<BigInt, _>(entry.id)
                        .execute(c)
                        .await?;
                        Ok((n == 1).then_some(RemoveResult { stopped_run: None }))
                    }
                })
                .await
                .map_err(|f| f.0)?;
            if let Some(done) = done {
                return Ok(done);
            }
        }
        Err(StoreError::Conflict(format!(
            "queue entry {identifier:?} keeps changing; try again"
        )))
    }

    async fn stop_entry(&self, identifier: &str) -> StoreResult<StopResult> {
        let mut conn = self.conn().await?;
        for _ in 0..16 {
            let entry = Self::entry_run(&mut conn, identifier).await?;
            let Some(run_id) = entry.current_run_id else {
                return Err(StoreError::Conflict(format!(
                    "queue entry {identifier:?} is not running"
                )));
            };
            let reqs = [Finalize {
                run_id,
                outcome: Outcome::standard(FailureKind::Stopped),
                backoff: bildad_core::Backoff::immediate(),
            }];
            let ended = conn
                .transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
                .await
                .map_err(|f| f.0)?;
            if let Some(node) = ended.into_iter().next().and_then(|e| e.node) {
                return Ok(StopResult { run_id, node });
            }
        }
        Err(StoreError::Conflict(format!(
            "queue entry {identifier:?} keeps changing; try again"
        )))
    }

    async fn claim(&self, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
        if req.limit == 0 || req.job_types.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.claim_pool.get().await.map_err(pool_error)?;
        let filter = if req.only_identifier.is_some() {
            "e.job_run_identifier = $6"
        } else {
            "e.run_at <= now()"
        };
        let sql = CLAIM.replace("{filter}", filter);
        let query = sql_query(sql)
            .bind::<Array<Text>, _>(&req.job_types)
            .bind::<BigInt, _>(i64::from(req.limit))
            .bind::<Text, _>(&req.node.instance_id)
            .bind::<Text, _>(&req.node.name)
            .bind::<BigInt, _>(duration_us(req.expiry_grace));
        // One round trip: no transaction, because the planner settings are the session's
        // own on the claim connections (see `CLAIM_SESSION`).
        let rows: Vec<ClaimRow> = match req.only_identifier.as_deref() {
            Some(id) => Cached(query.bind::<Text, _>(id)).load(&mut conn).await,
            None => Cached(query).load(&mut conn).await,
        }
        .map_err(db_error)?;
        convert(rows)
    }

    async fn finalize(&self, req: Finalize) -> StoreResult<FinalizeResult> {
        let mut out = self.finalize_many(vec![req]).await?;
        Ok(out.remove(0))
    }

    async fn finalize_many(&self, reqs: Vec<Finalize>) -> StoreResult<Vec<FinalizeResult>> {
        if reqs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        // Successes (the common case) end in one statement, without BEGIN/COMMIT.
        let ended = if needs_transaction(&reqs) {
            conn.transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
                .await
        } else {
            finalize_in(&mut conn, &reqs).await
        }
        .map_err(|f| f.0)?;
        Ok(ended.into_iter().map(|e| e.result).collect())
    }

    async fn runs_to_kill(&self, node: &str) -> StoreResult<Vec<RunRef>> {
        let mut conn = self.conn().await?;
        let rows: Vec<RunRefRow> = Cached(sql_query(KILL).bind::<Text, _>(node))
            .load(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn runs_to_expire(&self, node_dead_after: Duration) -> StoreResult<Vec<RunRef>> {
        let mut conn = self.conn().await?;
        let rows: Vec<RunRefRow> =
            Cached(sql_query(EXPIRE).bind::<BigInt, _>(duration_us(node_dead_after)))
                .load(&mut conn)
                .await
                .map_err(db_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn runs_finalized(&self, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn().await?;
        let rows: Vec<IdRow> = Cached(
            sql_query(
                "SELECT i.id FROM unnest($1::int8[]) WITH ORDINALITY AS i(id, ord)
             WHERE NOT EXISTS (
                SELECT 1 FROM bildad_runs r WHERE r.id = i.id AND r.status = 'RUNNING')
             ORDER BY i.ord",
            )
            .bind::<Array<BigInt>, _>(runs),
        )
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(|r| r.id).collect())
    }

    async fn get_run(&self, id: RunId) -> StoreResult<JobRun> {
        let mut conn = self.conn().await?;
        let row: Option<RunRow> =
            sql_query(format!("SELECT {RUN_COLS} FROM bildad_runs WHERE id = $1"))
                .bind::<BigInt, _>(id)
                .get_result(&mut conn)
                .await
                .map(Some)
                .or_else(not_found_is_none)?;
        row.ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
            .try_into()
    }

    async fn list_runs(&self, filter: RunFilter, page: PageRequest) -> StoreResult<Page<JobRun>> {
        const WHERE: &str = "($1::text IS NULL OR job_run_identifier = $1)
            AND ($2::text IS NULL OR status = $2)
            AND ($3::text IS NULL OR result = $3)
            AND ($4::text IS NULL OR template = $4)
            AND ($5::text IS NULL OR node = $5 OR node_name = $5)";
        let (limit, offset) = limit_offset(page);
        let status = filter.status.map(|s| s.as_str());
        let result = filter.result.map(|s| s.as_str());
        let mut conn = self.conn().await?;
        let rows: Vec<RunRow> = sql_query(format!(
            "SELECT {RUN_COLS} FROM bildad_runs WHERE {WHERE}
             ORDER BY started_at DESC, id DESC LIMIT $6 OFFSET $7"
        ))
        .bind::<Nullable<Text>, _>(&filter.identifier)
        .bind::<Nullable<Text>, _>(status)
        .bind::<Nullable<Text>, _>(result)
        .bind::<Nullable<Text>, _>(&filter.template)
        .bind::<Nullable<Text>, _>(&filter.node)
        .bind::<BigInt, _>(limit)
        .bind::<BigInt, _>(offset)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        let total: CountRow = sql_query(format!(
            "SELECT count(*) AS n FROM bildad_runs WHERE {WHERE}"
        ))
        .bind::<Nullable<Text>, _>(&filter.identifier)
        .bind::<Nullable<Text>, _>(status)
        .bind::<Nullable<Text>, _>(result)
        .bind::<Nullable<Text>, _>(&filter.template)
        .bind::<Nullable<Text>, _>(&filter.node)
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(Page::new(convert(rows)?, count(total.n), page))
    }

    async fn run_activity(&self, since: Timestamp, bucket: Duration) -> StoreResult<RunActivity> {
        // One grouped query; the bucket of a run is floor(ms since `since`) / bucket ms,
        // exactly as `RunActivity::record` computes it.
        let bucket_ms = i64::try_from(bucket.as_millis().max(1)).unwrap_or(i64::MAX);
        let mut conn = self.conn().await?;
        let rows: Vec<ActivityRow> = sql_query(
            "SELECT floor(greatest(extract(epoch FROM ended_at - $1), 0) * 1000)::int8 / $2
                        AS bucket,
                    count(*) FILTER (WHERE result = 'SUCCEEDED') AS succeeded,
                    count(*) FILTER (WHERE result = 'FAILED') AS failed
             FROM bildad_runs
             WHERE status = 'DONE' AND started_at >= $1
               AND result IS NOT NULL AND ended_at IS NOT NULL
             GROUP BY 1 ORDER BY 1",
        )
        .bind::<Timestamptz, _>(since)
        .bind::<BigInt, _>(bucket_ms)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(activity(rows))
    }

    async fn prune_runs(&self, older_than: Timestamp) -> StoreResult<u64> {
        let mut conn = self.conn().await?;
        let n = sql_query("DELETE FROM bildad_runs WHERE status = 'DONE' AND ended_at < $1")
            .bind::<Timestamptz, _>(older_than)
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(n as u64)
    }

    async fn heartbeat(&self, node: &NodeRef) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        Cached(
            sql_query(
                "INSERT INTO bildad_nodes (instance_id, name, started_at, last_heartbeat_at)
             VALUES ($1, $2, now(), now())
             ON CONFLICT (instance_id) DO UPDATE SET last_heartbeat_at = now()",
            )
            .bind::<Text, _>(&node.instance_id)
            .bind::<Text, _>(&node.name),
        )
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    async fn node_stopped(&self, instance_id: &str) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        sql_query("UPDATE bildad_nodes SET stopped_at = now() WHERE instance_id = $1")
            .bind::<Text, _>(instance_id)
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn list_nodes(&self) -> StoreResult<Vec<Node>> {
        let mut conn = self.conn().await?;
        let rows: Vec<NodeRow> = sql_query(
            "SELECT instance_id, name, started_at, last_heartbeat_at, stopped_at
             FROM bildad_nodes ORDER BY last_heartbeat_at DESC",
        )
        .load(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    async fn listen_for_enqueues(&self) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
        // A connection of its own, taken out of the pool for good: it only listens.
        let mut conn = Object::take(self.conn().await?);
        sql_query(format!("LISTEN {ENQUEUED_CHANNEL}"))
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
        let (wake, rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(async move {
            use futures::StreamExt;
            let mut notifications = std::pin::pin!(conn.notifications_stream());
            loop {
                tokio::select! {
                    () = wake.closed() => return,
                    n = notifications.next() => match n {
                        // A full channel already holds a wake-up: coalesce.
                        Some(Ok(_)) => {
                            let _ = wake.try_send(());
                        }
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "enqueue listener lost its connection");
                            return;
                        }
                        None => return,
                    },
                }
            }
        });
        Ok(Some(Box::new(PgListener { rx })))
    }

    async fn stats(&self) -> StoreResult<QueueStats> {
        let mut conn = self.conn().await?;
        let row: StatsRow = sql_query(
            "SELECT
                (SELECT count(*) FROM bildad_queue
                 WHERE status = 'AVAILABLE' AND run_at <= now()) AS available,
                (SELECT count(*) FROM bildad_queue
                 WHERE status = 'AVAILABLE' AND run_at > now()) AS scheduled,
                (SELECT count(*) FROM bildad_queue WHERE status = 'RUNNING') AS running,
                (SELECT count(*) FROM bildad_runs WHERE result = 'SUCCEEDED') AS succeeded,
                (SELECT count(*) FROM bildad_runs WHERE result = 'FAILED') AS failed,
                (SELECT count(*) FROM bildad_templates) AS templates",
        )
        .get_result(&mut conn)
        .await
        .map_err(db_error)?;
        Ok(row.into())
    }
}

/// `Ok(None)` for a missing row, the mapped error otherwise.
fn not_found_is_none<T>(e: DieselError) -> StoreResult<Option<T>> {
    match e {
        DieselError::NotFound => Ok(None),
        e => Err(db_error(e)),
    }
}

/// The error of an enqueue whose template was deleted between its lookup and the insert
/// (the insert found it gone under its lock): the same violation as a template that
/// never existed, for every entry of a template that is gone now.
async fn deleted_templates(
    conn: &mut AsyncPgConnection,
    code_of: &HashMap<i64, &str>,
    distinct_templates: &[i64],
    template_ids: &[i64],
) -> StoreError {
    let present: Vec<i64> =
        match sql_query("SELECT id AS n FROM bildad_templates WHERE id = ANY($1)")
            .bind::<Array<BigInt>, _>(distinct_templates)
            .load::<CountRow>(conn)
            .await
        {
            Ok(rows) => rows.into_iter().map(|r| r.n).collect(),
            Err(e) => return db_error(e),
        };
    let v: Vec<Violation> = template_ids
        .iter()
        .enumerate()
        .filter(|(_, id)| !present.contains(id))
        .map(|(i, id)| {
            Violation::new(
                format!("/{i}/template"),
                format!(
                    "no template has code {:?}",
                    code_of.get(id).copied().unwrap_or("?")
                ),
            )
        })
        .collect();
    if v.is_empty() {
        // No template of the request is missing now: not expected (a deletion that
        // rolled back makes the lock wait, not fail); report a conflict, a retry tells.
        return StoreError::Conflict("a template of this request changed meanwhile; retry".into());
    }
    StoreError::Invalid(v)
}

/// The channel `enqueue_many` notifies and `listen_for_enqueues` listens on.
const ENQUEUED_CHANNEL: &str = "bildad_enqueued";

/// A subscription to the enqueues of every node on the database.
struct PgListener {
    rx: tokio::sync::mpsc::Receiver<()>,
}

#[async_trait]
impl EnqueueListener for PgListener {
    async fn wait(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}
