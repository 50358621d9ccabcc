//! The engine's and the killer's reads and the claim on MariaDB. The claim is one
//! transaction: the entries are picked in run order with `FOR UPDATE SKIP LOCKED` (the
//! fast path over the queues no setting restricts, then each limited queue within its
//! room, counted under its settings row's lock: `queues::special`), moved into their runs
//! by one `INSERT … SELECT … RETURNING`, and deleted.

pub(super) use super::finalize::finalize_many;
use super::{IDS, MysqlStore, in_list, json_ids, padded, retry_deadlocks};
use crate::errors::Fail;
use crate::rows::{DbTime, IdRow, RUN_COLS, RunRefRow, RunRow, duration_us};
use bildad_core::{ClaimRequest, ClaimedRun, RunId, RunRef, StoreResult, Timestamp};
use diesel::mysql::Mysql;
use diesel::sql_types::{BigInt, Integer, Nullable, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncMysqlConnection, RunQueryDsl};
use std::collections::HashMap;
use std::time::Duration;

/// A template whose job type the claim serves.
#[derive(QueryableByName)]
struct TemplateRef {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = DbTime)]
    updated_at: Timestamp,
}

/// An entry the claim picked (and locked).
#[derive(QueryableByName)]
struct Picked {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Integer)]
    priority: i32,
    #[diesel(sql_type = DbTime)]
    inserted_at: Timestamp,
    #[diesel(sql_type = Integer)]
    max_retries: i32,
    #[diesel(sql_type = BigInt)]
    template_id: i64,
    #[diesel(sql_type = DbTime)]
    run_at: Timestamp,
    #[diesel(sql_type = Nullable<Text>)]
    trace_context: Option<String>,
}

/// A run the claim inserted, with its entry's id.
#[derive(QueryableByName)]
struct Moved {
    #[diesel(embed)]
    run: RunRow,
    #[diesel(sql_type = BigInt)]
    entry_id: i64,
}

/// Moves the picked entries into their runs (`?` node instance, twice, then its name,
/// then the expiry grace in µs, then the ids, [`IDS`]): the run carries what the entry
/// carried.
fn move_sql() -> String {
    format!(
        "INSERT INTO bildad_runs (entry_id, job_run_identifier, template, job_type, retry,
            process_name, node, node_name, status, context, started_at, timeout_at,
            expires_at, template_id, priority, timeout_seconds, max_retries, uncounted_runs,
            entry_run_at, entry_inserted_at, queue, trace_context)
         SELECT e.id, e.job_run_identifier, t.code, t.job_type, e.attempts,
                CONCAT(?, '/', e.job_run_identifier, '/', e.attempts), ?, ?, 'RUNNING',
                e.context, UTC_TIMESTAMP(6),
                UTC_TIMESTAMP(6) + INTERVAL e.timeout_seconds SECOND,
                UTC_TIMESTAMP(6) + INTERVAL (e.timeout_seconds * 1000000 + ?) MICROSECOND,
                e.template_id, e.priority, e.timeout_seconds, e.max_retries,
                e.uncounted_runs, e.run_at, e.inserted_at, e.queue, e.trace_context
         FROM {IDS} STRAIGHT_JOIN bildad_queue e ON e.id = j.id
         JOIN bildad_templates t ON t.id = e.template_id
         RETURNING {RUN_COLS}, entry_id"
    )
}

pub(super) async fn claim(store: &MysqlStore, req: ClaimRequest) -> StoreResult<Vec<ClaimedRun>> {
    if req.limit == 0 || req.job_types.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    retry_deadlocks!(
        conn.transaction::<_, Fail, _>(async |c| claim_in(c, &req).await)
            .await
            .map_err(|f| f.0)
    )
}

async fn claim_in(
    c: &mut AsyncMysqlConnection,
    req: &ClaimRequest,
) -> Result<Vec<ClaimedRun>, Fail> {
    let mut q = sql_query(format!(
        "SELECT id, updated_at FROM bildad_templates WHERE job_type IN ({})",
        in_list(req.job_types.len())
    ))
    .into_boxed::<Mysql>();
    for t in padded(&req.job_types) {
        q = q.bind::<Nullable<Text>, _>(t);
    }
    let templates: Vec<TemplateRef> = q.load(c).await?;
    if templates.is_empty() {
        return Ok(Vec::new());
    }
    let template_ids: Vec<i64> = templates.iter().map(|t| t.id).collect();
    let (special, rooms) = super::queues::special(c, req).await?;
    let mut picked = pick(c, req, &template_ids, Pick::Except(&special), req.limit).await?;
    for (queue, room) in rooms {
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        picked.extend(pick(c, req, &template_ids, Pick::Only(&queue), room).await?);
    }
    picked.sort_by_key(|p| (p.priority, p.inserted_at, p.id));
    picked.truncate(req.limit as usize);
    if picked.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = picked.iter().map(|p| p.id).collect();
    let ids = json_ids(&ids);
    let moved: Vec<Moved> = sql_query(move_sql())
        .bind::<Text, _>(&req.node.instance_id)
        .bind::<Text, _>(&req.node.instance_id)
        .bind::<Text, _>(&req.node.name)
        .bind::<BigInt, _>(duration_us(req.expiry_grace))
        .bind::<Text, _>(&ids)
        .load(c)
        .await?;
    sql_query(format!(
        "DELETE e FROM {IDS} STRAIGHT_JOIN bildad_queue e ON e.id = j.id"
    ))
    .bind::<Text, _>(&ids)
    .execute(c)
    .await?;
    let updated: HashMap<i64, Timestamp> = templates.iter().map(|t| (t.id, t.updated_at)).collect();
    let mut runs: HashMap<i64, RunRow> = moved.into_iter().map(|m| (m.entry_id, m.run)).collect();
    let mut out = Vec::with_capacity(picked.len());
    for p in picked {
        let Some(run) = runs.remove(&p.id) else {
            continue;
        };
        out.push(ClaimedRun {
            run: run.try_into()?,
            max_retries: p.max_retries,
            template_id: p.template_id,
            template_updated_at: updated.get(&p.template_id).copied().unwrap_or_default(),
            entry_run_at: p.run_at,
            trace_context: p.trace_context,
        });
    }
    Ok(out)
}

