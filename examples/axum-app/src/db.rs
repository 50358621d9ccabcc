//! The app's database: its own pool of diesel-async connections, shared with Bildad's
//! store, and its migrations (the app's and Bildad's, through one diesel harness).

use bildad_core::{JobStore, StoreError};
use bildad_store_diesel::{ClaimConnections, PgStore, SqliteConnectionWrapper, SqliteStore};
use deadpool::Runtime;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::Arc;

/// The longest wait for a free connection: then a request fails (503) instead of hanging.
const WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The app's own migrations (the `users` table), per backend.
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");
/// See [`PG_MIGRATIONS`].
const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

diesel::table! {
    /// One row per sign-up.
    users (id) {
        /// The row's id.
        id -> BigInt,
        /// Unique.
        email -> Text,
    }
}

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Bildad's store refused (unreachable database, malformed URL).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pool could not be built or give a connection.
    #[error("connection pool: {0}")]
    Pool(String),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(String),
}

/// The app's database and Bildad's store on the same pool.
#[derive(Clone)]
pub enum Database {
    /// PostgreSQL (`postgres://…`).
    Postgres {
        /// The app's pool; the store uses it too.
        pool: Pool<AsyncPgConnection>,
        /// Bildad's store on that pool (its claims on two connections of their own).
        store: PgStore,
    },
    /// SQLite (`sqlite://path`).
    Sqlite {
        /// The app's pool, built with the store's connection settings.
        pool: Pool<SqliteConnectionWrapper>,
        /// Bildad's store on that pool.
        store: SqliteStore,
    },
}

impl Database {
    /// Opens the app's pool on `url` and Bildad's store on it. Does not migrate.
    pub async fn connect(url: &str) -> Result<Self, DbError> {
        let pool_error = |e: &dyn std::fmt::Display| DbError::Pool(e.to_string());
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let pool = Pool::builder(SqliteStore::manager(path))
                .max_size(4)
                .wait_timeout(Some(WAIT))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| pool_error(&e))?;
            let store = SqliteStore::from_pool(pool.clone()).await?;
            Ok(Self::Sqlite { pool, store })
        } else {
            let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
            let pool = Pool::builder(manager)
                .max_size(12)
                .wait_timeout(Some(WAIT))
                .runtime(Runtime::Tokio1)
                .build()
                .map_err(|e| pool_error(&e))?;
            let store = PgStore::from_pool(pool.clone(), ClaimConnections::own(url)).await?;
            Ok(Self::Postgres { pool, store })
        }
    }

    /// Bildad's migrations, then the app's, through diesel-async's migration harness
    /// (one connection; applied versions are recorded in `__diesel_schema_migrations`).
    /// Needs tokio's multi-threaded runtime (the harness blocks in place).
    pub async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Self::Postgres { pool, .. } => {
                let conn = pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
                run_harness(conn, bildad_store_diesel::harness::POSTGRES, PG_MIGRATIONS)
            }
            Self::Sqlite { pool, .. } => {
                let conn = pool.get().await.map_err(|e| DbError::Pool(e.to_string()))?;
                run_harness(
                    conn,
                    bildad_store_diesel::harness::SQLITE,
                    SQLITE_MIGRATIONS,
                )
            }
        }
    }

    /// Bildad's store, for the node and the API.
    pub fn store(&self) -> Arc<dyn JobStore> {
        match self {
            Self::Postgres { store, .. } => Arc::new(store.clone()),
            Self::Sqlite { store, .. } => Arc::new(store.clone()),
        }
    }
}

/// Applies `bildad`'s pending migrations, then `app`'s, on `conn`.
fn run_harness<C, S>(
    conn: C,
    bildad: bildad_store_diesel::harness::BildadMigrations,
    app: S,
) -> Result<(), DbError>
where
    C: AsyncConnection + 'static,
    AsyncMigrationHarness<C>: MigrationHarness<C::Backend>,
    bildad_store_diesel::harness::BildadMigrations: diesel::migration::MigrationSource<C::Backend>,
    S: diesel::migration::MigrationSource<C::Backend>,
{
    let mut harness = AsyncMigrationHarness::new(conn);
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    harness.run_pending_migrations(bildad).map_err(failed)?;
    harness.run_pending_migrations(app).map_err(failed)?;
    Ok(())
}
