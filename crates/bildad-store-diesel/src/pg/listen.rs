//! Wake-ups on PostgreSQL: `LISTEN` on the channel that every enqueue notifies when it
//! commits.

use super::PgStore;
use crate::errors::db_error;
use async_trait::async_trait;
use bildad_core::{EnqueueListener, StoreResult};
use diesel::sql_query;
use diesel_async::RunQueryDsl;
use diesel_async::pooled_connection::deadpool::Object;

pub(super) async fn listen_for_enqueues(
    store: &PgStore,
) -> StoreResult<Option<Box<dyn EnqueueListener>>> {
    // A connection of its own, taken out of the pool for good: it only listens.
    let mut conn = Object::take(store.conn().await?);
    sql_query(format!("LISTEN {ENQUEUED_CHANNEL}"))
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    let (wake, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut notifications = std::pin::pin!(conn.notifications_stream());
        loop {
            tokio::select! {
                () = wake.closed() => return,
                n = notifications.next() => match n {
                    // A full channel already holds a wake-up: coalesce.
                    Some(Ok(_)) => {
                        let _ = wake.try_send(());
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "enqueue listener lost its connection");
                        return;
                    }
                    None => return,
                },
            }
        }
    });
    Ok(Some(Box::new(PgListener { rx })))
}

/// The channel `enqueue_many` notifies and `listen_for_enqueues` listens on.
const ENQUEUED_CHANNEL: &str = "bildad_enqueued";

/// A subscription to the enqueues of every node on the database.
struct PgListener {
    rx: tokio::sync::mpsc::Receiver<()>,
}

#[async_trait]
impl EnqueueListener for PgListener {
    async fn wait(&mut self) -> bool {
        self.rx.recv().await.is_some()
    }
}
