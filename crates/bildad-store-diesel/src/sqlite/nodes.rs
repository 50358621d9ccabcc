//! Nodes on SQLite: heartbeats, stops, the list.

use super::SqliteStore;
use super::sql::NOW;
use crate::dialect;
use crate::rows::NodeRow;
use bildad_core::{Node, NodeRef, StoreResult};
use diesel::sql_types::Text;
use diesel::{RunQueryDsl, sql_query};

pub(super) async fn heartbeat(store: &SqliteStore, node: &NodeRef) -> StoreResult<()> {
    let node = node.clone();
    store
        .run(move |c| {
            sql_query(format!(
            "INSERT INTO bildad_nodes (instance_id, name, started_at, last_heartbeat_at)
             VALUES (?1, ?2, {NOW}, {NOW})
             ON CONFLICT (instance_id) DO UPDATE SET last_heartbeat_at = excluded.last_heartbeat_at"
        ))
            .bind::<Text, _>(&node.instance_id)
            .bind::<Text, _>(&node.name)
            .execute(c)?;
            Ok(())
        })
        .await
}

pub(super) async fn node_stopped(store: &SqliteStore, instance_id: &str) -> StoreResult<()> {
    let instance_id = instance_id.to_string();
    store
        .run(move |c| {
            sql_query(format!(
                "UPDATE bildad_nodes SET stopped_at = {NOW} WHERE instance_id = ?1"
            ))
            .bind::<Text, _>(&instance_id)
            .execute(c)?;
            Ok(())
        })
        .await
}

pub(super) async fn list_nodes(store: &SqliteStore) -> StoreResult<Vec<Node>> {
    store
        .run(|c| {
            let rows: Vec<NodeRow> = sql_query(dialect::NODES).load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
}
