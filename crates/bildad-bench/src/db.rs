//! The bench's own databases, one per scenario, on the backend the URL names:
//! `postgres://…` (a database created on that server and dropped with `FORCE`),
//! `mysql://…` (a database created on that MariaDB server and dropped) or
//! `sqlite://<dir>` (a fresh file in a directory of its own under `<dir>`, deleted with
//! its WAL). Everything the bench does to a database besides going through the store
//! (create, fill the history, checkpoint, drop) is here, once per backend.

use anyhow::{Context as _, Result, bail};
use bildad_core::JobStore;
use bildad_store_diesel::testing::with_database;
use bildad_store_diesel::{MysqlStore, PgStore, PoolOptions, SqliteConnectionWrapper, SqliteStore};
use diesel_async::{
    AsyncConnection, AsyncMysqlConnection, AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The database a `--database-url` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://…` or `postgresql://…`: an administrative URL on the server.
    Postgres,
    /// `sqlite://<dir>` (or `sqlite:<dir>`): where the bench makes its files.
    Sqlite,
    /// `mysql://…` or `mariadb://…`: an administrative URL on a MariaDB server.
    Mysql,
}

impl Backend {
    /// The backend of `url`, by its scheme.
    ///
    /// # Errors
    /// For a scheme that names none of them.
    pub fn of(url: &str) -> Result<Self> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else if lower.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
            Ok(Self::Mysql)
        } else {
            bail!(
                "unsupported --database-url {url:?}: expected postgres://…, sqlite://<dir> or mysql://…"
            )
        }
    }

    /// Connections per node's pool when `--pool` is not given: SQLite has one writer at
    /// a time, so a few connections are enough (one claims, one finalizes, one reads).
    pub fn default_pool(self) -> usize {
        match self {
            Self::Postgres | Self::Mysql => 10,
            Self::Sqlite => 4,
        }
    }
}

/// The directory a `sqlite://<dir>` URL names: `<dir>` (created if missing), the
/// directory of `<dir>` when that is an existing file, the system's temporary directory
/// for `sqlite://`.
///
/// # Errors
/// For an in-memory database: every scenario needs a file that other connections see.
pub fn sqlite_dir(url: &str) -> Result<PathBuf> {
    let path = url
        .trim_start()
        .strip_prefix("sqlite://")
        .or_else(|| url.trim_start().strip_prefix("sqlite:"))
        .unwrap_or(url);
    if path.starts_with(":memory:") {
        bail!("the bench needs files, not :memory:: use sqlite://<dir>");
    }
    let path = if path.is_empty() {
        std::env::temp_dir()
    } else {
        PathBuf::from(path)
    };
    Ok(if path.is_file() {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
    } else {
        path
    })
}

/// A database of the bench's own, migrated; [`BenchDb::drop_now`] removes it.
pub(crate) struct BenchDb {
    pub(crate) backend: Backend,
    /// PostgreSQL: the administrative URL. SQLite: unused.
    admin_url: String,
    /// PostgreSQL: the database's name. SQLite: the directory that holds the file.
    pub(crate) name: String,
    /// The URL the store connects to.
    pub(crate) url: String,
}

/// SQL for the identifier of history run `g`: a UUIDv7 of a time `g` milliseconds into
/// the 30 days before now, as [`bildad_core::new_identifier`] would have drawn it then
/// (48-bit millisecond prefix, version 7, variant bits, the rest from a hash of `g`).
const PG_HISTORY_IDENTIFIER: &str = "SELECT substr(t, 1, 8) || '-' || substr(t, 9, 4) || '-7' \
    || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12) AS id \
    FROM (SELECT lpad(to_hex((extract(epoch FROM now() - interval '30 days') * 1000)::bigint \
    + g), 12, '0') AS t, md5(g::text) AS r) x";

