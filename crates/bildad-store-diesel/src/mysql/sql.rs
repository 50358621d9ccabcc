//! `MysqlStore`'s SQL, in one place: the embedded migrations, the session settings, and
//! the statements longer than a line, as MariaDB reads them (`?` placeholders, bound in
//! the order they appear).

use crate::migrate::Migrations;

/// The embedded migrations, in order: (diesel version, up.sql). MySQL starts at the
/// schema the other backends reached with their migration 000009, in one migration.
pub(crate) const MIGRATIONS: &[(&str, &str)] = &[(
    "20261203000001",
    include_str!("../../../../migrations/mysql/2026-12-03-000001_create_bildad/up.sql"),
)];

/// Run on every connection of the store's pool (diesel-async already sets the session
/// to UTC and utf8mb4).
pub(crate) const SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// What the migration runner needs: a named lock, held by the session until released,
/// serialises concurrent runners (several nodes starting at once).
pub(crate) static MIGRATE: Migrations = Migrations {
    list: MIGRATIONS,
    begin_locked: "DO GET_LOCK('bildad_migrate', 300)",
    release: "DO RELEASE_LOCK('bildad_migrate')",
};

/// A node's heartbeat (`?` instance, `?` name): its row, created on the first.
pub(crate) const HEARTBEAT: &str = "
INSERT INTO bildad_nodes (instance_id, name, started_at, last_heartbeat_at)
VALUES (?, ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
ON DUPLICATE KEY UPDATE last_heartbeat_at = UTC_TIMESTAMP(6)";

/// Ended runs since `?` by bucket of `?` ms and result, then `?` (the same instant) for
/// the range: the bucket of a run is floor(ms since the instant) / bucket ms, exactly as
/// `RunActivity::record` computes it.
pub(crate) const ACTIVITY: &str = "
SELECT CAST(FLOOR(GREATEST(TIMESTAMPDIFF(MICROSECOND, ?, ended_at), 0) / 1000) AS SIGNED)
           DIV ? AS bucket,
       CAST(SUM(result = 'SUCCEEDED') AS SIGNED) AS succeeded,
       CAST(SUM(result = 'FAILED') AS SIGNED) AS failed
FROM bildad_runs
WHERE status = 'DONE' AND started_at >= ?
  AND result IS NOT NULL AND ended_at IS NOT NULL
GROUP BY 1 ORDER BY 1";

/// The killer's lookup (`?` node instance): this node's runs past `timeout_at`.
pub(crate) const KILL: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND node = ? AND timeout_at < UTC_TIMESTAMP(6)
ORDER BY id";

/// The engine's expiry lookup (`?` node_dead_after in µs): runs past `expires_at`, and
/// runs of dead or stopped node instances.
pub(crate) const EXPIRE: &str = "
SELECT id AS run_id, job_run_identifier, retry, node, queue
FROM bildad_runs
WHERE status = 'RUNNING' AND expires_at < UTC_TIMESTAMP(6)
UNION
SELECT r.id, r.job_run_identifier, r.retry, r.node, r.queue
FROM bildad_nodes n
JOIN bildad_runs r ON r.node = n.instance_id AND r.status = 'RUNNING'
WHERE n.stopped_at IS NOT NULL
   OR n.last_heartbeat_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND
ORDER BY run_id";
