//! Queues on PostgreSQL (SPEC §8): the settings' reads and upsert, and the claim's
//! bounded path for the limited queues a node serves.
//!
//! The claim's fast path (one statement, `sql::CLAIM`) skips every queue whose settings
//! restrict it; it reads them inside the statement, so a pause or a limit binds every
//! claim that starts after it commits. The limited queues are claimed here, in one
//! transaction: their settings rows are locked `FOR UPDATE` in name order, then a new
//! statement (a new snapshot, which sees every run the previous holders of the locks
//! committed) counts their running runs and their starts within the rate window, and the
//! claim takes at most the room left. Two claimers can never both take a queue's last
//! slot: the second waits for the first's commit, then counts its runs.

use super::PgStore;
use super::prepared::Cached;
use super::sql::{CLAIM, PICK_LIMITED};
use crate::dialect::Dialect;
use crate::errors::{Fail, db_error};
use crate::queues::{
    LIMITED, LimitRow, UpdateBinds, bind_update, limits, special_rooms, update_sql,
};
use crate::rows::{ClaimRow, TextRow, duration_us};
use bildad_core::{ClaimRequest, QueueInfo, QueuePatch, StoreResult};
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a node trusts its list of restricted queues before it reads it again. The
/// list only decides whether a claim also takes the bounded path: the fast path reads
/// the settings itself, so a stale list can delay the first claims of a newly limited
/// queue by this long, never break a limit or a pause.
const RESTRICTED_TTL: Duration = Duration::from_secs(1);

/// The names of the limited queues, as last read (see [`RESTRICTED_TTL`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct RestrictedCache(Arc<Mutex<Option<Restricted>>>);

/// When the list was read, and the names.
type Restricted = (Instant, Arc<Vec<String>>);

impl RestrictedCache {
    fn fresh(&self) -> Option<Arc<Vec<String>>> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref()
            .filter(|(at, _)| at.elapsed() < RESTRICTED_TTL)
            .map(|(_, names)| names.clone())
    }

    fn store(&self, names: Arc<Vec<String>>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), names));
    }

    /// Forgets the list (this node changed a queue's settings).
    fn clear(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// The limited queues, from the cache or read now (a queue that is only paused is not
/// among them: the fast path skips it by itself).
pub(super) async fn restricted(
    store: &PgStore,
    conn: &mut AsyncPgConnection,
) -> StoreResult<Arc<Vec<String>>> {
    if let Some(names) = store.restricted.fresh() {
        return Ok(names);
    }
    let rows: Vec<TextRow> = Cached(sql_query(LIMITED))
        .load(conn)
        .await
        .map_err(db_error)?;
    let names = Arc::new(rows.into_iter().map(|r| r.text).collect::<Vec<_>>());
    store.restricted.store(names.clone());
    Ok(names)
}

/// Claims up to `req.limit` entries of the `special` queues (limited by their settings or
/// capped by the node), within their rooms, in one transaction (see the module's doc).
pub(super) async fn claim_limited(
    conn: &mut AsyncPgConnection,
    req: &ClaimRequest,
    special: &[String],
) -> StoreResult<Vec<ClaimRow>> {
    // The clock of each statement, not of the transaction (`now()`), which began before
    // the lock was granted: a run then starts, on the record, after the runs whose end
    // gave it its slot, and the rate window ends when the count is taken.
    let limits_sql = limits(
        Dialect::Postgres,
        "SELECT unnest($1::text[])",
        "statement_timestamp() - q.rate_period_seconds * interval '1 second'",
    );
    conn.transaction::<_, Fail, _>(async |c| {
        sql_query(
            "SELECT name AS text FROM bildad_queues WHERE name = ANY($1) ORDER BY name \
             FOR UPDATE",
        )
        .bind::<Array<Text>, _>(special)
        .load::<TextRow>(c)
        .await?;
        let rows: Vec<LimitRow> = sql_query(&limits_sql)
            .bind::<Array<Text>, _>(special)
            .load(c)
            .await?;
        let rooms = special_rooms(req, rows.into_iter().map(LimitRow::room).collect());
        if rooms.is_empty() {
            return Ok(Vec::new());
        }
        let (names, sizes): (Vec<String>, Vec<i64>) = rooms
            .into_iter()
            .map(|(q, n)| (q, i64::try_from(n).unwrap_or(i64::MAX)))
            .unzip();
        let filter = if req.only_identifier.is_some() {
            "e.job_run_identifier = $8"
        } else {
            "e.run_at <= now() AND $8::text IS NULL"
        };
        let sql = CLAIM
            .replace("{pick}", &PICK_LIMITED.replace("{filter}", filter))
            .replace("now()", "statement_timestamp()");
        Ok(sql_query(sql)
            .bind::<Array<Text>, _>(&req.job_types)
            .bind::<BigInt, _>(i64::from(req.limit))
            .bind::<Text, _>(&req.node.instance_id)
            .bind::<Text, _>(&req.node.name)
            .bind::<BigInt, _>(duration_us(req.expiry_grace))
            .bind::<Array<Text>, _>(&names)
            .bind::<Array<BigInt>, _>(&sizes)
            .bind::<Nullable<Text>, _>(req.only_identifier.as_deref())
            .load(c)
            .await?)
    })
    .await
    .map_err(|f| f.0)
}

crate::pooled::pooled_queues!(
    PgStore,
    AsyncPgConnection,
    diesel::pg::Pg,
    Dialect::Postgres
);

pub(super) async fn update_queue(
    store: &PgStore,
    name: &str,
    patch: QueuePatch,
) -> StoreResult<QueueInfo> {
    patch.validate(name)?;
    let mut conn = store.conn().await?;
    let b = UpdateBinds::from(&patch);
    bind_update!(sql_query(update_sql(Dialect::Postgres)), name, b)
        .execute(&mut conn)
        .await
        .map_err(db_error)?;
    store.restricted.clear();
    read_one(&mut conn, name).await
}
