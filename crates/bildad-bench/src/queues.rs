//! Queues in the throughput scenario (issue #15, item 10): `n` jobs spread round-robin
//! over `count` queues `q0`…, `q0` with a global limit, to show that the claim stays
//! fast when queues and limits are in play (`--queues 10 --limited-queue-limit 5`).

use crate::{Backend, BenchDb};
use anyhow::{Context as _, Result};
use bildad_core::{JobStore, NewEntry, QueuePatch};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Bool, Double};
use diesel_async::RunQueryDsl;
use serde_json::json;

/// How the jobs of the throughput scenario are spread over queues.
#[derive(Debug, Clone, Copy, Default)]
pub struct QueueMix {
    /// Queues `q0`…`q{count-1}`; 0 or 1 = every job in its template's queue.
    pub count: usize,
    /// The `global_limit` of `q0`, if any.
    pub limit: Option<i32>,
}

impl QueueMix {
    /// True when jobs go to the named queues.
    pub fn spread(&self) -> bool {
        self.count > 1
    }

    /// Job `i`: in queue `q{i % count}` when spread.
    pub fn entry(&self, template: &str, i: u64) -> NewEntry {
        let e = NewEntry::new(template, json!({"i": i}));
        if self.spread() {
            e.queue(format!("q{}", i % self.count as u64))
        } else {
            e
        }
    }

    /// Sets `q0`'s limit, if any.
    ///
    /// # Errors
    /// When the store refuses the limit.
    pub async fn apply(&self, store: &dyn JobStore) -> Result<()> {
        if let (true, Some(n)) = (self.spread(), self.limit) {
            store
                .update_queue(
                    "q0",
                    QueuePatch {
                        global_limit: Some(Some(n)),
                        ..QueuePatch::default()
                    },
                )
                .await?;
        }
        Ok(())
    }

    /// ` queues=10 limited_queue_limit=5` for the result line (empty when not spread).
    pub fn label(&self) -> String {
        match (self.spread(), self.limit) {
            (false, _) => String::new(),
            (true, None) => format!(" queues={}", self.count),
            (true, Some(n)) => format!(" queues={} limited_queue_limit={n}", self.count),
        }
    }
}

/// Jobs per second of the limited queue `q0` and of the other queues, each from its first
/// run's start to its last run's end (the limited queue's tail runs alone, so the
/// scenario's overall rate says little about the claim).
#[derive(Debug, Clone, Copy)]
pub struct QueueRates {
    /// Jobs per second in `q0`.
    pub limited_per_s: f64,
    /// Jobs per second in the other queues.
    pub others_per_s: f64,
}

#[derive(QueryableByName)]
struct SpanRow {
    #[diesel(sql_type = Bool)]
    limited: bool,
    #[diesel(sql_type = BigInt)]
    jobs: i64,
    #[diesel(sql_type = Double)]
    seconds: f64,
}

/// The [`QueueRates`] of the history in `db`.
///
/// # Errors
/// On a database error.
pub(crate) async fn rates(db: &BenchDb) -> Result<QueueRates> {
    let rows: Vec<SpanRow> = match db.backend {
        Backend::Postgres => {
            let mut conn = crate::admin(&db.url).await?;
            diesel::sql_query(
                "SELECT queue = 'q0' AS limited, count(*) AS jobs,
                        extract(epoch FROM max(ended_at) - min(started_at))::float8 AS seconds
                 FROM bildad_runs GROUP BY 1",
            )
            .load(&mut conn)
            .await
        }
        // Times are integer microseconds in the SQLite schema.
        Backend::Sqlite => {
            let mut conn = db.sqlite_admin().await?;
            diesel::sql_query(
                "SELECT queue = 'q0' AS limited, count(*) AS jobs,
                        (max(ended_at) - min(started_at)) / 1e6 AS seconds
                 FROM bildad_runs GROUP BY 1",
            )
            .load(&mut conn)
            .await
        }
        Backend::Mysql => {
            let mut conn = crate::db::mysql_admin(&db.url).await?;
            diesel::sql_query(
                "SELECT queue = 'q0' AS limited, count(*) AS jobs,
                        TIMESTAMPDIFF(MICROSECOND, min(started_at), max(ended_at)) / 1e6
                            AS seconds
                 FROM bildad_runs GROUP BY 1",
            )
            .load(&mut conn)
            .await
        }
    }
    .context("reading the queues' spans")?;
    let rate = |limited: bool| {
        rows.iter()
            .find(|r| r.limited == limited)
            .map_or(0.0, |r| r.jobs as f64 / r.seconds.max(1e-9))
    };
    Ok(QueueRates {
        limited_per_s: rate(true),
        others_per_s: rate(false),
    })
}
