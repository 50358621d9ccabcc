//! `MysqlStore`: the `JobStore` on MariaDB (10.6 or later), through diesel-async's
//! pure-Rust driver (mysql_async; no libmysqlclient) and a deadpool pool.
//!
//! Every timestamp is the database's `UTC_TIMESTAMP(6)`, stored in `DATETIME(6)`. The
//! claim is one transaction: `FOR UPDATE SKIP LOCKED` picks the entries, one
//! `INSERT … SELECT … RETURNING` moves them into their runs, one `DELETE` removes them
//! (a running job is one row, its run). Finalizes are batched and guarded by the run
//! being `RUNNING`. Sessions are `READ COMMITTED`, so that each statement sees what
//! others committed before it (the guards rely on it) and InnoDB takes no gap locks.
//!
//! One file per section of the trait, as for the other backends: [`templates`],
//! [`enqueue`], [`claim`], [`finalize`], [`operator`], [`reads`], [`nodes`], [`listen`],
//! [`queues`], [`schedules`]; the SQL text in [`sql`]; [`tx`] enqueues on the
//! application's own connection, inside its transaction. This file holds the pool,
//! `migrate`, and the helpers every section uses.

mod claim;
mod enqueue;
mod finalize;
mod listen;
mod nodes;
mod operator;
mod queues;
mod reads;
mod schedules;
pub(crate) mod sql;
mod templates;
mod tx;

use crate::PoolOptions;
use crate::errors::pool_error;
use bildad_core::{LocalEnqueueSignal, SchemaCache, StoreError, StoreResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, SimpleAsyncConnection};

/// A `JobStore` on MariaDB. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct MysqlStore {
    pool: Pool<AsyncMysqlConnection>,
    schemas: std::sync::Arc<SchemaCache>,
    /// Wake-ups for enqueues through this store (this process) at once; other nodes'
    /// enqueues are seen by the listener's poll (`listen`).
    enqueued: LocalEnqueueSignal,
}

impl std::fmt::Debug for MysqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MysqlStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:password@host:port/database`) with the default
    /// [`PoolOptions`]. `Unavailable` when the server cannot be reached; `Invalid` for a
    /// malformed URL. Does not migrate: see [`MysqlStore::migrate`].
    ///
    /// ```no_run
    /// use bildad_store_diesel::MysqlStore;
    ///
    /// # async fn run() -> Result<(), bildad_core::StoreError> {
    /// let store = MysqlStore::connect("mysql://root@127.0.0.1:3306/app").await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PoolOptions::default()).await
    }

    /// Connects with `options` and checks that one connection can be opened.
    pub async fn connect_with(url: &str, options: PoolOptions) -> StoreResult<Self> {
        check_url(url)?;
        let pool = Pool::builder(Self::manager(url))
            .max_size(options.max_size.max(1))
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::database(format!("cannot build the connection pool: {e}")))?;
        Self::from_pool(pool).await
    }

    /// The connection manager for a pool whose connections have the store's session
    /// settings ([`sql::SESSION`]: `READ COMMITTED`; diesel-async already sets UTC). An
    /// application that shares its pool with the store ([`MysqlStore::from_pool`]) builds
    /// it with this manager.
    ///
    /// A connection whose query was cut short (the caller stopped waiting: a timeout, a
    /// node's shutdown) is closed instead of being handed out again: MySQL's protocol
    /// cannot resume a half-read reply ([`InFlight`]).
    pub fn manager(url: &str) -> AsyncDieselConnectionManager<AsyncMysqlConnection> {
        let mut config = ManagerConfig::default();
        config.recycling_method =
            RecyclingMethod::CustomFunction(Box::new(|conn: &mut AsyncMysqlConnection| {
                let state = conn
                    .instrumentation()
                    .downcast_ref::<InFlight>()
                    .map(|f| (f.open, f.failed));
                Box::pin(async move {
                    match state {
                        Some((open, _)) if open > 0 => {
                            Err(diesel::result::Error::BrokenTransactionManager)
                        }
                        // A query failed on it: a server's refusal leaves it usable, a
                        // lost connection (the server restarted, the network cut) does
                        // not, and mysql_async does not say which: ask the server.
                        Some((_, true)) => {
                            conn.batch_execute("SELECT 1").await?;
                            if let Some(f) = conn.instrumentation().downcast_mut::<InFlight>() {
                                f.failed = false;
                            }
                            Ok(())
                        }
                        _ => Ok(()),
                    }
                })
            }));
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = AsyncMysqlConnection::establish(&url).await?;
                conn.batch_execute(sql::SESSION)
                    .await
                    .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
                conn.set_instrumentation(InFlight::default());
                Ok(conn)
            })
        });
        AsyncDieselConnectionManager::new_with_config(url, config)
    }

    /// A store on the application's own pool (built with [`MysqlStore::manager`]), once
    /// one connection could be taken. Does not migrate.
    pub async fn from_pool(pool: Pool<AsyncMysqlConnection>) -> StoreResult<Self> {
        let store = Self {
            pool,
            schemas: Default::default(),
            enqueued: LocalEnqueueSignal::default(),
        };
        drop(store.conn().await?);
        Ok(store)
    }

    /// Applies the embedded migrations that this database has not run yet (tracked in
    /// diesel's `__diesel_schema_migrations`). Several nodes may call it at once: a named
    /// lock (`GET_LOCK`) serialises them. MySQL commits each DDL statement by itself, so a
    /// migration that fails half-way is not rolled back: the migrations are written so
    /// that this cannot happen on a supported server.
    pub async fn migrate(&self) -> StoreResult<()> {
        let conn = Box::new(Object::take(self.conn().await?));
        crate::migrate::run_in_task(conn, &sql::MIGRATE).await
    }

    /// Closes the pool: later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
    }

    async fn conn(&self) -> StoreResult<Object<AsyncMysqlConnection>> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Counts a connection's queries that started and did not finish: one left open means a
