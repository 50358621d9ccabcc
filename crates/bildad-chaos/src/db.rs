//! The database side: a fresh database per run, the plan table, and the rows the checks
//! read. Everything the verdict rests on is read here, from the database alone.
//!
//! Two servers are supported, behind one handle, [`Db`]: PostgreSQL (`postgres://…`,
//! through `tokio_postgres`) and MySQL/MariaDB (`mysql://…` or `mariadb://…`, through
//! `mysql_async`, the driver the store itself uses). The SQL is written once, in the
//! common subset of both dialects: placeholders are `$1`, `$2`… (rewritten to `?` for
//! MySQL), and the few expressions that differ — a timestamp as seconds since the epoch,
//! dropping a database — come from [`Backend`].

use anyhow::{Context, Result, bail};

/// The server used when none is given: `BILDAD_TEST_DATABASE_URL` or the local one.
pub fn default_admin_url() -> String {
    std::env::var("BILDAD_TEST_DATABASE_URL")
        .unwrap_or_else(|_| bildad_store_diesel::testing::DEFAULT_URL.to_owned())
}

pub use bildad_store_diesel::testing::with_database;

/// The URL without its password.
pub fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((creds, host)) = rest.rsplit_once('@')
    {
        let user = creds.split(':').next().unwrap_or_default();
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// Which kind of server a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `postgres://…` or `postgresql://…`.
    Postgres,
    /// `mysql://…` or `mariadb://…` (MariaDB 10.6+ or MySQL 8).
    Mysql,
}

impl Backend {
    /// The backend of `url`, by its scheme.
    ///
    /// # Errors
    /// For any other scheme (SQLite included: the fault runs need a server that several
    /// processes share over TCP).
    pub fn of(url: &str) -> Result<Self> {
        let scheme = url
            .trim_start()
            .split_once("://")
            .map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            Some("mysql" | "mariadb") => Ok(Self::Mysql),
            _ => bail!(
                "{}: the fault runs need a PostgreSQL (postgres://…) or MySQL/MariaDB \
                 (mysql://…) server URL",
                redact(url)
            ),
        }
    }

    /// `expr` (a timestamp) as seconds since the epoch, a double precision number. On
    /// MySQL the session runs in UTC ([`Db::connect`]), as the store's do, so a
    /// `DATETIME(6)` column reads as the UTC instant the store wrote.
    pub fn epoch(self, expr: &str) -> String {
        match self {
            Self::Postgres => format!("extract(epoch FROM {expr})::float8"),
            Self::Mysql => format!("CAST(UNIX_TIMESTAMP({expr}) AS DOUBLE)"),
        }
    }

    /// The statement that drops database `name`, even with sessions still on it.
    pub fn drop_database_sql(self, name: &str) -> String {
        match self {
            Self::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            Self::Mysql => format!("DROP DATABASE IF EXISTS {name}"),
        }
    }
}

/// A parameter of a statement.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// Text.
    Text(&'a str),
    /// A 32-bit integer.
    Int(i32),
    /// A double precision number.
    Float(f64),
}

/// A value a column can be read as, on either backend.
pub trait Column:
    for<'a> tokio_postgres::types::FromSql<'a> + mysql_async::prelude::FromValue
{
}
impl<T> Column for T where
    T: for<'a> tokio_postgres::types::FromSql<'a> + mysql_async::prelude::FromValue
{
}

/// One row of a result.
#[derive(Debug)]
pub enum Row {
    /// From PostgreSQL.
    Postgres(tokio_postgres::Row),
    /// From MySQL.
    Mysql(mysql_async::Row),
}

impl Row {
    /// Column `i` as a `T`.
    ///
    /// # Errors
    /// When there is no such column or it does not convert.
    pub fn get<T: Column>(&self, i: usize) -> Result<T> {
        match self {
            Self::Postgres(r) => r.try_get(i).with_context(|| format!("column {i}")),
            Self::Mysql(r) => match r.get_opt::<T, usize>(i) {
                Some(v) => v.map_err(|e| anyhow::anyhow!("column {i}: {e}")),
                None => bail!("no column {i}"),
            },
        }
    }
}

/// A connection to the database a run reads and writes (or to the server, for
/// [`FreshDatabase`]).
#[derive(Debug)]
pub enum Db {
    /// A PostgreSQL client, its connection driven on a task.
    Postgres(tokio_postgres::Client),
    /// A small MySQL pool whose sessions run in UTC.
    Mysql(mysql_async::Pool),
}

impl Db {
    /// Connects to `url`.
    ///
    /// # Errors
    /// When the URL is not a PostgreSQL or MySQL one, or the server cannot be reached.
    pub async fn connect(url: &str) -> Result<Self> {
        let context = || format!("connecting to {}", redact(url));
        match Backend::of(url)? {
            Backend::Postgres => {
                let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .with_context(context)?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok(Self::Postgres(client))
            }
            Backend::Mysql => {
                let url = match url.trim_start().split_once("://") {
                    Some((_, rest)) => format!("mysql://{rest}"),
                    None => url.to_owned(),
                };
                let opts = mysql_async::Opts::from_url(&url).with_context(context)?;
                let constraints =
                    mysql_async::PoolConstraints::new(0, 4).context("pool constraints")?;
                let opts = mysql_async::OptsBuilder::from_opts(opts)
                    .init(vec!["SET time_zone = '+00:00'"])
                    .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
                let pool = mysql_async::Pool::new(opts);
                // Reach the server now, so that a wrong URL fails here.
                drop(pool.get_conn().await.with_context(context)?);
                Ok(Self::Mysql(pool))
            }
        }
    }

