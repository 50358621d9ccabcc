//! Queues on SQLite (SPEC §8): the settings' reads and upsert, and the claim's rooms.
//! The claim reads the settings and counts the runs inside its `BEGIN IMMEDIATE`
//! transaction, which holds the file's write lock: no other claim, in this process or
//! another, can start runs between the count and the claim's own inserts.

use super::{SqliteStore, Tx, json_array, optional};
use crate::dialect::Dialect;
use crate::queues::{
    LimitRow, QueueRow, RESTRICTED, Rooms, UpdateBinds, bind_update, limits, queues_sql,
    special_names, special_rooms, update_sql,
};
use crate::rows::TextRow;
use bildad_core::{ClaimRequest, QueueInfo, QueuePatch, StoreError, StoreResult, check_queue_name};
use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{RunQueryDsl, SqliteConnection, sql_query};

/// The queues a claim treats apart (restricted by their settings, or capped by the
/// node) among those it serves, with the room each leaves now (`now` in µs); queues
/// without room are left out of the rooms but not of the names.
pub(super) fn special(
    c: &mut SqliteConnection,
    req: &ClaimRequest,
    now: i64,
) -> Tx<(Vec<String>, Rooms)> {
    let restricted: Vec<TextRow> = sql_query(RESTRICTED).load(c)?;
    let names = special_names(req, restricted);
    if names.is_empty() {
        return Ok((names, Vec::new()));
    }
    let rows: Vec<LimitRow> = sql_query(limits(
        Dialect::Sqlite,
        "SELECT value FROM json_each($1)",
        "$2 - q.rate_period_seconds * 1000000",
    ))
    .bind::<Text, _>(json_array(&names))
    .bind::<BigInt, _>(now)
    .load(c)?;
    let rooms = special_rooms(req, rows.into_iter().map(LimitRow::room).collect());
    Ok((names, rooms))
}

pub(super) async fn list_queues(store: &SqliteStore) -> StoreResult<Vec<QueueInfo>> {
    store
        .run(|c| {
            let rows: Vec<QueueRow> = sql_query(queues_sql(Dialect::Sqlite))
                .bind::<Nullable<Text>, _>(None::<&str>)
                .load(c)?;
            Ok(rows.into_iter().map(Into::into).collect())
        })
        .await
}

pub(super) async fn get_queue(store: &SqliteStore, name: &str) -> StoreResult<QueueInfo> {
    check_queue_name(name)?;
    let name = name.to_owned();
    store.run(move |c| read_one(c, &name)).await
}

fn read_one(c: &mut SqliteConnection, name: &str) -> Tx<QueueInfo> {
    let row: Option<QueueRow> = optional(
        sql_query(queues_sql(Dialect::Sqlite))
            .bind::<Nullable<Text>, _>(Some(name))
            .get_result(c),
    )?;
    row.map(Into::into)
        .ok_or_else(|| StoreError::NotFound(format!("queue {name:?}")).into())
}

pub(super) async fn update_queue(
    store: &SqliteStore,
    name: &str,
    patch: QueuePatch,
) -> StoreResult<QueueInfo> {
    patch.validate(name)?;
    let name = name.to_owned();
    store
        .write(move |c| {
            let b = UpdateBinds::from(&patch);
            bind_update!(sql_query(update_sql(Dialect::Sqlite)), &name, b).execute(c)?;
            read_one(c, &name)
        })
        .await
}
