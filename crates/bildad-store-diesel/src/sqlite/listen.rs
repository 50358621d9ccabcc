//! Wake-ups on SQLite: in process only (SQLite has no LISTEN/NOTIFY; the embedded node
//! is the file's single writer).

use super::SqliteStore;
use bildad_core::{EnqueueListener, StoreResult};

/// Wakes for enqueues through this store instance only (and its clones): the
/// embedded node's own HTTP API and library calls, not another process on the file.
pub(super) async fn listen_for_enqueues(
    store: &SqliteStore,
) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
    Ok(Some(store.enqueued.listener()))
}
