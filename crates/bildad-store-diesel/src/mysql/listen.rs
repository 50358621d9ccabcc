//! Wake-ups on MariaDB, which has no LISTEN/NOTIFY: enqueues through this store (this
//! process) wake at once; those of other nodes are seen by a poll of the queue's highest
//! id, one primary-key lookup every [`POLL`], so a node wakes at most [`POLL`] after
//! another node's enqueue commits (docs/STORAGE.md). A wake-up is only a hint: the claim
//! decides what runs.

use super::MysqlStore;
use crate::rows::CountRow;
use async_trait::async_trait;
use bildad_core::{EnqueueListener, StoreResult};
use diesel::sql_query;
use diesel_async::RunQueryDsl;
use std::time::Duration;

/// How often the listener looks for other nodes' enqueues.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// The queue's highest id: it grows with every new entry (a requeued entry keeps its id:
/// its node already knows it).
const HIGHEST: &str = "SELECT COALESCE(MAX(id), 0) AS n FROM bildad_queue";

pub(super) async fn listen_for_enqueues(
    store: &MysqlStore,
) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
    let mut local = store.enqueued.listener();
    let store = store.clone();
    let mut seen = highest(&store).await?;
    let (wake, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let woken = tokio::select! {
                () = wake.closed() => return,
                alive = local.wait() => alive,
                _ = tick.tick() => match highest(&store).await {
                    Ok(n) if n > seen => {
                        seen = n;
                        true
                    }
                    Ok(_) => false,
                    // The next tick tries again: an outage delays wake-ups, the ticker
                    // still runs the engine.
                    Err(e) => {
                        tracing::debug!(error = %e, "enqueue poll failed");
                        false
                    }
                },
            };
            if woken {
                // A full channel already holds a wake-up: coalesce.
                let _ = wake.try_send(());
            }
        }
    });
    Ok(Some(Box::new(MysqlListener { rx })))
}

async fn highest(store: &MysqlStore) -> StoreResult<i64> {
    let mut conn = store.conn().await?;
    let row: CountRow = sql_query(HIGHEST)
        .get_result(&mut conn)
        .await
        .map_err(crate::errors::db_error)?;
    Ok(row.n)
}

/// A subscription to the enqueues of every node on the database.
struct MysqlListener {
    rx: tokio::sync::mpsc::Receiver<()>,
}

#[async_trait]
impl EnqueueListener for MysqlListener {
    async fn wait(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}