    /// The backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Self::Postgres(_) => Backend::Postgres,
            Self::Mysql(_) => Backend::Mysql,
        }
    }

    /// `expr` as seconds since the epoch ([`Backend::epoch`]).
    pub fn epoch(&self, expr: &str) -> String {
        self.backend().epoch(expr)
    }

    /// Runs `sql` (one statement or several, no parameters, no result).
    ///
    /// # Errors
    /// On a database error.
    pub async fn batch_execute(&self, sql: &str) -> Result<()> {
        match self {
            Self::Postgres(c) => c.batch_execute(sql).await?,
            Self::Mysql(p) => {
                use mysql_async::prelude::Queryable;
                p.get_conn().await?.query_drop(sql).await?;
            }
        }
        Ok(())
    }

    /// Runs `sql` with `params` (`$1`, `$2`…), for its effect.
    ///
    /// # Errors
    /// On a database error.
    pub async fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<()> {
        self.query(sql, params).await.map(drop)
    }

    /// Runs `sql` with `params` (`$1`, `$2`…) and returns its rows.
    ///
    /// # Errors
    /// On a database error.
    pub async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        match self {
            Self::Postgres(c) => {
                let values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = params
                    .iter()
                    .map(|p| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                        match *p {
                            Param::Text(s) => Box::new(s.to_owned()),
                            Param::Int(i) => Box::new(i),
                            Param::Float(f) => Box::new(f),
                        }
                    })
                    .collect();
                let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
                    .iter()
                    .map(|v| v.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                    .collect();
                let rows = c.query(sql, &refs).await?;
                Ok(rows.into_iter().map(Row::Postgres).collect())
            }
            Self::Mysql(p) => {
                use mysql_async::prelude::Queryable;
                let (sql, order) = question_marks(sql);
                let values: Vec<mysql_async::Value> = order
                    .iter()
                    .map(|&n| match params.get(n) {
                        Some(Param::Text(s)) => Ok(mysql_async::Value::from(*s)),
                        Some(Param::Int(i)) => Ok(mysql_async::Value::from(*i)),
                        Some(Param::Float(f)) => Ok(mysql_async::Value::from(*f)),
                        None => Err(anyhow::anyhow!("no parameter ${}", n + 1)),
                    })
                    .collect::<Result<_>>()?;
                let mut conn = p.get_conn().await?;
                let rows: Vec<mysql_async::Row> = if values.is_empty() {
                    conn.query(sql).await?
                } else {
                    conn.exec(sql, mysql_async::Params::Positional(values))
                        .await?
                };
                Ok(rows.into_iter().map(Row::Mysql).collect())
            }
        }
    }

    /// Runs `sql` with `params` and returns its one row.
    ///
    /// # Errors
    /// On a database error, or when it returns no row.
    pub async fn query_one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        self.query(sql, params)
            .await?
            .into_iter()
            .next()
            .context("the query returned no row")
    }
}

/// `sql` with `$n` placeholders rewritten to `?`, and the parameter index (from 0) each
/// `?` takes, in order: a placeholder used twice is bound twice. (No statement here has
/// a `$` inside a string literal.)
fn question_marks(sql: &str) -> (String, Vec<usize>) {
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            let mut n = 0usize;
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                n = n * 10 + (d as usize - '0' as usize);
            }
            order.push(n.saturating_sub(1));
            out.push('?');
        } else {
            out.push(c);
        }
    }
    (out, order)
}

/// A database created for one run on the server of `admin_url`.
#[derive(Debug)]
pub struct FreshDatabase {
    /// Its name.
    pub name: String,
    /// Its URL.
    pub url: String,
    admin_url: String,
}

impl FreshDatabase {
    /// Creates `bildad_<tag>_<random>`.
    ///
    /// # Errors
    /// When the server cannot be reached or refuses.
    pub async fn create(admin_url: &str, tag: &str) -> Result<Self> {
        let admin = Db::connect(admin_url).await?;
        let name = format!(
            "bildad_{tag}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self {
            url: with_database(admin_url, &name),
            name,
            admin_url: admin_url.to_owned(),
        })
    }

    /// Drops the database, sessions still on it notwithstanding.
    ///
    /// # Errors
    /// When the server refuses.
    pub async fn drop_database(self) -> Result<()> {
        let admin = Db::connect(&self.admin_url).await?;
        admin
            .batch_execute(&admin.backend().drop_database_sql(&self.name))
            .await
            .with_context(|| format!("dropping database {}", self.name))?;
        Ok(())
    }
}

