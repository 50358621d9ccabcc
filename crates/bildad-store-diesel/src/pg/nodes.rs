//! Nodes on PostgreSQL: heartbeats (a cached statement), stops, the list (written once
//! with MySQL's: `pooled::pooled_nodes`).

use super::PgStore;
use super::prepared::Cached;
use super::sql::HEARTBEAT;
use crate::dialect::Dialect;
use bildad_core::NodeRef;
use diesel::sql_query;
use diesel::sql_types::Text;

crate::pooled::pooled_nodes!(PgStore, diesel::pg::Pg, Dialect::Postgres);

pub(super) async fn heartbeat(store: &PgStore, node: &NodeRef) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    Cached(
        sql_query(HEARTBEAT)
            .bind::<Text, _>(&node.instance_id)
            .bind::<Text, _>(&node.name),
    )
    .execute(&mut conn)
    .await
    .map_err(db_error)?;
    Ok(())
}
