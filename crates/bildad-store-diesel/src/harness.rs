//! Bildad's migrations as a diesel [`MigrationSource`], for an application that runs
//! its own migrations with diesel's `MigrationHarness` (diesel-async's
//! `AsyncMigrationHarness`) and wants Bildad's in the same step. They are the store's
//! embedded migrations, under the same versions in the same `__diesel_schema_migrations`
//! table, so this and `PgStore::migrate`/`SqliteStore::migrate` agree on what is applied.

use diesel::backend::Backend;
use diesel::connection::BoxableConnection;
use diesel::migration::{
    Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion, Result,
};

/// Bildad's migrations for one backend: [`POSTGRES`] or [`SQLITE`]. Run them before the
/// application's own, with diesel_migrations' `MigrationHarness` (diesel-async's
/// `AsyncMigrationHarness`, feature `migrations`):
///
/// ```text
/// let mut harness = diesel_async::AsyncMigrationHarness::new(pool.get().await?);
/// harness.run_pending_migrations(bildad_store_diesel::harness::POSTGRES)?;
/// harness.run_pending_migrations(MY_APP_MIGRATIONS)?;   // embed_migrations!("migrations")
/// ```
///
/// (`examples/axum-app/src/db.rs` does this on both backends, and its tests check the
/// schema equals the store's own.) Unlike the store's own `migrate`, the harness takes no
/// lock: run it from one process (a deploy step), or let every node call `migrate` at
/// start instead.
#[derive(Debug, Clone, Copy)]
pub struct BildadMigrations {
    list: &'static [(&'static str, &'static str)],
}

/// Bildad's PostgreSQL migrations.
#[cfg(feature = "postgres")]
pub const POSTGRES: BildadMigrations = BildadMigrations {
    list: crate::pg::sql::MIGRATIONS,
};

/// Bildad's MySQL/MariaDB migrations.
#[cfg(feature = "mysql")]
pub const MYSQL: BildadMigrations = BildadMigrations {
    list: crate::mysql::sql::MIGRATIONS,
};

/// Bildad's SQLite migrations.
#[cfg(feature = "sqlite")]
pub const SQLITE: BildadMigrations = BildadMigrations {
    list: crate::sqlite::sql::MIGRATIONS,
};

impl<DB: Backend> MigrationSource<DB> for BildadMigrations {
    fn migrations(&self) -> Result<Vec<Box<dyn Migration<DB>>>> {
        Ok(self
            .list
            .iter()
            .map(|&(version, up)| Box::new(Embedded { version, up }) as Box<dyn Migration<DB>>)
            .collect())
    }
}

/// One embedded migration: its diesel version and its up.sql.
struct Embedded {
    version: &'static str,
    up: &'static str,
}

impl std::fmt::Display for Embedded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bildad_{}", self.version)
    }
}

impl MigrationName for Embedded {
    fn version(&self) -> MigrationVersion<'_> {
        self.version.into()
    }
}

impl MigrationMetadata for Embedded {}

impl<DB: Backend> Migration<DB> for Embedded {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> Result<()> {
        conn.batch_execute(self.up)?;
        Ok(())
    }

    fn revert(&self, _conn: &mut dyn BoxableConnection<DB>) -> Result<()> {
        Err(format!(
            "Bildad's migration {} is not reverted by the harness",
            self.version
        )
        .into())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}
