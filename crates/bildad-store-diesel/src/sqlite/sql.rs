//! `SqliteStore`'s SQL, in one place: the embedded migrations, the connection's pragmas,
//! the clock, and the statements longer than a line, as SQLite reads them.

use crate::migrate::Migrations;

/// The embedded migrations, in order: (diesel version, up.sql).
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261127000001",
        include_str!("../../../../migrations/sqlite/2026-11-27-000001_create_bildad/up.sql"),
    ),
    (
        "20261127000002",
        include_str!(
            "../../../../migrations/sqlite/2026-11-27-000002_runs_process_name_not_unique/up.sql"
        ),
    ),
    (
        "20261127000003",
        include_str!(
            "../../../../migrations/sqlite/2026-11-27-000003_queue_template_reference_checked_by_store/up.sql"
        ),
    ),
    (
        "20261202000004",
        include_str!("../../../../migrations/sqlite/2026-12-02-000004_queue_uncounted_runs/up.sql"),
    ),
    (
        "20261202000005",
        include_str!(
            "../../../../migrations/sqlite/2026-12-02-000005_running_entry_is_its_run/up.sql"
        ),
    ),
    (
        "20261203000006",
        include_str!("../../../../migrations/sqlite/2026-12-03-000006_queues/up.sql"),
    ),
    (
        "20261203000007",
        include_str!("../../../../migrations/sqlite/2026-12-03-000007_unique_jobs/up.sql"),
    ),
    (
        "20261203000008",
        include_str!("../../../../migrations/sqlite/2026-12-03-000008_schedules/up.sql"),
    ),
    (
        "20261203000009",
        include_str!("../../../../migrations/sqlite/2026-12-03-000009_trace_context/up.sql"),
    ),
];

/// SQLite's clock in microseconds (see [`SQLITE_NOW`]).
pub(crate) use crate::dialect::SQLITE_NOW as NOW;

/// Applied to every new connection.
pub(crate) const PRAGMAS: &str = "PRAGMA journal_mode = WAL;
    PRAGMA busy_timeout = 5000;
    PRAGMA foreign_keys = ON;
    PRAGMA synchronous = NORMAL;";

/// What the migration runner needs: the migrations, and a `BEGIN IMMEDIATE` that takes
/// the file's write lock, so that concurrent runners queue on it.
pub(crate) static MIGRATE: Migrations = Migrations {
    list: MIGRATIONS,
    begin_locked: "BEGIN IMMEDIATE",
    release: "",
};

/// Moves a picked entry (`?1`) into its run, which carries what the entry carried
/// (`?2` node instance, `?3` node name, `?4` now, `?5` expiry grace in µs); the claim then
/// deletes the entry: a running job is one row.
pub(crate) const CLAIM_MOVE: &str = "
INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry,
    process_name, node, node_name, status, context, started_at, timeout_at, expires_at,
    template_id, priority, timeout_seconds, max_retries, uncounted_runs, entry_run_at,
    entry_inserted_at, queue, trace_context)
SELECT e.id, e.job_run_identifier, t.code, t.job_type, e.attempts,
       ?2 || '/' || e.job_run_identifier || '/' || e.attempts, ?2, ?3,
       'RUNNING', e.context, ?4,
       ?4 + e.timeout_seconds * 1000000,
       ?4 + e.timeout_seconds * 1000000 + ?5,
       e.template_id, e.priority, e.timeout_seconds, e.max_retries, e.uncounted_runs,
       e.run_at, e.inserted_at, e.queue, e.trace_context
FROM bildad_queue e JOIN bildad_templates t ON t.id = e.template_id
WHERE e.id = ?1";

/// The killer's lookup (`?1` node instance, `?2` now): this node's runs past `timeout_at`.
pub(crate) const KILL: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND node = ?1 AND timeout_at < ?2
ORDER BY id";

/// The engine's expiry lookup (`?1` now, `?2` node_dead_after in µs): runs past
/// `expires_at`, and runs of dead or stopped node instances.
pub(crate) const EXPIRE: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND expires_at < ?1
UNION
SELECT r.id, r.job_run_identifier, r.retry, r.node, r.queue
FROM bildad_nodes n
JOIN bildad_runs r ON r.node = n.instance_id AND r.status = 'RUNNING'
WHERE n.stopped_at IS NOT NULL OR n.last_heartbeat_at < ?1 - ?2
ORDER BY run_id";

/// Of the given runs (a JSON array), in their order, those no longer `RUNNING`.
pub(crate) const RUNS_FINALIZED: &str = "
SELECT CAST(j.value AS INTEGER) AS id FROM json_each(?1) j
WHERE NOT EXISTS (SELECT 1 FROM bildad_runs r
                  WHERE r.id = CAST(j.value AS INTEGER)
                    AND r.status = 'RUNNING')
ORDER BY j.key";

/// Ends a run, only if it is still `RUNNING` (the one conditional step), returning what
/// the retry rule reads.
pub(crate) const END_RUN: &str = "
UPDATE bildad_runs
SET status = 'DONE', result = ?2, reason = ?3, output = ?4, ended_at = ?5
WHERE id = ?1 AND status = 'RUNNING'
RETURNING id AS run_id, retry, node, max_retries, uncounted_runs";

/// Re-inserts the entry of the ended run `?1` at `?2 + ?3` (now + delay), with the same
/// id, identifier, context and `inserted_at` (its place in line); `?4` is 1 for a run
/// that does not count against `max_retries`.
pub(crate) const REQUEUE: &str = "
INSERT INTO bildad_queue (id, job_run_identifier, template_id, priority, timeout_seconds,
    max_retries, context, run_at, attempts, uncounted_runs, inserted_at, updated_at, queue,
    trace_context)
SELECT entry_id, job_run_identifier, template_id, priority, timeout_seconds, max_retries,
       context, ?2 + ?3, retry + 1, uncounted_runs + ?4, entry_inserted_at, ?2, queue,
       trace_context
FROM bildad_runs WHERE id = ?1
RETURNING run_at AS t";

/// Ended runs since `?1` by bucket of `?2` ms and result (integer microseconds): as
/// `RunActivity::record` computes it.
pub(crate) const ACTIVITY: &str = "
SELECT (max(ended_at - ?1, 0) / 1000) / ?2 AS bucket,
       sum(result = 'SUCCEEDED') AS succeeded,
       sum(result = 'FAILED') AS failed
FROM bildad_runs
WHERE status = 'DONE' AND started_at >= ?1
  AND result IS NOT NULL AND ended_at IS NOT NULL
GROUP BY 1 ORDER BY 1";

/// The identifiers of a request (a JSON array) that an entry or a run already uses (a
/// running job is its run). Read in the enqueue's write transaction, so no claim can move
/// an entry between this look and the insert.
pub(crate) const TAKEN: &str = "
SELECT job_run_identifier AS text FROM bildad_queue
   WHERE job_run_identifier IN (SELECT value FROM json_each(?1))
UNION
SELECT job_run_identifier FROM bildad_runs
   WHERE job_run_identifier IN (SELECT value FROM json_each(?1))";

/// Inserts one entry (`?8` now, `?9` its queue, `?10` its trace context).
pub(crate) const ENQUEUE: &str = "
INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
   timeout_seconds, max_retries, context, run_at, inserted_at, updated_at, queue,
   trace_context)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, ?8), ?8, ?8, ?9, ?10)";
