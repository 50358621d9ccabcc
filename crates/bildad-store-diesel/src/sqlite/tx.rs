//! Enqueue inside the application's own transaction on SQLite (SPEC §7): the same steps
//! as [`SqliteStore`]'s `JobStore::enqueue_many` (`enqueue::enqueue_on`), on the
//! connection the application holds — diesel-async's
//! `SyncConnectionWrapper<SqliteConnection>` or plain diesel's `SqliteConnection` —
//! inside a savepoint.

use super::enqueue::enqueue_on;
use super::{SqliteStore, Tx, Wrapped};
use crate::errors::db_error;
use bildad_core::{
    EnqueueOptions, JobArgs, NewEntry, QueueEntry, SchemaCache, StoreError, StoreResult,
};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::{Connection, SqliteConnection};

impl SqliteStore {
    /// Enqueues `entry` on the application's connection `conn` (from a diesel-async
    /// pool of `SyncConnectionWrapper<SqliteConnection>`), as part of the transaction the
    /// application holds on it: the job exists if and only if that transaction commits.
    ///
    /// The checks are exactly those of [`bildad_core::JobStore::enqueue`]: `Invalid`
    /// with every violation, `Conflict` for a taken identifier. A failed enqueue leaves
    /// the caller's transaction usable: it runs in a savepoint, rolled back on failure,
    /// so a batch is never half written. Outside any transaction it takes the file's
    /// write lock (`BEGIN IMMEDIATE`) and is its own transaction.
    ///
    /// **Wake-up.** This store cannot see the caller's commit, so it wakes nobody: call
    /// [`SqliteStore::notify_enqueued`] after the commit to start the entries at once
    /// (with `wake_on_enqueue`); otherwise the node's ticker finds them at its next tick.
    ///
    /// The connection must have the store's settings (foreign keys on, a busy timeout):
    /// build the application's pool with [`SqliteStore::manager`].
    ///
    /// ```no_run
    /// use bildad_core::{NewEntry, StoreError};
    /// use bildad_store_diesel::{SqliteConnectionWrapper, SqliteStore};
    /// use diesel_async::AsyncConnection;
    ///
    /// #[derive(Debug)]
    /// enum AppError {
    ///     Db(diesel::result::Error),
    ///     Jobs(StoreError),
    /// }
    /// impl From<diesel::result::Error> for AppError {
    ///     fn from(e: diesel::result::Error) -> Self { AppError::Db(e) }
    /// }
    /// impl From<StoreError> for AppError {
    ///     fn from(e: StoreError) -> Self { AppError::Jobs(e) }
    /// }
    ///
    /// async fn signup(store: &SqliteStore, conn: &mut SqliteConnectionWrapper) -> Result<(), AppError> {
    ///     conn.transaction::<_, AppError, _>(async |conn| {
    ///         // … the application's own writes on `conn` …
    ///         let entry = NewEntry::new("welcome", serde_json::json!({"email": "a@b.c"}));
    ///         store.enqueue_in(conn, entry).await?;
    ///         Ok(())
    ///     })
    ///     .await?;
    ///     store.notify_enqueued();
    ///     Ok(())
    /// }
    /// ```
    pub async fn enqueue_in(&self, conn: &mut Wrapped, entry: NewEntry) -> StoreResult<QueueEntry> {
        let mut out = self
            .enqueue_many_in(conn, vec![entry])
            .await
            .map_err(StoreError::for_single_entry)?;
        Ok(out.remove(0))
    }

    /// [`SqliteStore::enqueue_in`] for several entries: all of them or none, in order.
    /// Violations are reported at `/<index>/<field>`.
    pub async fn enqueue_many_in(
        &self,
        conn: &mut Wrapped,
        entries: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let schemas = self.schemas.clone();
        conn.spawn_blocking(move |c| Ok(in_savepoint(&schemas, c, entries)))
            .await
            .map_err(db_error)?
    }

    /// The typed [`SqliteStore::enqueue_in`]: the job `A::KIND` with `args` as its
    /// context and `options` over the job type's defaults (see [`NewEntry::typed`]).
    pub async fn enqueue_args_in<A: JobArgs>(
        &self,
        conn: &mut Wrapped,
        args: &A,
        options: EnqueueOptions,
    ) -> StoreResult<QueueEntry> {
        self.enqueue_in(conn, NewEntry::typed(args, options)?).await
    }

    /// [`SqliteStore::enqueue_many_in`] for an application on plain (synchronous) diesel,
    /// holding a `SqliteConnection` in its transaction. It blocks the calling thread:
    /// call it where blocking is allowed (diesel's own calls already are).
    pub fn enqueue_many_in_blocking(
        &self,
        conn: &mut SqliteConnection,
        entries: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        in_savepoint(&self.schemas, conn, entries)
    }

    /// Wakes this process's node for entries that a committed transaction enqueued
    /// through [`SqliteStore::enqueue_in`] (the store cannot see that commit). Other
    /// processes on the file are not woken: their tickers find the entries.
    pub fn notify_enqueued(&self) {
        self.enqueued.notify();
    }
}

/// The enqueue in a savepoint of the caller's transaction, or in a `BEGIN IMMEDIATE`
/// transaction of its own when the caller holds none.
fn in_savepoint(
    schemas: &SchemaCache,
    c: &mut SqliteConnection,
    entries: Vec<NewEntry>,
) -> StoreResult<Vec<QueueEntry>> {
    let depth = AnsiTransactionManager::transaction_manager_status_mut(c)
        .transaction_depth()
        .map_err(db_error)?;
    let body =
        |c: &mut SqliteConnection| -> Tx<Vec<QueueEntry>> { enqueue_on(schemas, c, entries) };
    match depth {
        // Nested: diesel takes a savepoint and rolls back to it on failure.
        Some(_) => c.transaction(body),
        None => c.immediate_transaction(body),
    }
    .map_err(|f| f.0)
}
