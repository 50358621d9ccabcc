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
};

/// Marks a claimed entry `RUNNING` with its new run.
pub(crate) const CLAIM_MARK: &str = "
UPDATE bildad_queue
SET status = 'RUNNING', current_run_id = ?2, attempts = attempts + 1,
    node = ?3, timeout_at = ?4, expires_at = ?5, updated_at = ?6
WHERE id = ?1";

/// The engine's expiry lookup (`?1` now, `?2` node_dead_after in µs): runs past
/// `expires_at`, and runs of dead or stopped node instances, on the entries table.
pub(crate) const EXPIRE: &str = "
SELECT current_run_id AS run_id, job_run_identifier, attempts - 1 AS retry, node
FROM bildad_queue
WHERE status = 'RUNNING' AND expires_at < ?1
UNION
SELECT e.current_run_id, e.job_run_identifier, e.attempts - 1, e.node
FROM bildad_nodes n
JOIN bildad_queue e ON e.node = n.instance_id AND e.status = 'RUNNING'
WHERE n.stopped_at IS NOT NULL OR n.last_heartbeat_at < ?1 - ?2
ORDER BY run_id";

/// Of the given runs (a JSON array), in their order, those no longer `RUNNING`.
pub(crate) const RUNS_FINALIZED: &str = "
SELECT CAST(j.value AS INTEGER) AS id FROM json_each(?1) j
WHERE NOT EXISTS (SELECT 1 FROM bildad_runs r
                  WHERE r.id = CAST(j.value AS INTEGER)
                    AND r.status = 'RUNNING')
ORDER BY j.key";

/// Ends a run, only if it is still `RUNNING` (the one conditional step).
pub(crate) const END_RUN: &str = "
UPDATE bildad_runs
SET status = 'DONE', result = ?2, reason = ?3, output = ?4, ended_at = ?5
WHERE id = ?1 AND status = 'RUNNING'
RETURNING id AS run_id, retry, node, entry_id";

/// What the retry rule reads on the entry that still points at the run.
pub(crate) const ENTRY_RETRIES: &str = "
SELECT max_retries, uncounted_runs FROM bildad_queue
WHERE id = ?1 AND current_run_id = ?2";

/// Requeues an entry at `?2 + ?3` (now + delay); `?4` is 1 for a run that does not count
/// against `max_retries`.
pub(crate) const REQUEUE: &str = "
UPDATE bildad_queue
SET status = 'AVAILABLE', current_run_id = NULL, node = NULL,
    timeout_at = NULL, expires_at = NULL, run_at = ?2 + ?3, updated_at = ?2,
    uncounted_runs = uncounted_runs + ?4
WHERE id = ?1
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

/// The identifiers of a request (a JSON array) that an entry or a run already uses.
pub(crate) const TAKEN: &str = "
SELECT job_run_identifier AS text FROM bildad_queue
   WHERE job_run_identifier IN (SELECT value FROM json_each(?1))
UNION
SELECT job_run_identifier FROM bildad_runs
   WHERE job_run_identifier IN (SELECT value FROM json_each(?1))";

/// Inserts one entry (`?8` now).
pub(crate) const ENQUEUE: &str = "
INSERT INTO bildad_queue (job_run_identifier, template_id, priority,
   timeout_seconds, max_retries, context, run_at, inserted_at, updated_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, COALESCE(?7, ?8), ?8, ?8)";
