//! Enqueue inside the application's own transaction on SQLite (SPEC §7): the same steps
//! as [`SqliteStore`]'s `JobStore::enqueue_many` (`enqueue::enqueue_on`), on the
//! connection the application holds — diesel-async's
//! `SyncConnectionWrapper<SqliteConnection>` or plain diesel's `SqliteConnection` —
//! inside a savepoint.

use super::enqueue::enqueue_on;
use super::{SqliteStore, Tx, Wrapped};
use crate::EnqueueIn;
use crate::errors::db_error;
use bildad_core::{NewEntry, QueueEntry, SchemaCache, StoreResult};
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::{Connection, SqliteConnection};

/// The connection must have the store's settings (foreign keys on, a busy timeout):
/// build the application's pool with [`SqliteStore::manager`]. This store cannot see the
/// caller's commit, so it wakes nobody: see [`SqliteStore::notify_enqueued`].
impl EnqueueIn<Wrapped> for SqliteStore {
    async fn enqueue_many_in(
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
}

impl SqliteStore {
    /// [`EnqueueIn::enqueue_many_in`] for an application on plain (synchronous) diesel,
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
    /// through [`EnqueueIn`] (the store cannot see that commit). Other processes on the
    /// file are not woken: their tickers find the entries.
    pub fn notify_enqueued(&self) {
        self.enqueued.notify();
    }
}

/// The enqueue in a savepoint of the caller's transaction (which keeps a batch all or
/// nothing inside it), or in a `BEGIN IMMEDIATE` transaction of its own when the caller
/// holds none.
pub(super) fn in_savepoint(
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
