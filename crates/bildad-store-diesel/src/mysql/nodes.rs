//! Nodes on MariaDB: heartbeats, stops, the list.

use super::MysqlStore;
use super::sql::HEARTBEAT;
use crate::dialect;
use crate::errors::db_error;
use crate::rows::NodeRow;
use bildad_core::{Node, NodeRef, StoreResult};
use diesel::sql_query;
use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;

pub(super) async fn heartbeat(store: &MysqlStore, node: &NodeRef) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    sql_query(HEARTBEAT)
        .bind::<Text, _>(&node.instance_id)
        .bind::<Text, _>(&node.name)
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn node_stopped(store: &MysqlStore, instance_id: &str) -> StoreResult<()> {
    let mut conn = store.conn().await?;
    sql_query("UPDATE bildad_nodes SET stopped_at = UTC_TIMESTAMP(6) WHERE instance_id = ?")
        .bind::<Text, _>(instance_id)
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(())
}

pub(super) async fn list_nodes(store: &MysqlStore) -> StoreResult<Vec<Node>> {
    let mut conn = store.conn().await?;
    let rows: Vec<NodeRow> = sql_query(dialect::NODES)
        .load(&mut conn)
        .await
        .map_err(db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}
