//! `PgStore`: the `JobStore` on PostgreSQL, through diesel-async's pure-Rust driver
//! (tokio-postgres; no libpq) and a deadpool pool.
//!
//! Every timestamp is the database's `now()`. The claim is one statement (a
//! data-modifying CTE with `FOR UPDATE SKIP LOCKED`); finalizes are batched by explicit
//! run ids with `unnest`, guarded by the run being `RUNNING` (spelled `status <> 'DONE'`,
//! see `sql::END_RUNS`).
//!
//! One file per section of the trait: [`templates`], [`enqueue`], [`claim`] (claim,
//! finalize, kill and expiry lookups), [`operator`] (remove, stop, prune), [`reads`],
//! [`nodes`], [`listen`]; the SQL text in [`sql`], the statement cache in [`prepared`];
//! [`tx`] enqueues on the application's own connection, inside its transaction.
//! This file holds the pools, `migrate` and the trait's table of contents.

mod claim;
mod enqueue;
#[cfg(feature = "testing")]
mod explain;
mod listen;
mod nodes;
mod operator;
mod prepared;
mod queues;
mod reads;
mod schedules;
pub(crate) mod sql;
mod templates;
mod tx;
mod unique;

use crate::PoolOptions;
use crate::errors::pool_error;
use bildad_core::{SchemaCache, StoreError, StoreResult};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use sql::CLAIM_SESSION;

/// Connections of the claim pool (at most this many; never more than the main pool's).
const CLAIM_CONNECTIONS: usize = 2;

/// A `JobStore` on PostgreSQL. Cheap to clone: clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool<AsyncPgConnection>,
    /// Connections for [`sql::CLAIM`] only, with [`sql::CLAIM_SESSION`]'s planner settings.
    claim_pool: Pool<AsyncPgConnection>,
    schemas: std::sync::Arc<SchemaCache>,
    /// The restricted queues, as this node last read them (see `queues`).
    restricted: queues::RestrictedCache,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connects with the default [`PoolOptions`]. `Unavailable` when the server cannot
    /// be reached; `Invalid` for a malformed URL. Does not migrate: see [`PgStore::migrate`].
    pub async fn connect(url: &str) -> StoreResult<Self> {
        Self::connect_with(url, PoolOptions::default()).await
    }

    /// Connects with `options` and checks that one connection can be opened.
    pub async fn connect_with(url: &str, options: PoolOptions) -> StoreResult<Self> {
        check_url(url)?;
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        let manager =
            AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
        let pool = build_pool(manager, options.max_size.max(1), &options)?;
        let claim_pool = build_pool(
            Self::claim_manager(url),
            CLAIM_CONNECTIONS.min(options.max_size.max(1)),
            &options,
        )?;
        Self::on_pools(pool, claim_pool).await
    }

    /// A store on the application's own pool: every statement but the claim takes its
    /// connections from `pool` (the application's deadpool pool of diesel-async
    /// connections), and the claims from `claims`. Checks that one connection of each
    /// can be taken; does not migrate.
    ///
    /// What each needs: `pool` serves the enqueues, finalizes, reads and heartbeats (size
    /// it for the application's own load plus the node's `max_concurrent_jobs`
    /// finalizing at once); [`PgStore::listen_for_enqueues`](bildad_core::JobStore::listen_for_enqueues)
    /// (with `wake_on_enqueue`) takes one connection out of it for good. The claim needs
    /// connections of its own, whose session has the claim's planner settings (which
    /// must not leak into the application's queries): see [`ClaimConnections`]. Give
    /// `pool` a `wait_timeout` (as [`PoolOptions`] does), so that an outage makes the
    /// store's calls fail with `Unavailable` instead of waiting for ever.
    ///
    /// ```no_run
    /// use bildad_store_diesel::{ClaimConnections, PgStore};
    /// use diesel_async::AsyncPgConnection;
    /// use diesel_async::pooled_connection::AsyncDieselConnectionManager;
    /// use diesel_async::pooled_connection::deadpool::Pool;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let url = "postgres://app@localhost/app";
    /// // The application's pool, also used by its own handlers.
    /// let pool = Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
    ///     .max_size(16)
    ///     .build()?;
    /// let store = PgStore::from_pool(pool.clone(), ClaimConnections::own(url)).await?;
    /// store.migrate().await?;
    /// # Ok(()) }
    /// ```
    pub async fn from_pool(
        pool: Pool<AsyncPgConnection>,
        claims: ClaimConnections,
    ) -> StoreResult<Self> {
        let claim_pool = match claims {
            ClaimConnections::Own { url, max_size } => {
                check_url(&url)?;
                build_pool(
                    Self::claim_manager(&url),
                    max_size.max(1),
                    &PoolOptions::default(),
                )?
            }
            ClaimConnections::Pool(p) => p,
        };
        Self::on_pools(pool, claim_pool).await
    }

    /// The connection manager of a pool that serves claims only: each new connection
    /// gets the claim's planner settings for its session. Build a pool with it for
    /// [`ClaimConnections::Pool`].
    pub fn claim_manager(url: &str) -> AsyncDieselConnectionManager<AsyncPgConnection> {
        let mut config = ManagerConfig::default();
        config.recycling_method = RecyclingMethod::Fast;
        config.custom_setup = Box::new(|url| {
            let url = url.to_owned();
            Box::pin(async move {
                let mut conn = AsyncPgConnection::establish(&url).await?;
                conn.batch_execute(CLAIM_SESSION)
                    .await
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(conn)
            })
        });
        AsyncDieselConnectionManager::new_with_config(url, config)
    }

    /// The store on its two pools, once one connection of each could be taken.
    async fn on_pools(
        pool: Pool<AsyncPgConnection>,
        claim_pool: Pool<AsyncPgConnection>,
    ) -> StoreResult<Self> {
        let store = Self {
            pool,
            claim_pool,
            schemas: Default::default(),
            restricted: Default::default(),
        };
        drop(store.conn().await?);
        drop(store.claim_pool.get().await.map_err(pool_error)?);
        Ok(store)
    }

    /// Applies the embedded migrations that this database has not run yet (tracked in
    /// diesel's `__diesel_schema_migrations`), in one transaction. Several nodes may
    /// call it at once: an advisory lock serialises them.
    pub async fn migrate(&self) -> StoreResult<()> {
        crate::migrate::run_in_task(self.conn().await?, &sql::MIGRATE).await
    }

    /// Closes the pool: later calls fail with `Unavailable`.
    pub fn close(&self) {
        self.pool.close();
        self.claim_pool.close();
    }

    async fn conn(&self) -> StoreResult<Object<AsyncPgConnection>> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// Where a [`PgStore`] built by [`PgStore::from_pool`] runs its claims. A claim is one