/// caller dropped the query's future mid-way, and the connection's protocol state is
/// unknown (the pool's recycle check then closes it). Also notes a query that failed: the
/// recycle check then pings the server before the connection is handed out again.
#[derive(Debug, Default)]
struct InFlight {
    open: u32,
    failed: bool,
}

impl diesel::connection::Instrumentation for InFlight {
    fn on_connection_event(&mut self, event: diesel::connection::InstrumentationEvent<'_>) {
        use diesel::connection::InstrumentationEvent as E;
        match event {
            E::StartQuery { .. } => self.open += 1,
            E::FinishQuery { error, .. } => {
                self.open = self.open.saturating_sub(1);
                self.failed |= error.is_some();
            }
            _ => {}
        }
    }
}

/// Evaluates `$tx` (one transaction, a `StoreResult`) again when InnoDB chose it as a
/// deadlock's victim, as MySQL's manual asks of every application; the victim was rolled
/// back whole. Up to [`DEADLOCK_ATTEMPTS`] attempts; then the error stands
/// (`Unavailable`: transient).
macro_rules! retry_deadlocks {
    ($tx:expr) => {{
        let mut attempt = 1;
        loop {
            match $tx {
                Err(e) if attempt < super::DEADLOCK_ATTEMPTS && super::is_deadlock(&e) => {
                    tracing::debug!(attempt, "deadlock victim: retrying the transaction");
                    attempt += 1;
                }
                out => break out,
            }
        }
    }};
}
use retry_deadlocks;

/// See [`retry_deadlocks`].
const DEADLOCK_ATTEMPTS: u32 = 5;

/// True for InnoDB's ER_LOCK_DEADLOCK (1213), which diesel reports by its message, and
/// for MariaDB's ER_AUTOINC_READ_FAILED (1467), which is what a deadlock's victim gets
/// when it was waiting for a table's AUTO-INC lock (an enqueue against a retry's
/// `INSERT … SELECT`; `SHOW ENGINE INNODB STATUS` lists it as a deadlock, rolled back).
fn is_deadlock(e: &StoreError) -> bool {
    let text = e.to_string();
    text.contains("Deadlock found") || text.contains("Failed to read auto-increment value")
}

/// A list of ids bound as one JSON array (`?`, see [`json_ids`]), as a table `j(id)`.
/// Statements that write rows by id join it first (`STRAIGHT_JOIN`): one primary-key
/// probe per id, whatever the optimizer thinks of a short `IN` list on a small table (a
/// scan, which would lock, or wait for, rows of other transactions), and one statement
/// text for any number of ids.
const IDS: &str = "JSON_TABLE(?, '$[*]' COLUMNS (id BIGINT PATH '$')) j";

/// A list of texts bound as one JSON array (`?`, see [`json_texts`]), as a table
/// `j(v)`; compare with `= j.v COLLATE utf8mb4_nopad_bin`, the schema's collation, so that
/// the index of the other side serves the join and `a` matches neither `A` nor `a `.
const TEXTS: &str = "JSON_TABLE(?, '$[*]' COLUMNS (v VARCHAR(255) PATH '$')) j";

/// `texts` as the JSON array [`TEXTS`] reads.
fn json_texts(texts: &[String]) -> String {
    serde_json::to_string(texts).unwrap_or_else(|_| "[]".into())
}

/// `ids` as the JSON array [`IDS`] reads.
fn json_ids(ids: &[i64]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// `n` placeholders for an `IN (…)` list, padded with NULLs (see [`padded`]) to the
/// next power of two, so that a list of any length uses one of a few statement texts
/// (each text is a prepared statement cached per connection).
fn in_list(n: usize) -> String {
    vec!["?"; n.max(1).next_power_of_two()].join(", ")
}

/// `items` padded with `None` to the length of [`in_list`]`(items.len())`: `x IN (…,
/// NULL)` is true exactly for the items.
fn padded<T: Clone>(items: &[T]) -> Vec<Option<T>> {
    let mut out: Vec<Option<T>> = items.iter().cloned().map(Some).collect();
    out.resize(items.len().max(1).next_power_of_two(), None);
    out
}

/// A malformed URL is `Invalid`, not `Unavailable`.
fn check_url(url: &str) -> StoreResult<()> {
    match mysql_async::Opts::from_url(url) {
        Ok(_) => Ok(()),
        Err(e) => Err(StoreError::invalid(
            "/database_url",
            format!("is not a valid MySQL connection URL: {e}"),
        )),
    }
}

crate::pooled::pooled_helpers!(
    MysqlStore,
    AsyncMysqlConnection,
    diesel::mysql::Mysql,
    crate::dialect::Dialect::Mysql
);

crate::job_store_by_sections!(MysqlStore);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_padded_to_a_power_of_two() {
        assert_eq!(in_list(0), "?");
        assert_eq!(in_list(3), "?, ?, ?, ?");
        assert_eq!(padded(&[1, 2, 3]), vec![Some(1), Some(2), Some(3), None]);
        assert_eq!(padded::<i64>(&[]), vec![None]);
        assert!(check_url("mysql://root@127.0.0.1:3306/app").is_ok());
        assert!(check_url("mysql://root@[::1/app").is_err());
    }
}
