//! Bildad's `JobStore` on diesel: PostgreSQL and embedded SQLite.
//!
//! - [`PgStore`] (feature `postgres`): diesel-async's pure-Rust PostgreSQL driver
//!   (tokio-postgres, no libpq) behind a deadpool pool. Claims with one
//!   `FOR UPDATE SKIP LOCKED` statement; finalizes in batches by explicit run ids.
//! - [`SqliteStore`] (feature `sqlite`): bundled SQLite in WAL mode; every write is a
//!   `BEGIN IMMEDIATE` transaction, so concurrent writers wait for each other (up to the
//!   busy timeout) instead of failing.
//!
//! An application enqueues inside its own diesel-async transaction with [`EnqueueIn`]
//! (the job exists if and only if that transaction commits), can build either store on
//! its own connection pool (`PgStore::from_pool`, `SqliteStore::from_pool`), and can run
//! Bildad's migrations with its own through diesel's migration harness ([`harness`]).
//!
//! [`connect`] picks the store by the URL's scheme and migrates it. The schema lives in
//! `migrations/postgres` and `migrations/sqlite` (diesel layout), embedded at build time;
//! `docs/STORAGE.md` explains the tables, the indexes and the query plans.
//!
//! **Architecture invariant:** only this crate writes SQL. It behaves exactly like
//! `bildad_core::MemoryStore`, the reference implementation, and the conformance suite
//! checks it.

#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod depth;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod dialect;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod errors;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub mod harness;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod migrate;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod pooled;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod queues;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod rows;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod schedules;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
mod tx;

#[cfg(feature = "mysql")]
pub use mysql::MysqlStore;
#[cfg(feature = "postgres")]
pub use pg::{ClaimConnections, PgStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteConnectionWrapper, SqliteStore};
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub use tx::EnqueueIn;

use bildad_core::{JobStore, StoreError, StoreResult};
use std::sync::Arc;
use std::time::Duration;

