//! Nodes on MariaDB: heartbeats, stops, the list (written once with PostgreSQL's:
//! `pooled::pooled_nodes`).

use super::MysqlStore;
use super::sql::HEARTBEAT;
use crate::dialect::Dialect;
use bildad_core::NodeRef;
use diesel::sql_query;
use diesel::sql_types::Text;

crate::pooled::pooled_nodes!(MysqlStore, diesel::mysql::Mysql, Dialect::Mysql);

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