/// The same on SQLite, for the rows of `g(n)` (times in microseconds, as the SQLite
/// schema keeps them; the random part from `randomblob`, SQLite has no hash function).
const SQLITE_HISTORY: &str = "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g \
    WHERE n < {rows}), \
    base(us) AS (SELECT CAST(ROUND(unixepoch('subsec') * 1000) AS INTEGER) * 1000 \
        - 30 * 86400 * 1000000), \
    h AS (SELECT n, printf('%012x', us / 1000 + n) AS t, lower(hex(randomblob(9))) AS r, \
        us + n * 1000 AS started FROM g, base) \
    INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry, \
        process_name, node, node_name, status, result, context, started_at, timeout_at, \
        expires_at, ended_at) \
    SELECT n, id, 'bench.noop', 'bench.noop', 0, 'history/' || id, 'history', 'history', \
        'DONE', 'SUCCEEDED', '{}', started, started, started, started \
    FROM (SELECT n, started, substr(t, 1, 8) || '-' || substr(t, 9, 4) || '-7' \
        || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12) AS id FROM h)";

/// The same on MariaDB, for the rows of its sequence engine's `seq_1_to_{rows}`
/// (`DATETIME(6)` in UTC).
const MYSQL_HISTORY: &str = "INSERT INTO bildad_runs (entry_id, job_run_identifier, template, \
        job_type, retry, process_name, node, node_name, status, result, context, started_at, \
        timeout_at, expires_at, ended_at) \
    SELECT seq, id, 'bench.noop', 'bench.noop', 0, CONCAT('history/', id), 'history', \
        'history', 'DONE', 'SUCCEEDED', '{}', \
        UTC_TIMESTAMP(6) - INTERVAL 30 DAY + INTERVAL seq * 1000 MICROSECOND, \
        UTC_TIMESTAMP(6), UTC_TIMESTAMP(6), UTC_TIMESTAMP(6) \
    FROM (SELECT seq, CONCAT(SUBSTR(t, 1, 8), '-', SUBSTR(t, 9, 4), '-7', SUBSTR(r, 1, 3), \
            '-8', SUBSTR(r, 4, 3), '-', SUBSTR(r, 7, 12)) AS id \
        FROM (SELECT seq, LOWER(LPAD(HEX(FLOOR(UNIX_TIMESTAMP(UTC_TIMESTAMP(6) - INTERVAL 30 DAY) \
                * 1000) + seq), 12, '0')) AS t, MD5(seq) AS r \
            FROM seq_1_to_{rows}) x) h";

impl BenchDb {
    /// A fresh, migrated database on the backend of `admin_url`.
    pub(crate) async fn create(admin_url: &str) -> Result<Self> {
        match Backend::of(admin_url)? {
            Backend::Sqlite => Self::create_sqlite(admin_url).await,
            backend => Self::create_on_server(admin_url, backend).await,
        }
    }

    /// A database created on the server of `admin_url` (PostgreSQL or MariaDB), and
    /// migrated by the store's own `migrate` for its URL.
    async fn create_on_server(admin_url: &str, backend: Backend) -> Result<Self> {
        let name = format!("bildad_bench_{}", uuid::Uuid::new_v4().simple());
        let create = format!("CREATE DATABASE {name}");
        let created = match backend {
            Backend::Mysql => mysql_admin(admin_url).await?.batch_execute(&create).await,
            _ => admin(admin_url).await?.batch_execute(&create).await,
        };
        created.with_context(|| format!("cannot create database {name}"))?;
        let db = Self {
            backend,
            admin_url: admin_url.to_string(),
            url: with_database(admin_url, &name),
            name,
        };
        if let Err(e) = bildad_store_diesel::migrate(&db.url).await {
            db.drop_now().await;
            bail!("cannot migrate {}: {e}", db.name);
        }
        if let Ok(sql) = std::env::var("BILDAD_BENCH_AFTER_MIGRATE") {
            let done = match backend {
                Backend::Mysql => mysql_admin(&db.url).await?.batch_execute(&sql).await,
                _ => admin(&db.url).await?.batch_execute(&sql).await,
            };
            if let Err(e) = done {
                db.drop_now().await;
                bail!("BILDAD_BENCH_AFTER_MIGRATE failed on {}: {e}", db.name);
            }
        }
        Ok(db)
    }

