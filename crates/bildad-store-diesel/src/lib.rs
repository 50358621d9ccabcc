//! Bildad's `JobStore` on diesel: PostgreSQL and embedded SQLite.
//!
//! - [`PgStore`] (feature `postgres`): diesel-async's pure-Rust PostgreSQL driver
//!   (tokio-postgres, no libpq) behind a deadpool pool. Claims with one
//!   `FOR UPDATE SKIP LOCKED` statement; finalizes in batches by explicit run ids.
//! - [`SqliteStore`] (feature `sqlite`): bundled SQLite in WAL mode; every write is a
//!   `BEGIN IMMEDIATE` transaction, so concurrent writers wait for each other (up to the
//!   busy timeout) instead of failing.
//!
//! [`connect`] picks the store by the URL's scheme and migrates it. The schema lives in
//! `migrations/postgres` and `migrations/sqlite` (diesel layout), embedded at build time;
//! `docs/STORAGE.md` explains the tables, the indexes and the query plans.
//!
//! **Architecture invariant:** only this crate writes SQL. It behaves exactly like
//! `bildad_core::MemoryStore`, the reference implementation, and the conformance suite
//! checks it.

#[cfg(feature = "postgres")]
mod pg;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod rows;
#[cfg(any(feature = "postgres", feature = "sqlite"))]
mod shared;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "postgres")]
pub use pg::PgStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use bildad_core::{JobStore, StoreError, StoreResult};
use std::sync::Arc;
use std::time::Duration;

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
}

fn backend_of(url: &str) -> StoreResult<Backend> {
    let lower = url.trim_start().to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if lower.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        Err(StoreError::invalid(
            "/database_url",
            "unsupported database URL: expected postgres://…, postgresql://… or sqlite://<path>",
        ))
    }
}

#[cfg(not(all(feature = "postgres", feature = "sqlite")))]
fn not_built(feature: &str) -> StoreError {
    StoreError::invalid(
        "/database_url",
        format!("this build of bildad-store-diesel has no `{feature}` feature"),
    )
}

/// Connects to `url` — `postgres://…` / `postgresql://…` (a [`PgStore`]) or
/// `sqlite://<path>` (a [`SqliteStore`], file created if missing) — and applies the
/// migrations it has not run yet.
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
    }
}

/// Applies the migrations that the database at `url` has not run yet (as [`connect`]
/// does), then closes the connections.
pub async fn migrate(url: &str) -> StoreResult<()> {
    match backend_of(url)? {
        Backend::Postgres => {
            #[cfg(feature = "postgres")]
            {
                let store = PgStore::connect_with(
                    url,
                    PoolOptions {
                        max_size: 1,
                        ..PoolOptions::default()
                    },
                )
                .await?;
                let out = store.migrate().await;
                store.close();
                out
            }
            #[cfg(not(feature = "postgres"))]
            Err(not_built("postgres"))
        }
        Backend::Sqlite => {
            #[cfg(feature = "sqlite")]
            {
                SqliteStore::connect(url).await?.migrate().await
            }
            #[cfg(not(feature = "sqlite"))]
            Err(not_built("sqlite"))
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
        for bad in ["mysql://h/db", "bildad.db", "", "http://x"] {
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
        embedded_are_the_directories("postgres", crate::pg::MIGRATIONS);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_embeds_every_migration() {
        embedded_are_the_directories("sqlite", crate::sqlite::MIGRATIONS);
    }
}
