//! Enqueue inside the application's own transaction on PostgreSQL (SPEC §7): the same
//! enqueue as [`PgStore`]'s `JobStore::enqueue_many` (`enqueue::enqueue_on`, one piece
//! of code), on the `AsyncPgConnection` the application holds, inside a savepoint.

use super::PgStore;
use super::enqueue::enqueue_on;
use crate::EnqueueIn;
use crate::errors::{Fail, db_error};
use bildad_core::{NewEntry, QueueEntry, StoreResult};
use diesel_async::{AsyncConnection, AsyncPgConnection, TransactionManager};

/// Until the caller commits, the insert holds its templates' rows `FOR KEY SHARE`, so a
/// `delete_template` of one of them waits for that commit; `pg_notify` is delivered at
/// that commit (and dropped with a rolled-back savepoint).
impl EnqueueIn<AsyncPgConnection> for PgStore {
    async fn enqueue_many_in(
        &self,
        conn: &mut AsyncPgConnection,
        entries: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let schemas = &self.schemas;
        let depth = <AsyncPgConnection as AsyncConnection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()
            .map_err(db_error)?;
        match depth {
            // Inside the caller's transaction: a savepoint, so a failure leaves it usable.
            Some(_) => conn
                .transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, entries).await?))
                .await
                .map_err(|f| f.0),
            // Outside one, the enqueue's one write is atomic alone, as on the pool.
            None => enqueue_on(schemas, conn, entries).await,
        }
    }
}