    async fn create_sqlite(admin_url: &str) -> Result<Self> {
        let parent = sqlite_dir(admin_url)?;
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("cannot create directory {}", parent.display()))?;
        let dir = parent.join(format!("bildad_bench_{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&dir)
            .with_context(|| format!("cannot create directory {}", dir.display()))?;
        let db = Self {
            backend: Backend::Sqlite,
            admin_url: admin_url.to_string(),
            url: format!("sqlite://{}", dir.join("bench.db").display()),
            name: dir.display().to_string(),
        };
        if let Err(e) = bildad_store_diesel::migrate(&db.url).await {
            db.drop_now().await;
            bail!("cannot migrate {}: {e}", db.url);
        }
        Ok(db)
    }

    /// A store on this database whose pool holds at most `pool` connections.
    pub(crate) async fn connect(&self, pool: usize) -> Result<Arc<dyn JobStore>> {
        let options = PoolOptions {
            max_size: pool,
            ..PoolOptions::default()
        };
        Ok(match self.backend {
            Backend::Postgres => Arc::new(PgStore::connect_with(&self.url, options).await?),
            Backend::Sqlite => Arc::new(SqliteStore::connect_with(&self.url, options).await?),
            Backend::Mysql => Arc::new(MysqlStore::connect_with(&self.url, options).await?),
        })
    }

    /// `rows` runs of history (`DONE`, of entries long gone), then the planner's
    /// statistics. Their identifiers are of the kind the stores generate (UUIDv7 of the
    /// past 30 days), so that a new run's key lands among them where a real one would.
    pub(crate) async fn fill_history(&self, rows: u64) -> Result<()> {
        let inserted = match self.backend {
            Backend::Postgres => {
                let mut conn = admin(&self.url).await?;
                let inserted = diesel::sql_query(format!(
                    "INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type,
                        retry, process_name, node, node_name, status, result, context,
                        started_at, timeout_at, expires_at, ended_at)
                     SELECT g, h.id, 'bench.noop', 'bench.noop', 0, 'history/' || h.id,
                        'history', 'history', 'DONE', 'SUCCEEDED', '{{}}'::jsonb,
                        now() - interval '30 days' + g * interval '1 millisecond',
                        now(), now(), now()
                     FROM generate_series(1, {rows}) g,
                     LATERAL ({PG_HISTORY_IDENTIFIER}) h"
                ))
                .execute(&mut conn)
                .await
                .context("cannot fill the run history")?;
                conn.batch_execute("VACUUM ANALYZE").await?;
                inserted
            }
            Backend::Sqlite => {
                let mut conn = self.sqlite_admin().await?;
                let inserted =
                    diesel::sql_query(SQLITE_HISTORY.replace("{rows}", &rows.to_string()))
                        .execute(&mut conn)
                        .await
                        .context("cannot fill the run history")?;
                conn.batch_execute("ANALYZE").await?;
                inserted
            }
            Backend::Mysql => {
                let mut conn = mysql_admin(&self.url).await?;
                let inserted =
                    diesel::sql_query(MYSQL_HISTORY.replace("{rows}", &rows.to_string()))
                        .execute(&mut conn)
                        .await
                        .context("cannot fill the run history")?;
                conn.batch_execute("ANALYZE TABLE bildad_runs").await?;
                inserted
            }
        };
        if inserted as u64 != rows {
            bail!("the run history has {inserted} rows, not {rows}");
        }
        Ok(())
    }