/// The `JobStore` of a backend, as a table of contents: each method is a function of
/// the backend's module for that section of the trait (`templates`, `enqueue`, `claim`,
/// `operator`, `reads`, `nodes`, `listen`). `enqueue` and `finalize` are the batch
/// calls with one element, written here once for both backends.
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
macro_rules! job_store_by_sections {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl bildad_core::JobStore for $store {
            async fn ping(&self) -> bildad_core::StoreResult<()> {
                reads::ping(self).await
            }

            async fn now(&self) -> bildad_core::StoreResult<bildad_core::Timestamp> {
                reads::now(self).await
            }

            async fn create_template(
                &self,
                new: bildad_core::NewTemplate,
            ) -> bildad_core::StoreResult<bildad_core::JobTemplate> {
                templates::create_template(self, new).await
            }

            async fn get_template(
                &self,
                code: &str,
            ) -> bildad_core::StoreResult<bildad_core::JobTemplate> {
                templates::get_template(self, code).await
            }

            async fn update_template(
                &self,
                code: &str,
                patch: bildad_core::TemplatePatch,
            ) -> bildad_core::StoreResult<bildad_core::JobTemplate> {
                templates::update_template(self, code, patch).await
            }

            async fn delete_template(&self, code: &str) -> bildad_core::StoreResult<()> {
                templates::delete_template(self, code).await
            }

            async fn list_templates(
                &self,
                filter: bildad_core::TemplateFilter,
                page: bildad_core::PageRequest,
            ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::JobTemplate>> {
                templates::list_templates(self, filter, page).await
            }

            async fn enqueue(
                &self,
                new: bildad_core::NewEntry,
            ) -> bildad_core::StoreResult<bildad_core::QueueEntry> {
                let mut out = enqueue::enqueue_many(self, vec![new])
                    .await
                    .map_err(StoreError::for_single_entry)?;
                Ok(out.remove(0))
            }

            async fn enqueue_many(
                &self,
                new: Vec<bildad_core::NewEntry>,
            ) -> bildad_core::StoreResult<Vec<bildad_core::QueueEntry>> {
                enqueue::enqueue_many(self, new).await
            }

            async fn get_entry(
                &self,
                identifier: &str,
            ) -> bildad_core::StoreResult<bildad_core::QueueEntry> {
                reads::get_entry(self, identifier).await
            }

            async fn entry_position(
                &self,
                identifier: &str,
            ) -> bildad_core::StoreResult<Option<u64>> {
                reads::entry_position(self, identifier).await
            }

            async fn list_entries(
                &self,
                status: Option<bildad_core::EntryStatus>,
                page: bildad_core::PageRequest,
            ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::QueueEntry>> {
                reads::list_entries(self, status, page).await
            }

            async fn list_entries_where(
                &self,
                filter: bildad_core::EntryFilter,
                page: bildad_core::PageRequest,
            ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::QueueEntry>> {
                reads::list_entries_where(self, filter, page).await
            }

            async fn remove_entry(
                &self,
                identifier: &str,
            ) -> bildad_core::StoreResult<bildad_core::RemoveResult> {
                operator::remove_entry(self, identifier).await
            }

            async fn stop_entry(
                &self,
                identifier: &str,
            ) -> bildad_core::StoreResult<bildad_core::StopResult> {
                operator::stop_entry(self, identifier).await
            }

            async fn claim(
                &self,
                req: bildad_core::ClaimRequest,
            ) -> bildad_core::StoreResult<Vec<bildad_core::ClaimedRun>> {
                claim::claim(self, req).await
            }

            async fn finalize(
                &self,
                req: bildad_core::Finalize,
            ) -> bildad_core::StoreResult<bildad_core::FinalizeResult> {
                let mut out = claim::finalize_many(self, vec![req]).await?;
                Ok(out.remove(0))
            }

            async fn finalize_many(
                &self,
                reqs: Vec<bildad_core::Finalize>,
            ) -> bildad_core::StoreResult<Vec<bildad_core::FinalizeResult>> {
                claim::finalize_many(self, reqs).await
            }

            async fn runs_to_kill(
                &self,
                node: &str,
            ) -> bildad_core::StoreResult<Vec<bildad_core::RunRef>> {
                claim::runs_to_kill(self, node).await
            }

            async fn runs_to_expire(
                &self,
                node_dead_after: std::time::Duration,
            ) -> bildad_core::StoreResult<Vec<bildad_core::RunRef>> {
                claim::runs_to_expire(self, node_dead_after).await
            }

            async fn runs_finalized(
                &self,
                runs: &[bildad_core::RunId],
            ) -> bildad_core::StoreResult<Vec<bildad_core::RunId>> {
                claim::runs_finalized(self, runs).await
            }

            async fn get_run(
                &self,
                id: bildad_core::RunId,
            ) -> bildad_core::StoreResult<bildad_core::JobRun> {
                reads::get_run(self, id).await
            }

            async fn list_runs(
                &self,
                filter: bildad_core::RunFilter,
                page: bildad_core::PageRequest,
            ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::JobRun>> {
                reads::list_runs(self, filter, page).await
            }

            async fn run_activity(
                &self,
                since: bildad_core::Timestamp,
                bucket: std::time::Duration,
            ) -> bildad_core::StoreResult<bildad_core::RunActivity> {
                reads::run_activity(self, since, bucket).await
            }

            async fn mark_killed(&self, run: bildad_core::RunId) -> bildad_core::StoreResult<bool> {
                operator::mark_killed(self, run).await
            }

            async fn prune_runs(
                &self,
                older_than: bildad_core::Timestamp,
            ) -> bildad_core::StoreResult<u64> {
                operator::prune_runs(self, older_than).await
            }

            async fn heartbeat(&self, node: &bildad_core::NodeRef) -> bildad_core::StoreResult<()> {
                nodes::heartbeat(self, node).await
            }

            async fn node_stopped(&self, instance_id: &str) -> bildad_core::StoreResult<()> {
                nodes::node_stopped(self, instance_id).await
            }

            async fn list_nodes(&self) -> bildad_core::StoreResult<Vec<bildad_core::Node>> {
                nodes::list_nodes(self).await
            }

            async fn stats(&self) -> bildad_core::StoreResult<bildad_core::QueueStats> {
                reads::stats(self).await
            }

            async fn listen_for_enqueues(
                &self,
            ) -> bildad_core::StoreResult<Option<Box<dyn bildad_core::EnqueueListener>>> {
                listen::listen_for_enqueues(self).await
            }

            async fn queue_depths(&self) -> bildad_core::StoreResult<Vec<bildad_core::QueueDepth>> {
                reads::queue_depths(self).await
            }

            async fn create_schedule(
                &self,
                new: bildad_core::NewSchedule,
            ) -> bildad_core::StoreResult<bildad_core::Schedule> {
                schedules::create_schedule(self, new).await
            }

            async fn get_schedule(
                &self,
                name: &str,
            ) -> bildad_core::StoreResult<bildad_core::Schedule> {
                schedules::get_schedule(self, name).await
            }

            async fn list_schedules(
                &self,
                page: bildad_core::PageRequest,
            ) -> bildad_core::StoreResult<bildad_core::Page<bildad_core::Schedule>> {
                schedules::list_schedules(self, page).await
            }

            async fn update_schedule(
                &self,
                name: &str,
                patch: bildad_core::SchedulePatch,
            ) -> bildad_core::StoreResult<bildad_core::Schedule> {
                schedules::update_schedule(self, name, patch).await
            }

            async fn delete_schedule(&self, name: &str) -> bildad_core::StoreResult<()> {
                schedules::delete_schedule(self, name).await
            }

            async fn evaluate_schedules(
                &self,
                req: bildad_core::EvaluateSchedules,
            ) -> bildad_core::StoreResult<bildad_core::ScheduleEvaluation> {
                schedules::evaluate_schedules(self, req).await
            }

            async fn rewind_schedule(
                &self,
                name: &str,
                from: bildad_core::Timestamp,
            ) -> bildad_core::StoreResult<bildad_core::Schedule> {
                schedules::rewind_schedule(self, name, from).await
            }

            async fn list_queues(&self) -> bildad_core::StoreResult<Vec<bildad_core::QueueInfo>> {
                queues::list_queues(self).await
            }

            async fn get_queue(
                &self,
                name: &str,
            ) -> bildad_core::StoreResult<bildad_core::QueueInfo> {
                queues::get_queue(self, name).await
            }

            async fn update_queue(
                &self,
                name: &str,
                patch: bildad_core::QueuePatch,
            ) -> bildad_core::StoreResult<bildad_core::QueueInfo> {
                queues::update_queue(self, name, patch).await
            }
        }
    };
}
#[cfg(any(feature = "postgres", feature = "sqlite", feature = "mysql"))]
pub(crate) use job_store_by_sections;

/// How a store's connection pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolOptions {
    /// Most open connections (default 10). `PgStore` opens up to two more of its own,
    /// which serve only claims (with the claim's planner settings for the session), and
    /// never more than `max_size` of them.
    pub max_size: usize,
    /// Longest wait for a free connection before a call fails with `Unavailable`
    /// (default 5 s), so that an outage never hangs a caller.
    pub wait_timeout: Duration,
    /// Longest wait to open one connection (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_size: 10,
            wait_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
    Mysql,
}

fn backend_of(url: &str) -> StoreResult<Backend> {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if lower.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if lower.starts_with("mysql://") || lower.starts_with("mariadb://") {
        Ok(Backend::Mysql)
    } else {
        Err(StoreError::invalid(
            "/database_url",
            "unsupported database URL: expected postgres://…, postgresql://…, mysql://… \
             or sqlite://<path>",
        ))
    }
}

#[cfg(not(all(feature = "postgres", feature = "sqlite", feature = "mysql")))]
fn not_built(feature: &str) -> StoreError {
    StoreError::invalid(
        "/database_url",
        format!("this build of bildad-store-diesel has no `{feature}` feature"),
    )
}

/// Connects to `url` — `postgres://…` / `postgresql://…` (a [`PgStore`]),
/// `mysql://…` / `mariadb://…` (a [`MysqlStore`], MariaDB 10.6+) or `sqlite://<path>` (a
/// [`SqliteStore`], file created if missing) — and applies the migrations it has not run
/// yet.
///
/// `Invalid` for an unknown scheme (or a backend this build lacks), `Unavailable` when
/// the database cannot be reached.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn JobStore>> {
    match backend_of(url)? {
        Backend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let store = PgStore::connect(url).await?;
                store.migrate().await?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "postgres"))]
            Err(not_built("postgres"))
        }
        Backend::Sqlite => {
            #[cfg(feature = "sqlite")]
            {
                let store = SqliteStore::connect(url).await?;
                store.migrate().await?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "sqlite"))]
            Err(not_built("sqlite"))
        }
        Backend::Mysql => {
            #[cfg(feature = "mysql")]
            {
                let store = MysqlStore::connect(&mysql_url(url)).await?;
                store.migrate().await?;
                Ok(Arc::new(store))
            }
            #[cfg(not(feature = "mysql"))]
            Err(not_built("mysql"))
        }
    }
}