/// One row of `bildad_runs`, times as seconds since the epoch (database clock).
#[derive(Debug, Clone)]
pub struct RunRow {
    /// `job_run_identifier`.
    pub identifier: String,
    /// `retry`.
    pub retry: i32,
    /// `status`.
    pub status: String,
    /// `result`.
    pub result: Option<String>,
    /// `reason`.
    pub reason: Option<String>,
    /// `node` (instance id).
    pub node: String,
    /// `started_at`.
    pub started_at: f64,
    /// `ended_at`.
    pub ended_at: Option<f64>,
    /// `timeout_at`.
    pub timeout_at: f64,
}

/// One row of `bildad_nodes`.
#[derive(Debug, Clone)]
pub struct NodeRow {
    /// `instance_id`.
    pub instance_id: String,
    /// `name`.
    pub name: String,
    /// `last_heartbeat_at`.
    pub last_heartbeat_at: f64,
    /// Whether the instance recorded a clean departure.
    pub stopped: bool,
}

/// Every run.
///
/// # Errors
/// On a database error.
pub async fn runs(db: &Db) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT job_run_identifier, retry, status, result, reason, node, {}, {}, {}
         FROM bildad_runs",
        db.epoch("started_at"),
        db.epoch("ended_at"),
        db.epoch("timeout_at")
    );
    let rows = db.query(&sql, &[]).await.context("reading bildad_runs")?;
    rows.iter()
        .map(|r| {
            Ok(RunRow {
                identifier: r.get(0)?,
                retry: r.get(1)?,
                status: r.get(2)?,
                result: r.get(3)?,
                reason: r.get(4)?,
                node: r.get(5)?,
                started_at: r.get(6)?,
                ended_at: r.get(7)?,
                timeout_at: r.get(8)?,
            })
        })
        .collect()
}

/// Every node instance.
///
/// # Errors
/// On a database error.
pub async fn nodes(db: &Db) -> Result<Vec<NodeRow>> {
    let sql = format!(
        "SELECT instance_id, name, {}, CASE WHEN stopped_at IS NULL THEN 0 ELSE 1 END
         FROM bildad_nodes",
        db.epoch("last_heartbeat_at")
    );
    let rows = db.query(&sql, &[]).await.context("reading bildad_nodes")?;
    rows.iter()
        .map(|r| {
            Ok(NodeRow {
                instance_id: r.get(0)?,
                name: r.get(1)?,
                last_heartbeat_at: r.get(2)?,
                stopped: r.get::<i32>(3)? == 1,
            })
        })
        .collect()
}

/// Entries still in the queue, waiting or running: `(identifier, status)`.
///
/// # Errors
/// On a database error.
pub async fn queue(db: &Db) -> Result<Vec<(String, String)>> {
    let rows = db
        .query(
            "SELECT job_run_identifier, status FROM bildad_entries_v2 ORDER BY id",
            &[],
        )
        .await
        .context("reading bildad_entries_v2")?;
    rows.iter().map(|r| Ok((r.get(0)?, r.get(1)?))).collect()
}

/// `(entries in the queue, runs still RUNNING)`.
///
/// # Errors
/// On a database error.
pub async fn pending(db: &Db) -> Result<(i64, i64)> {
    let row = db
        .query_one(
            "SELECT (SELECT count(*) FROM bildad_entries_v2),
                    (SELECT count(*) FROM bildad_runs WHERE status = 'RUNNING')",
            &[],
        )
        .await
        .context("counting pending work")?;
    Ok((row.get(0)?, row.get(1)?))
}

/// `SELECT count(*) …` with `params`, as a number.
///
/// # Errors
/// On a database error.
pub async fn count(db: &Db, sql: &str, params: &[Param<'_>]) -> Result<i64> {
    db.query_one(sql, params).await?.get(0)
}

/// The database clock, in seconds since the epoch.
///
/// # Errors
/// On a database error.
pub async fn now(db: &Db) -> Result<f64> {
    let sql = format!("SELECT {}", db.epoch("CURRENT_TIMESTAMP(6)"));
    db.query_one(&sql, &[]).await?.get(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_question_marks_bound_in_order() {
        let (sql, order) = question_marks("SELECT $1, $2 WHERE a = $1 AND b = $10");
        assert_eq!(sql, "SELECT ?, ? WHERE a = ? AND b = ?");
        assert_eq!(order, vec![0, 1, 0, 9]);
        assert_eq!(question_marks("SELECT '$x'").0, "SELECT '$x'");
    }

    #[test]
    fn the_backend_comes_from_the_scheme() {
        assert_eq!(Backend::of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of("postgresql://h").unwrap(), Backend::Postgres);
        assert_eq!(
            Backend::of("mysql://root@h:3306/db").unwrap(),
            Backend::Mysql
        );
        assert_eq!(Backend::of("MariaDB://root@h/db").unwrap(), Backend::Mysql);
        let e = Backend::of("sqlite://x.db").unwrap_err().to_string();
        assert!(e.contains("PostgreSQL") && e.contains("MySQL"), "{e}");
    }
}
