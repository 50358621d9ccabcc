//! Enqueue inside the application's own transaction on MariaDB (SPEC §7): the same
//! enqueue as [`MysqlStore`]'s `JobStore::enqueue_many` (`enqueue::enqueue_on`, one piece
//! of code), on the `AsyncMysqlConnection` the application holds, inside a savepoint.

use super::MysqlStore;
use super::enqueue::enqueue_on;
use crate::EnqueueIn;
use crate::errors::Fail;
use bildad_core::{NewEntry, QueueEntry, StoreResult};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};

/// Until the caller commits, the enqueue holds its templates' rows in share mode, so a
/// `delete_template` of one of them waits for that commit. The caller's connection should
/// be `READ COMMITTED` (as [`MysqlStore::manager`]'s are); on the server's default,
/// `REPEATABLE READ`, the identifier checks read the transaction's first snapshot and a
/// race with a claim can end in a `Conflict` that a retry resolves. Other nodes are woken
/// by their poll once the caller commits (`listen`).
impl EnqueueIn<AsyncMysqlConnection> for MysqlStore {
    async fn enqueue_many_in(
        &self,
        conn: &mut AsyncMysqlConnection,
        entries: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let schemas = &self.schemas;
        // Nested in the caller's transaction, diesel takes a savepoint (so a failure
        // leaves that transaction usable); outside one, this is the enqueue's own.
        conn.transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, entries).await?))
            .await
            .map_err(|f| f.0)
    }
}
