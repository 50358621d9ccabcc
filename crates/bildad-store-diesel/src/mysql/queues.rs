//! Queues on MariaDB (SPEC §8): the settings' reads and upsert, and the claim's rooms.
//! A claim locks the settings rows of the limited queues it serves (`FOR UPDATE`, in
//! name order) before it counts their runs: claims of one limited queue are serial, so
//! none can start runs between another's count and its inserts.

use super::{MysqlStore, in_list, padded};
use crate::dialect::Dialect;
use crate::errors::Fail;
use crate::queues::{
    LimitRow, RESTRICTED, Rooms, UpdateBinds, limits, special_names, special_rooms, update_stmt,
};
use crate::rows::TextRow;
use bildad_core::{ClaimRequest, QueueInfo, QueuePatch, StoreResult};
use diesel::mysql::Mysql;
use diesel::sql_query;
use diesel::sql_types::{Nullable, Text};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};

/// The queues a claim treats apart (restricted by their settings, or capped by the
/// node) among those it serves, with the room each leaves now; queues without room are
/// left out of the rooms but not of the names.
pub(super) async fn special(
    c: &mut AsyncMysqlConnection,
    req: &ClaimRequest,
) -> Result<(Vec<String>, Rooms), Fail> {
    let restricted: Vec<TextRow> = sql_query(RESTRICTED).load(c).await?;
    let names = special_names(req, restricted);
    if names.is_empty() {
        return Ok((names, Vec::new()));
    }
    let list = in_list(names.len());
    let mut lock = sql_query(format!(
        "SELECT name AS text FROM bildad_queues WHERE name IN ({list}) ORDER BY name FOR UPDATE"
    ))
    .into_boxed::<Mysql>();
    for n in padded(&names) {
        lock = lock.bind::<Nullable<Text>, _>(n);
    }
    lock.load::<TextRow>(c).await?;
    // A statement of its own after the lock: its clock, and what it sees, come after
    // the runs whose end gave this claim its room.
    let mut q = sql_query(limits(
        Dialect::Mysql,
        &list,
        "UTC_TIMESTAMP(6) - INTERVAL q.rate_period_seconds SECOND",
    ))
    .into_boxed::<Mysql>();
    for n in padded(&names) {
        q = q.bind::<Nullable<Text>, _>(n);
    }
    let rows: Vec<LimitRow> = q.load(c).await?;
    let rooms = special_rooms(req, rows.into_iter().map(LimitRow::room).collect());
    Ok((names, rooms))
}

crate::pooled::pooled_queues!(
    MysqlStore,
    AsyncMysqlConnection,
    diesel::mysql::Mysql,
    Dialect::Mysql
);

pub(super) async fn update_queue(
    store: &MysqlStore,
    name: &str,
    patch: QueuePatch,
) -> StoreResult<QueueInfo> {
    patch.validate(name)?;
    let mut conn = store.conn().await?;
    let b = UpdateBinds::from(&patch);
    conn.transaction::<_, Fail, _>(async |c| {
        update_stmt(Dialect::Mysql, name, &b)
            .query::<Mysql>()
            .execute(c)
            .await?;
        Ok(read_one(c, name).await?)
    })
    .await
    .map_err(|f| f.0)
}
