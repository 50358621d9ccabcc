//! The one migration runner. Each backend supplies its embedded migrations and the
//! statement that opens the transaction holding its lock; the runner applies, in that
//! one transaction, the migrations not yet recorded in diesel's
//! `__diesel_schema_migrations`, and commits them all or none.

use crate::errors::{Fail, db_error};
use crate::rows::TextRow;
use bildad_core::{StoreError, StoreResult};
use diesel::query_builder::SqlQuery;
use diesel::sql_query;
use diesel_async::methods::LoadQuery;
use diesel_async::{AsyncConnectionCore, RunQueryDsl, SimpleAsyncConnection};

/// A backend's migrations: what the runner needs from it.
pub(crate) struct Migrations {
    /// The embedded migrations, in order: (diesel version, up.sql).
    pub(crate) list: &'static [(&'static str, &'static str)],
    /// Opens the transaction and takes the lock that serialises concurrent runners
    /// (several nodes starting at once).
    pub(crate) begin_locked: &'static str,
    /// Releases a lock that outlives the transaction (MySQL's named lock), or "".
    pub(crate) release: &'static str,
}

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
    version VARCHAR(50) PRIMARY KEY NOT NULL,
    run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP)";

const APPLIED: &str = "SELECT version AS text FROM __diesel_schema_migrations";

/// Applies the migrations of `m` that `conn`'s database has not run yet.
///
/// `conn` must not be returned to a pool afterwards (take it out first): a failure or
/// a cancelled call may leave its transaction open, and only closing it ends that.
pub(crate) async fn run<C>(conn: &mut C, m: &Migrations) -> StoreResult<()>
where
    C: AsyncConnectionCore + SimpleAsyncConnection + Send,
    for<'q> SqlQuery: LoadQuery<'q, C, TextRow>,
{
    conn.batch_execute(m.begin_locked).await.map_err(db_error)?;
    let applied = apply_pending(conn, m.list).await;
    let end = if applied.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.batch_execute(end).await.map_err(db_error);
    let released = match m.release {
        "" => Ok(()),
        release => conn.batch_execute(release).await.map_err(db_error),
    };
    applied.map_err(|f| f.0)?;
    ended.and(released)
}

async fn apply_pending<C>(conn: &mut C, list: &[(&str, &str)]) -> Result<(), Fail>
where
    C: AsyncConnectionCore + SimpleAsyncConnection + Send,
    for<'q> SqlQuery: LoadQuery<'q, C, TextRow>,
{
    conn.batch_execute(CREATE_TABLE).await?;
    let done: Vec<TextRow> = sql_query(APPLIED).load(conn).await?;
    for (version, up) in list {
        if done.iter().any(|d| d.text == *version) {
            continue;
        }
        // Versions are the digits of a directory name (checked by a test), so they can
        // be written into the statement.
        debug_assert!(version.bytes().all(|b| b.is_ascii_digit()), "{version}");
        conn.batch_execute(up).await?;
        conn.batch_execute(&format!(
            "INSERT INTO __diesel_schema_migrations (version) VALUES ('{version}')"
        ))
        .await?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}

/// [`run`] on `conn` (a pooled connection), in a task of its own: a caller that stops
/// waiting cannot cut the transaction short and return its connection to the pool
/// inside it.
pub(crate) async fn run_in_task<O, C>(mut conn: O, m: &'static Migrations) -> StoreResult<()>
where
    O: std::ops::DerefMut<Target = C> + Send + 'static,
    C: AsyncConnectionCore + SimpleAsyncConnection + Send,
    for<'q> SqlQuery: LoadQuery<'q, C, TextRow>,
{
    tokio::spawn(async move { run(&mut *conn, m).await })
        .await
        .unwrap_or_else(|e| Err(StoreError::database(format!("the migrations stopped: {e}"))))
}
