//! `SqliteStore`: the `JobStore` on embedded SQLite (bundled libsqlite3), for a single
//! node. Connections are diesel-async `SyncConnectionWrapper`s in a deadpool pool; each
//! call runs its synchronous diesel work on the blocking pool, and every multi-statement
//! write is one `BEGIN IMMEDIATE` transaction, so writers queue on SQLite's lock (WAL
//! mode, busy timeout) instead of failing.
//!
//! Timestamps are integer microseconds from SQLite's own clock, read in SQL.
//!
//! One file per section of the trait, as for PostgreSQL: [`templates`], [`enqueue`],
//! [`claim`], [`operator`], [`reads`], [`nodes`], [`listen`]; the SQL text in [`sql`];
//! [`tx`] enqueues on the application's own connection, inside its transaction.
//! This file holds the pool, `migrate`, and the helpers every section uses.

mod claim;
mod enqueue;
mod listen;
mod nodes;
mod operator;
mod queues;
mod reads;
mod schedules;
pub(crate) mod sql;
mod templates;
mod tx;
mod unique;

use crate::PoolOptions;
use crate::dialect::Listing;
use crate::errors::{Fail, db_error, entry_not_found, pool_error};
use crate::rows::{CountRow, EntryRunRow, TextRow};
use crate::shared::count;
use bildad_core::{LocalEnqueueSignal, SchemaCache, StoreError, StoreResult};
use diesel::result::Error as DieselError;
use diesel::sql_types::{BigInt, Text};
use diesel::sqlite::Sqlite;
use diesel::{QueryableByName, RunQueryDsl, SqliteConnection, sql_query};
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use sql::{NOW, PRAGMAS};
use std::sync::Arc;

/// The connection an application using diesel-async on SQLite holds (and pools).
pub type SqliteConnectionWrapper = SyncConnectionWrapper<SqliteConnection>;
type Wrapped = SqliteConnectionWrapper;

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
struct NowRow {
    #[diesel(sql_type = BigInt)]
    now: i64,
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
        let pool = Pool::builder(Self::manager(&path))
            .max_size(max_size)
            .wait_timeout(Some(options.wait_timeout))
            .create_timeout(Some(options.connect_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::database(format!("cannot build the connection pool: {e}")))?;
        Self::on_pool(pool, path).await
    }

    /// The connection manager for a pool on the file at `path` whose connections have
    /// the store's settings (WAL, a busy timeout so writers wait for each other, foreign
    /// keys on). An application that shares its pool with the store
    /// ([`SqliteStore::from_pool`]) or enqueues in its transactions
    /// ([`EnqueueIn`](crate::EnqueueIn)) builds that pool with it.
    pub fn manager(path: &str) -> AsyncDieselConnectionManager<Wrapped> {
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
        AsyncDieselConnectionManager::<Wrapped>::new_with_config(path, config)
    }

    /// A store on the application's own pool (built with [`SqliteStore::manager`]):
    /// every statement takes its connections from it. A write holds one connection for
    /// its `BEGIN IMMEDIATE` transaction; SQLite has one writer at a time, so a few
    /// connections are enough. `Invalid` at `/pool` when a connection does not enforce
    /// foreign keys or has no busy timeout (the pool was not built with
    /// [`SqliteStore::manager`]); does not migrate.
    ///
    /// ```no_run
    /// use bildad_store_diesel::SqliteStore;
    /// use diesel_async::pooled_connection::deadpool::Pool;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let pool = Pool::builder(SqliteStore::manager("app.db")).max_size(4).build()?;
    /// let store = SqliteStore::from_pool(pool.clone()).await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_pool(pool: Pool<Wrapped>) -> StoreResult<Self> {
        let mut conn = pool.get().await.map_err(pool_error)?;
        let (path, set_up) = conn
            .spawn_blocking(|c| {
                let db: TextRow =
                    sql_query("SELECT file AS text FROM pragma_database_list WHERE name = 'main'")
                        .get_result(c)?;
                let fk: CountRow =
                    sql_query("SELECT foreign_keys AS n FROM pragma_foreign_keys").get_result(c)?;
                let busy: CountRow =
                    sql_query("SELECT timeout AS n FROM pragma_busy_timeout").get_result(c)?;
                Ok((db.text, fk.n == 1 && busy.n > 0))
            })
            .await
            .map_err(db_error)?;
        drop(conn);
        if !set_up {
            return Err(StoreError::invalid(
                "/pool",
                "its connections lack the store's settings (foreign keys, a busy timeout): \
                 build it with SqliteStore::manager",
            ));
        }
        Self::on_pool(pool, path).await
    }

    /// The store on `pool`, once one connection could be taken.
    async fn on_pool(pool: Pool<Wrapped>, path: String) -> StoreResult<Self> {
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
        crate::migrate::run_in_task(self.pool.get().await.map_err(pool_error)?, &sql::MIGRATE).await
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

/// SQLite's clock now, in microseconds.
fn now_us(c: &mut SqliteConnection) -> Tx<i64> {
    Ok(sql_query(format!("SELECT {NOW} AS now"))
        .get_result::<NowRow>(c)?
        .now)
}

/// A list bound as one JSON array (read with `json_each`).
fn json_array<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

/// `Ok(None)` for a missing row.
fn optional<T>(r: Result<T, DieselError>) -> Tx<Option<T>> {
    match r {
        Ok(x) => Ok(Some(x)),
        Err(DieselError::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The rows of one page of `listing`, and its total.
fn listing<R>(c: &mut SqliteConnection, listing: &Listing) -> Tx<(Vec<R>, u64)>
where
    R: QueryableByName<Sqlite> + 'static,
{
    let rows: Vec<R> = listing.rows().query::<Sqlite>().load(c)?;
    let total: CountRow = listing.count().query::<Sqlite>().get_result(c)?;
    Ok((rows, count(total.n)))
}

/// Reads an entry's id and current run.
fn entry_run(c: &mut SqliteConnection, identifier: &str) -> Tx<EntryRunRow> {
    optional(
        sql_query("SELECT id, current_run_id FROM bildad_entries_v2 WHERE job_run_identifier = ?1")
            .bind::<Text, _>(identifier)
            .get_result::<EntryRunRow>(c),
    )?
    .ok_or_else(|| Fail(entry_not_found(identifier)))
}

crate::job_store_by_sections!(SqliteStore);

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