/// statement that needs planner settings of its own for the session (docs/STORAGE.md),
/// so its connections serve nothing else.
pub enum ClaimConnections {
    /// Bildad opens up to `max_size` connections of its own to `url` (what
    /// [`PgStore::connect`] does, with two).
    Own {
        /// The database's URL.
        url: String,
        /// Most claim connections; one node needs one or two.
        max_size: usize,
    },
    /// A pool of the application's, built with [`PgStore::claim_manager`] and used for
    /// nothing else.
    Pool(Pool<AsyncPgConnection>),
}

impl std::fmt::Debug for ClaimConnections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The URL may hold a password.
            Self::Own { max_size, .. } => write!(f, "Own {{ max_size: {max_size} }}"),
            Self::Pool(p) => write!(f, "Pool({:?})", p.status()),
        }
    }
}

impl ClaimConnections {
    /// Two connections of Bildad's own to `url`.
    pub fn own(url: impl Into<String>) -> Self {
        Self::Own {
            url: url.into(),
            max_size: CLAIM_CONNECTIONS,
        }
    }
}

/// A malformed URL is `Invalid`, not `Unavailable`.
fn check_url(url: &str) -> StoreResult<()> {
    if url.parse::<tokio_postgres_config::Config>().is_err() {
        return Err(StoreError::invalid(
            "/database_url",
            "is not a valid PostgreSQL connection URL",
        ));
    }
    Ok(())
}

/// A pool of at most `max_size` connections of `manager`, with `options`' timeouts.
fn build_pool(
    manager: AsyncDieselConnectionManager<AsyncPgConnection>,
    max_size: usize,
    options: &PoolOptions,
) -> StoreResult<Pool<AsyncPgConnection>> {
    Pool::builder(manager)
        .max_size(max_size)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.connect_timeout))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| StoreError::database(format!("cannot build the connection pool: {e}")))
}

/// Parses URLs the way tokio-postgres will, so a malformed URL is `Invalid`, not
/// `Unavailable`.
mod tokio_postgres_config {
    pub(crate) use tokio_postgres::Config;
}

crate::pooled::pooled_helpers!(
    PgStore,
    AsyncPgConnection,
    diesel::pg::Pg,
    crate::dialect::Dialect::Postgres
);

crate::job_store_by_sections!(PgStore);
