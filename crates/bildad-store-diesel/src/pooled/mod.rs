//! The sections that the two pooled, asynchronous backends (PostgreSQL and MySQL, both on
//! diesel-async and deadpool) write alike, written once as macros that each backend
//! expands for its store type, diesel backend and [`Dialect`](crate::dialect::Dialect).
//! The SQL is the dialect's (`$n`, `{now}`); what differs stays in the backend's files.
//!
//! Each macro expects, where it is expanded, a store type with
//! `async fn conn(&self) -> StoreResult<pooled connection>`. The schedules' macro is in
//! [`schedules`].

mod schedules;

pub(crate) use schedules::pooled_schedules;

/// The store's helpers: a listing's page and total, and an entry's id and current run.
macro_rules! pooled_helpers {
    ($store:ty, $conn:ty, $db:ty, $d:expr) => {
        impl $store {
            /// The rows of one page of `listing`, and its total.
            async fn listing<R>(
                &self,
                listing: &$crate::dialect::Listing,
            ) -> bildad_core::StoreResult<(Vec<R>, u64)>
            where
                R: diesel::QueryableByName<$db> + Send + 'static,
            {
                use diesel_async::RunQueryDsl;
                let mut conn = self.conn().await?;
                let rows: Vec<R> = listing
                    .rows()
                    .query::<$db>()
                    .load(&mut conn)
                    .await
                    .map_err($crate::errors::db_error)?;
                let total: $crate::rows::CountRow = listing
                    .count()
                    .query::<$db>()
                    .get_result(&mut conn)
                    .await
                    .map_err($crate::errors::db_error)?;
                Ok((rows, $crate::shared::count(total.n)))
            }

            /// Reads an entry's id and current run (a running entry is its run).
            async fn entry_run(
                conn: &mut $conn,
                identifier: &str,
            ) -> bildad_core::StoreResult<$crate::rows::EntryRunRow> {
                use diesel_async::RunQueryDsl;
                $crate::dialect::Stmt::new(
                    $d,
                    "SELECT id, current_run_id FROM bildad_entries_v2 WHERE job_run_identifier = $1",
                    vec![$crate::dialect::Arg::Text(Some(identifier.to_owned()))],
                )
                .query::<$db>()
                .get_result::<$crate::rows::EntryRunRow>(conn)
                .await
                .map_err(|e| match e {
                    diesel::result::Error::NotFound => $crate::errors::entry_not_found(identifier),
                    e => $crate::errors::db_error(e),
                })
            }
        }
    };
}
pub(crate) use pooled_helpers;