/// Which queues a pick takes entries of.
enum Pick<'a> {
    /// Those the request serves, but none of these.
    Except(&'a [String]),
    /// Only this one.
    Only(&'a str),
}

/// At most `limit` available entries in run order, of the templates `template_ids` and
/// the queues `which` names, locked (skipping those another claim holds).
async fn pick(
    c: &mut AsyncMysqlConnection,
    req: &ClaimRequest,
    template_ids: &[i64],
    which: Pick<'_>,
    limit: u32,
) -> Result<Vec<Picked>, Fail> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let filter = match req.only_identifier {
        Some(_) => "e.job_run_identifier = ?",
        None => "e.run_at <= UTC_TIMESTAMP(6)",
    };
    let queues = match which {
        Pick::Except(special) => {
            let mut s = String::new();
            if !special.is_empty() {
                s.push_str(&format!(" AND e.queue NOT IN ({})", in_list(special.len())));
            }
            if let Some(served) = &req.queues {
                s.push_str(&format!(" AND e.queue IN ({})", in_list(served.len())));
            }
            s
        }
        Pick::Only(_) => " AND e.queue = ?".to_owned(),
    };
    // In run order through the claim's index, which the scan stops reading at the LIMIT
    // (else MariaDB may sort every entry of the templates, locking each).
    let index = match req.only_identifier {
        Some(_) => "",
        None => "FORCE INDEX (bildad_queue_claim)",
    };
    let mut q = sql_query(format!(
        "SELECT e.id, e.priority, e.inserted_at, e.max_retries, e.template_id, e.run_at,
                e.trace_context
         FROM bildad_queue e {index}
         WHERE e.status = 'AVAILABLE' AND {filter}
           AND e.template_id IN ({}){queues}
         ORDER BY e.priority, e.inserted_at, e.id
         LIMIT ?
         FOR UPDATE SKIP LOCKED",
        in_list(template_ids.len())
    ))
    .into_boxed::<Mysql>();
    if let Some(identifier) = &req.only_identifier {
        q = q.bind::<Text, _>(identifier.as_str());
    }
    for id in padded(template_ids) {
        q = q.bind::<Nullable<BigInt>, _>(id);
    }
    match which {
        Pick::Except(special) => {
            if !special.is_empty() {
                // Padded with "", no queue's name: NULL would make NOT IN unknown.
                for name in padded(special) {
                    q = q.bind::<Text, _>(name.unwrap_or_default());
                }
            }
            if let Some(served) = &req.queues {
                for name in padded(served) {
                    q = q.bind::<Nullable<Text>, _>(name);
                }
            }
        }
        Pick::Only(queue) => q = q.bind::<Text, _>(queue.to_owned()),
    }
    Ok(q.bind::<BigInt, _>(i64::from(limit)).load(c).await?)
}

pub(super) async fn runs_to_kill(store: &MysqlStore, node: &str) -> StoreResult<Vec<RunRef>> {
    let mut conn = store.conn().await?;
    let rows: Vec<RunRefRow> = sql_query(super::sql::KILL)
        .bind::<Text, _>(node)
        .load(&mut conn)
        .await
        .map_err(crate::errors::db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub(super) async fn runs_to_expire(
    store: &MysqlStore,
    node_dead_after: Duration,
) -> StoreResult<Vec<RunRef>> {
    let mut conn = store.conn().await?;
    let rows: Vec<RunRefRow> = sql_query(super::sql::EXPIRE)
        .bind::<BigInt, _>(duration_us(node_dead_after))
        .load(&mut conn)
        .await
        .map_err(crate::errors::db_error)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Of `runs`, in their order, those no longer `RUNNING`.
pub(super) async fn runs_finalized(store: &MysqlStore, runs: &[RunId]) -> StoreResult<Vec<RunId>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let mut conn = store.conn().await?;
    let running: Vec<IdRow> = sql_query(format!(
        "SELECT r.id FROM {IDS} STRAIGHT_JOIN bildad_runs r ON r.id = j.id
         WHERE r.status = 'RUNNING'"
    ))
    .bind::<Text, _>(json_ids(runs))
    .load(&mut conn)
    .await
    .map_err(crate::errors::db_error)?;
    let running: std::collections::HashSet<i64> = running.into_iter().map(|r| r.id).collect();
    Ok(runs
        .iter()
        .copied()
        .filter(|r| !running.contains(r))
        .collect())
}