/// `mariadb://…` as the driver spells it (`mysql://…`).
#[cfg(feature = "mysql")]
fn mysql_url(url: &str) -> String {
    let trimmed = url.trim_start();
    match trimmed.get(..10) {
        Some(s) if s.eq_ignore_ascii_case("mariadb://") => format!("mysql://{}", &trimmed[10..]),
        _ => trimmed.to_owned(),
    }
}

/// Opens a `$store` of one connection on `$url`, applies its migrations, and closes it:
/// [`migrate`] for every backend.
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
macro_rules! migrate_on_one_connection {
    ($store:ty, $url:expr) => {{
        let store = <$store>::connect_with(
            $url,
            PoolOptions {
                max_size: 1,
                ..PoolOptions::default()
            },
        )
        .await?;
        let out = store.migrate().await;
        store.close();
        out
    }};
}

/// Applies the migrations that the database at `url` has not run yet (as [`connect`]
/// does), then closes the connections.
pub async fn migrate(url: &str) -> StoreResult<()> {
    match backend_of(url)? {
        Backend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                migrate_on_one_connection!(PgStore, url)
            }
            #[cfg(not(feature = "postgres"))]
            Err(not_built("postgres"))
        }
        Backend::Sqlite => {
            #[cfg(feature = "sqlite")]
            {
                migrate_on_one_connection!(SqliteStore, url)
            }
            #[cfg(not(feature = "sqlite"))]
            Err(not_built("sqlite"))
        }
        Backend::Mysql => {
            #[cfg(feature = "mysql")]
            {
                migrate_on_one_connection!(MysqlStore, &mysql_url(url))
            }
            #[cfg(not(feature = "mysql"))]
            Err(not_built("mysql"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_the_backend() {
        assert_eq!(backend_of("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("PostgreSQL://h/db").unwrap(), Backend::Postgres);
        assert_eq!(backend_of("sqlite://bildad.db").unwrap(), Backend::Sqlite);
        assert_eq!(backend_of("mysql://root@h/db").unwrap(), Backend::Mysql);
        assert_eq!(backend_of("MariaDB://root@h/db").unwrap(), Backend::Mysql);
        for bad in ["bildad.db", "", "http://x"] {
            let e = backend_of(bad).unwrap_err();
            assert_eq!(e.kind(), bildad_core::ErrorKind::Invalid, "{bad}");
            assert!(e.to_string().contains("postgres://"), "{e}");
        }
    }

    /// Every migration directory of a backend is embedded, in order, under its diesel
    /// version: a new directory that is not added to `MIGRATIONS` would never run.
    fn embedded_are_the_directories(backend: &str, embedded: &[(&str, &str)]) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let versions: Vec<String> = names
            .iter()
            .map(|n| n.split('_').next().unwrap().replace('-', ""))
            .collect();
        let listed: Vec<&str> = embedded.iter().map(|(v, _)| *v).collect();
        assert_eq!(
            listed,
            versions,
            "{backend}: MIGRATIONS vs {}",
            dir.display()
        );
        for ((_, up), name) in embedded.iter().zip(&names) {
            let file = std::fs::read_to_string(dir.join(name).join("up.sql")).unwrap();
            assert_eq!(*up, file, "{backend}/{name}/up.sql");
        }
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_embeds_every_migration() {
        embedded_are_the_directories("postgres", crate::pg::sql::MIGRATIONS);
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_embeds_every_migration() {
        embedded_are_the_directories("mysql", crate::mysql::sql::MIGRATIONS);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_embeds_every_migration() {
        embedded_are_the_directories("sqlite", crate::sqlite::sql::MIGRATIONS);
    }
}