/// The reads: health, the clock, entries, runs, counts and depths.
macro_rules! pooled_reads {
    ($store:ty, $db:ty, $d:expr) => {
        use bildad_core::{
            EntryFilter, EntryStatus, JobRun, Page, PageRequest, QueueEntry, QueueStats, RunFilter,
            RunId, StoreError, StoreResult, Timestamp,
        };
        use diesel_async::RunQueryDsl;
        use $crate::dialect::{Arg, Stmt};
        use $crate::errors::{db_error, entry_not_found, not_found_is_none};
        use $crate::rows::{
            ENTRY_COLS, EntryRow, PositionRow, RUN_COLS, RunRow, StatsRow, TimeRow, convert,
        };

        pub(super) async fn ping(store: &$store) -> StoreResult<()> {
            let mut conn = store.conn().await?;
            diesel::sql_query("SELECT 1")
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(())
        }

        pub(super) async fn now(store: &$store) -> StoreResult<Timestamp> {
            let mut conn = store.conn().await?;
            let row: TimeRow = diesel::sql_query($d.sql("SELECT {now} AS t"))
                .get_result(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(row.t)
        }

        pub(super) async fn get_entry(store: &$store, identifier: &str) -> StoreResult<QueueEntry> {
            let mut conn = store.conn().await?;
            let row: Option<EntryRow> = Stmt::new(
                $d,
                &format!(
                    "SELECT {ENTRY_COLS} FROM bildad_entries_v2 e
                     JOIN bildad_templates t ON t.id = e.template_id
                     WHERE e.job_run_identifier = $1"
                ),
                vec![Arg::Text(Some(identifier.to_owned()))],
            )
            .query::<$db>()
            .get_result(&mut conn)
            .await
            .map(Some)
            .or_else(not_found_is_none)?;
            row.ok_or_else(|| entry_not_found(identifier))?.try_into()
        }

        pub(super) async fn entry_position(
            store: &$store,
            identifier: &str,
        ) -> StoreResult<Option<u64>> {
            let mut conn = store.conn().await?;
            let row: Option<PositionRow> = diesel::sql_query($crate::dialect::position($d))
                .bind::<diesel::sql_types::Text, _>(identifier)
                .get_result(&mut conn)
                .await
                .map(Some)
                .or_else(not_found_is_none)?;
            let row = row.ok_or_else(|| entry_not_found(identifier))?;
            Ok((row.status == EntryStatus::Available.as_str())
                .then(|| $crate::shared::count(row.ahead) + 1))
        }

        pub(super) async fn list_entries(
            store: &$store,
            status: Option<EntryStatus>,
            page: PageRequest,
        ) -> StoreResult<Page<QueueEntry>> {
            let filter = EntryFilter {
                status,
                ..Default::default()
            };
            list_entries_where(store, filter, page).await
        }

        pub(super) async fn list_entries_where(
            store: &$store,
            filter: EntryFilter,
            page: PageRequest,
        ) -> StoreResult<Page<QueueEntry>> {
            let l = $crate::dialect::entries($d, filter, page);
            let (rows, total) = store.listing::<EntryRow>(&l).await?;
            Ok(Page::new(convert(rows)?, total, page))
        }

        pub(super) async fn get_run(store: &$store, id: RunId) -> StoreResult<JobRun> {
            let mut conn = store.conn().await?;
            let row: Option<RunRow> = Stmt::new(
                $d,
                &format!("SELECT {RUN_COLS} FROM bildad_runs WHERE id = $1"),
                vec![Arg::BigInt(Some(id))],
            )
            .query::<$db>()
            .get_result(&mut conn)
            .await
            .map(Some)
            .or_else(not_found_is_none)?;
            row.ok_or_else(|| StoreError::NotFound(format!("run {id}")))?
                .try_into()
        }

        pub(super) async fn list_runs(
            store: &$store,
            filter: RunFilter,
            page: PageRequest,
        ) -> StoreResult<Page<JobRun>> {
            let l = $crate::dialect::runs($d, filter, page);
            let (rows, total) = store.listing::<RunRow>(&l).await?;
            Ok(Page::new(convert(rows)?, total, page))
        }

        pub(super) async fn stats(store: &$store) -> StoreResult<QueueStats> {
            let mut conn = store.conn().await?;
            let row: StatsRow = diesel::sql_query($crate::dialect::stats($d))
                .get_result(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(row.into())
        }

        pub(super) async fn queue_depths(
            store: &$store,
        ) -> StoreResult<Vec<bildad_core::QueueDepth>> {
            let mut conn = store.conn().await?;
            let rows: Vec<$crate::depth::DepthRow> =
                diesel::sql_query($crate::depth::queue_depths_sql($d))
                    .load(&mut conn)
                    .await
                    .map_err(db_error)?;
            Ok($crate::depth::depths(rows))
        }
    };
}
pub(crate) use pooled_reads;

/// The operator's actions: remove an entry, stop its run (both through the guarded
/// finalize, `finalize_in` of the expanding module's scope, in a transaction), and mark
/// a run's process killed.
macro_rules! pooled_operator {
    ($store:ty, $db:ty, $d:expr) => {
        use bildad_core::{
            Backoff, FailureKind, Finalize, Outcome, RemoveResult, RunId, StopResult, StoreError,
            StoreResult,
        };
        use diesel_async::{AsyncConnection, RunQueryDsl};
        use $crate::dialect::{Arg, Stmt};
        use $crate::errors::{Fail, db_error, keeps_changing};

        /// The finalize of run `run_id` with `kind`.
        fn end(run_id: RunId, kind: FailureKind) -> [Finalize; 1] {
            [Finalize {
                run_id,
                outcome: Outcome::standard(kind),
                backoff: Backoff::immediate(),
            }]
        }

        pub(super) async fn remove_entry(
            store: &$store,
            identifier: &str,
        ) -> StoreResult<RemoveResult> {
            let mut conn = store.conn().await?;
            // Optimistic: read the entry, then act only if it is still in that state (a
            // run is locked before its entry, as in every finalize, so no deadlock).
            for _ in 0..16 {
                let entry = <$store>::entry_run(&mut conn, identifier).await?;
                let done = conn
                    .transaction::<_, Fail, _>(async |c| match entry.current_run_id {
                        Some(run_id) => {
                            let ended = finalize_in(c, &end(run_id, FailureKind::Removed)).await?;
                            // The Removed disposition deleted the entry with its run.
                            Ok(ended[0].result.won.then_some(RemoveResult {
                                stopped_run: Some(run_id),
                            }))
                        }
                        None => {
                            let n = Stmt::new(
                                $d,
                                "DELETE FROM bildad_queue WHERE id = $1",
                                vec![Arg::BigInt(Some(entry.id))],
                            )
                            .query::<$db>()
                            .execute(c)
                            .await?;
                            Ok((n == 1).then_some(RemoveResult { stopped_run: None }))
                        }
                    })
                    .await
                    .map_err(|f| f.0)?;
                if let Some(done) = done {
                    return Ok(done);
                }
            }
            Err(keeps_changing(identifier))
        }

        pub(super) async fn stop_entry(
            store: &$store,
            identifier: &str,
        ) -> StoreResult<StopResult> {
            let mut conn = store.conn().await?;
            for _ in 0..16 {
                let entry = <$store>::entry_run(&mut conn, identifier).await?;
                let Some(run_id) = entry.current_run_id else {
                    return Err(StoreError::Conflict(format!(
                        "queue entry {identifier:?} is not running"
                    )));
                };
                let reqs = end(run_id, FailureKind::Stopped);
                let ended = conn
                    .transaction::<_, Fail, _>(async |c| finalize_in(c, &reqs).await)
                    .await
                    .map_err(|f| f.0)?;
                if let Some(node) = ended.into_iter().next().and_then(|e| e.node) {
                    return Ok(StopResult { run_id, node });
                }
            }
            Err(keeps_changing(identifier))
        }

        pub(super) async fn mark_killed(store: &$store, run: RunId) -> StoreResult<bool> {
            let mut conn = store.conn().await?;
            let n = $crate::dialect::mark_killed($d, run)
                .query::<$db>()
                .execute(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(n == 1)
        }
    };
}
pub(crate) use pooled_operator;

/// A node's stop, and the list of nodes (the heartbeat is each backend's).
macro_rules! pooled_nodes {
    ($store:ty, $db:ty, $d:expr) => {
        use bildad_core::{Node, StoreResult};
        use diesel_async::RunQueryDsl;
        use $crate::dialect::{Arg, Stmt};
        use $crate::errors::db_error;

        pub(super) async fn node_stopped(store: &$store, instance_id: &str) -> StoreResult<()> {
            let mut conn = store.conn().await?;
            Stmt::new(
                $d,
                "UPDATE bildad_nodes SET stopped_at = {now} WHERE instance_id = $1",
                vec![Arg::Text(Some(instance_id.to_owned()))],
            )
            .query::<$db>()
            .execute(&mut conn)
            .await
            .map_err(db_error)?;
            Ok(())
        }

        pub(super) async fn list_nodes(store: &$store) -> StoreResult<Vec<Node>> {
            let mut conn = store.conn().await?;
            let rows: Vec<$crate::rows::NodeRow> = diesel::sql_query($crate::dialect::NODES)
                .load(&mut conn)
                .await
                .map_err(db_error)?;
            Ok(rows.into_iter().map(Into::into).collect())
        }
    };
}
pub(crate) use pooled_nodes;

/// A template's delete (guarded against entries that still use it) and the listing.
macro_rules! pooled_templates {
    ($store:ty, $db:ty, $d:expr) => {
        /// Deletes the template `code`. No foreign key guards the queue's template_id
        /// (migration 000003): the template is locked first — `FOR UPDATE` waits for every
        /// enqueue holding it in share mode and keeps new ones out — then the next
        /// statement sees every entry those enqueues committed.
        pub(super) async fn delete_template(
            store: &$store,
            code: &str,
        ) -> bildad_core::StoreResult<()> {
            use diesel_async::{AsyncConnection, RunQueryDsl};
            use $crate::dialect::{Arg, Stmt};
            use $crate::errors::{Fail, template_in_use, template_not_found};
            let mut conn = store.conn().await?;
            conn.transaction::<_, Fail, _>(async |c| {
                let id = Stmt::new(
                    $d,
                    "SELECT id FROM bildad_templates WHERE code = $1 FOR UPDATE",
                    vec![Arg::Text(Some(code.to_owned()))],
                )
                .query::<$db>()
                .get_result::<$crate::rows::IdRow>(c)
                .await
                .map(|r| r.id)
                .map_err(|e| match e {
                    diesel::result::Error::NotFound => Fail(template_not_found(code)),
                    e => Fail::from(e),
                })?;
                let id = Arg::BigInt(Some(id));
                let used: $crate::rows::CountRow =
                    Stmt::new($d, $crate::dialect::TEMPLATE_USED, vec![id.clone()])
                        .query::<$db>()
                        .get_result(c)
                        .await?;
                if used.n > 0 {
                    return Err(Fail(template_in_use(code)));
                }
                Stmt::new($d, "DELETE FROM bildad_templates WHERE id = $1", vec![id])
                    .query::<$db>()
                    .execute(c)
                    .await?;
                Ok(())
            })
            .await
            .map_err(|f| f.0)
        }

        pub(super) async fn list_templates(
            store: &$store,
            filter: bildad_core::TemplateFilter,
            page: bildad_core::PageRequest,
        ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::JobTemplate>> {
            let l = $crate::dialect::templates($d, filter, page);
            let (rows, total) = store.listing::<$crate::rows::TemplateRow>(&l).await?;
            Ok(bildad_core::Page::new(
                rows.into_iter().map(Into::into).collect(),
                total,
                page,
            ))
        }
    };
}
pub(crate) use pooled_templates;

/// The queues' listing and one queue's read (the upsert is each backend's: PostgreSQL
/// also drops its cache of restricted queues).
macro_rules! pooled_queues {
    ($store:ty, $conn:ty, $db:ty, $d:expr) => {
        pub(super) async fn list_queues(
            store: &$store,
        ) -> bildad_core::StoreResult<Vec<bildad_core::QueueInfo>> {
            use diesel_async::RunQueryDsl;
            let mut conn = store.conn().await?;
            let rows: Vec<$crate::queues::QueueRow> = $crate::queues::queues_stmt($d, None)
                .query::<$db>()
                .load(&mut conn)
                .await
                .map_err($crate::errors::db_error)?;
            Ok(rows.into_iter().map(Into::into).collect())
        }

        pub(super) async fn get_queue(
            store: &$store,
            name: &str,
        ) -> bildad_core::StoreResult<bildad_core::QueueInfo> {
            bildad_core::check_queue_name(name)?;
            let mut conn = store.conn().await?;
            read_one(&mut conn, name).await
        }

        /// The queue `name` with its settings and counts.
        async fn read_one(
            conn: &mut $conn,
            name: &str,
        ) -> bildad_core::StoreResult<bildad_core::QueueInfo> {
            use diesel_async::RunQueryDsl;
            let rows: Vec<$crate::queues::QueueRow> = $crate::queues::queues_stmt($d, Some(name))
                .query::<$db>()
                .load(conn)
                .await
                .map_err($crate::errors::db_error)?;
            rows.into_iter()
                .next()
                .map(Into::into)
                .ok_or_else(|| bildad_core::StoreError::NotFound(format!("queue {name:?}")))
        }
    };
}
pub(crate) use pooled_queues;