    /// A checkpoint, so that every timed scenario starts with none due: without it, the
    /// one that the history's bulk load sets off runs during the timing and charges its
    /// writes to the jobs (on PostgreSQL it moved the 1M-run figure by up to 40 %). On
    /// SQLite, `wal_checkpoint(TRUNCATE)` empties the WAL the same way. A role that may
    /// not checkpoint only gets a warning.
    pub(crate) async fn checkpoint(&self) {
        let done = match self.backend {
            Backend::Postgres => match admin(&self.url).await {
                Ok(mut c) => c.batch_execute("CHECKPOINT").await.map_err(Into::into),
                Err(e) => Err(e),
            },
            Backend::Sqlite => match self.sqlite_admin().await {
                Ok(mut c) => c
                    .batch_execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e),
            },
            // InnoDB flushes in the background; there is no checkpoint to ask for.
            Backend::Mysql => Ok(()),
        };
        if let Err(e) = done {
            eprintln!("warning: the checkpoint before the timing failed: {e:#}");
        }
    }

    /// Drops the database (PostgreSQL `WITH (FORCE)`, MariaDB) or deletes its directory
    /// (SQLite); a failure is only printed.
    pub(crate) async fn drop_now(&self) {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        let dropped = match self.backend {
            Backend::Postgres => match admin(&self.admin_url).await {
                Ok(mut c) => c
                    .batch_execute(&format!("{sql} WITH (FORCE)"))
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e),
            },
            Backend::Mysql => match mysql_admin(&self.admin_url).await {
                Ok(mut c) => c.batch_execute(&sql).await.map_err(Into::into),
                Err(e) => Err(e),
            },
            Backend::Sqlite => std::fs::remove_dir_all(&self.name).map_err(Into::into),
        };
        if let Err(e) = dropped {
            eprintln!("cannot drop {}: {e:#}", self.name);
        }
    }

    /// A connection of the bench's own to the SQLite file, waiting for the store's
    /// writers rather than failing with `SQLITE_BUSY`.
    pub(crate) async fn sqlite_admin(&self) -> Result<SqliteConnectionWrapper> {
        let path = self.url.trim_start_matches("sqlite://");
        let mut conn = SqliteConnectionWrapper::establish(path)
            .await
            .with_context(|| format!("cannot open {path}"))?;
        conn.batch_execute("PRAGMA busy_timeout = 5000").await?;
        Ok(conn)
    }
}

/// A connection to the MariaDB server at `url`, within 5 s.
pub(crate) async fn mysql_admin(url: &str) -> Result<AsyncMysqlConnection> {
    tokio::time::timeout(Duration::from_secs(5), AsyncMysqlConnection::establish(url))
        .await
        .with_context(|| format!("connecting to {url} timed out"))?
        .with_context(|| format!("cannot connect to {url}"))
}

/// A connection to the PostgreSQL server at `url`, within 5 s.
pub(crate) async fn admin(url: &str) -> Result<AsyncPgConnection> {
    tokio::time::timeout(Duration::from_secs(5), AsyncPgConnection::establish(url))
        .await
        .with_context(|| format!("connecting to {url} timed out"))?
        .with_context(|| format!("cannot connect to {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_picks_the_backend() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                Backend::Postgres,
            ),
            ("postgresql://u@h/db", Backend::Postgres),
            ("sqlite:///tmp/bench", Backend::Sqlite),
            ("sqlite:bench", Backend::Sqlite),
            ("SQLITE://x", Backend::Sqlite),
            ("mysql://root@127.0.0.1:3306/mysql", Backend::Mysql),
        ];
        for (url, backend) in cases {
            assert_eq!(Backend::of(url).unwrap(), backend, "{url}");
        }
        let err = Backend::of("http://localhost").unwrap_err().to_string();
        assert!(err.contains("unsupported --database-url"), "{err}");
        assert!(Backend::of("/tmp/bench.db").is_err());
    }

    #[test]
    fn a_sqlite_url_names_a_directory() {
        assert_eq!(
            sqlite_dir("sqlite:///tmp/bench").unwrap(),
            PathBuf::from("/tmp/bench")
        );
        assert_eq!(
            sqlite_dir("sqlite:rel/dir").unwrap(),
            PathBuf::from("rel/dir")
        );
        assert_eq!(sqlite_dir("sqlite://").unwrap(), std::env::temp_dir());
        // An existing file: its directory (the bench never writes into the file).
        let file = std::env::temp_dir().join(format!("bench-{}.db", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"").unwrap();
        let dir = sqlite_dir(&format!("sqlite://{}", file.display()));
        std::fs::remove_file(&file).unwrap();
        assert_eq!(dir.unwrap(), std::env::temp_dir());
        let err = sqlite_dir("sqlite::memory:").unwrap_err().to_string();
        assert!(err.contains(":memory:"), "{err}");
    }

    #[test]
    fn sqlite_gets_a_small_pool() {
        assert_eq!(Backend::Sqlite.default_pool(), 4);
        assert_eq!(Backend::Postgres.default_pool(), 10);
    }
}
