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

/// SQLite's clock in microseconds. Its resolution is a millisecond; ties in run order are
/// broken by id. Stable within one statement.
pub(crate) const NOW: &str = "(CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000)";

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
