//! A testing-only helper: `EXPLAIN (ANALYZE, BUFFERS)` of the hot paths with their real
//! SQL (docs/STORAGE.md shows its output).

use super::PgStore;
use super::sql::{CLAIM, CLAIM_PLANNER, END_RUNS, EXPIRE, KILL, PICK};
use crate::errors::{Fail, db_error};
use crate::rows::IdRow;
use bildad_core::StoreResult;
use diesel::sql_query;
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text};
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};

#[cfg(feature = "testing")]
impl PgStore {
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the hot paths — claim, kill, expiry, finalize — with
    /// their real SQL, inside a transaction that is rolled back (nothing changes).
    pub(crate) async fn explain_hot_paths(
        &self,
        job_types: Vec<String>,
        node: String,
    ) -> StoreResult<Vec<(&'static str, String)>> {
        #[derive(diesel::QueryableByName)]
        struct PlanLine {
            #[diesel(sql_type = Text)]
            #[diesel(column_name = "QUERY PLAN")]
            line: String,
        }
        fn text(lines: Vec<PlanLine>) -> String {
            lines
                .into_iter()
                .map(|l| l.line)
                .collect::<Vec<_>>()
                .join("\n")
        }
        let mut conn = self.conn().await?;
        // Manual BEGIN … ROLLBACK: EXPLAIN ANALYZE executes the writes.
        conn.batch_execute("BEGIN").await.map_err(db_error)?;
        let plans = async {
            let c = &mut *conn;
            let mut out = Vec::new();
            let claim = CLAIM
                .replace("{pick}", PICK)
                .replace("{filter}", "e.run_at <= now()");
            // As `claim` runs it: with the planner settings of its transaction.
            c.batch_execute(CLAIM_PLANNER).await?;
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {claim}"))
                    .bind::<Array<Text>, _>(&job_types)
                    .bind::<BigInt, _>(500_i64)
                    .bind::<Text, _>(&node)
                    .bind::<Text, _>("explain")
                    .bind::<BigInt, _>(600_000_000_i64)
                    .load(c)
                    .await?;
            out.push(("claim (500 entries)", text(lines)));
            c.batch_execute(
                "RESET enable_sort; RESET enable_bitmapscan; RESET enable_hashjoin; \
                 RESET enable_mergejoin; RESET jit",
            )
            .await?;
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {KILL}"))
                    .bind::<Text, _>(&node)
                    .load(c)
                    .await?;
            out.push(("kill (runs_to_kill)", text(lines)));
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {EXPIRE}"))
                    .bind::<BigInt, _>(60_000_000_i64)
                    .load(c)
                    .await?;
            out.push(("expiry (runs_to_expire)", text(lines)));
            let running: Vec<IdRow> = sql_query(
                "SELECT id FROM bildad_runs
                     WHERE status = 'RUNNING' ORDER BY id LIMIT 500",
            )
            .load(c)
            .await?;
            let ids: Vec<i64> = running.into_iter().map(|r| r.id).collect();
            let n = ids.len();
            let lines: Vec<PlanLine> =
                sql_query(format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {END_RUNS}"))
                    .bind::<Array<BigInt>, _>(ids)
                    .bind::<Array<Text>, _>(vec!["SUCCEEDED"; n])
                    .bind::<Array<Nullable<Text>>, _>(vec![None::<String>; n])
                    .bind::<Array<Nullable<Jsonb>>, _>(vec![None::<serde_json::Value>; n])
                    .bind::<Array<Nullable<Text>>, _>(vec![Some("delete"); n])
                    .bind::<Array<BigInt>, _>(vec![0_i64; n])
                    .bind::<Array<Bool>, _>(vec![true; n])
                    .load(c)
                    .await?;
            out.push(("finalize: end runs by id (500 runs)", text(lines)));
            Ok::<_, Fail>(out)
        }
        .await;
        conn.batch_execute("ROLLBACK").await.map_err(db_error)?;
        plans.map_err(|f| f.0)
    }
}
