//! The queue-depth query of both dialects (see `JobStore::queue_depths`): one statement,
//! grouped per queue, that counts the waiting entries of `bildad_queue` and the running
//! runs of `bildad_runs` (a running job is its run) with the database clock of the same
//! statement. Its rows are merged per queue by core's `merge_depths`.

use crate::dialect::Dialect;
use crate::rows::DbTime;
use crate::shared::count;
use bildad_core::{DepthPart, QueueDepth, Timestamp, merge_depths};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Nullable, Text};

/// The statement, in dialect `d`. The queue's side reads the queue table once (every row
/// of it is a waiting entry); the runs' side reads the partial index of running runs.
pub(crate) fn queue_depths_sql(d: Dialect) -> String {
    d.sql(
        "SELECT queue,
                count(CASE WHEN run_at <= {now} THEN 1 END) AS available,
                count(CASE WHEN run_at > {now} THEN 1 END) AS scheduled,
                CAST(0 AS BIGINT) AS running,
                min(CASE WHEN run_at <= {now} THEN run_at END) AS oldest_available,
                {now} AS now
         FROM bildad_queue WHERE status = 'AVAILABLE'
         GROUP BY queue
         UNION ALL
         SELECT queue, CAST(0 AS BIGINT), CAST(0 AS BIGINT), count(*), NULL, {now}
         FROM bildad_runs WHERE status = 'RUNNING'
         GROUP BY queue",
    )
}

/// One row of [`queue_depths_sql`].
#[derive(Debug, QueryableByName)]
pub(crate) struct DepthRow {
    #[diesel(sql_type = Text)]
    queue: String,
    #[diesel(sql_type = BigInt)]
    available: i64,
    #[diesel(sql_type = BigInt)]
    scheduled: i64,
    #[diesel(sql_type = BigInt)]
    running: i64,
    #[diesel(sql_type = Nullable<DbTime>)]
    oldest_available: Option<Timestamp>,
    #[diesel(sql_type = DbTime)]
    now: Timestamp,
}

/// The depths the rows tell.
pub(crate) fn depths(rows: Vec<DepthRow>) -> Vec<QueueDepth> {
    let Some(now) = rows.first().map(|r| r.now) else {
        return Vec::new();
    };
    let parts = rows.into_iter().map(|r| DepthPart {
        queue: r.queue,
        available: count(r.available),
        scheduled: count(r.scheduled),
        running: count(r.running),
        oldest_available: r.oldest_available,
    });
    merge_depths(parts.collect::<Vec<_>>(), now)
}
