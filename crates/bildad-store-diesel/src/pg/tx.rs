//! Enqueue inside the application's own transaction on PostgreSQL (SPEC §7): the same
//! enqueue as [`PgStore`]'s `JobStore::enqueue_many` (`enqueue::enqueue_on`, one piece
//! of code), on the `AsyncPgConnection` the application holds, inside a savepoint.

use super::PgStore;
use super::enqueue::enqueue_on;
use crate::errors::Fail;
use bildad_core::{EnqueueOptions, JobArgs, NewEntry, QueueEntry, StoreError, StoreResult};
use diesel_async::{AsyncConnection, AsyncPgConnection};

impl PgStore {
    /// Enqueues `entry` on the application's connection `conn`, as part of the
    /// transaction the application holds on it (diesel-async's
    /// [`AsyncConnection::transaction`]): the job exists if and only if that transaction
    /// commits, and the nodes listening for enqueues (`wake_on_enqueue`) are woken on its
    /// commit only (PostgreSQL delivers `pg_notify` at commit).
    ///
    /// The checks are exactly those of [`bildad_core::JobStore::enqueue`] (fields,
    /// template exists and is active, the context against its schema, the identifier
    /// unused): `Invalid` with every violation, `Conflict` for a taken identifier.
    ///
    /// **A failed enqueue leaves the caller's transaction usable.** The enqueue runs in
    /// a savepoint, rolled back on failure, so the application still decides whether to
    /// commit the rest (a failed statement would otherwise abort the whole transaction).
    /// On a connection outside any transaction it is its own transaction.
    ///
    /// The transaction must be opened through diesel (`transaction`,
    /// `begin_test_transaction`), not by sending `BEGIN` as text: diesel then knows to
    /// take a savepoint. Until the caller commits, the insert holds its templates'
    /// rows `FOR KEY SHARE`, so a `delete_template` of one of them waits for that commit.
    ///
    /// ```no_run
    /// use bildad_core::{NewEntry, StoreError};
    /// use diesel_async::{AsyncConnection, AsyncPgConnection};
    ///
    /// /// The application's error: its own database errors and Bildad's.
    /// #[derive(Debug)]
    /// enum AppError {
    ///     Db(diesel::result::Error),
    ///     Jobs(StoreError),
    /// }
    /// impl From<diesel::result::Error> for AppError {
    ///     fn from(e: diesel::result::Error) -> Self { AppError::Db(e) }
    /// }
    /// impl From<StoreError> for AppError {
    ///     fn from(e: StoreError) -> Self { AppError::Jobs(e) }
    /// }
    ///
    /// async fn signup(
    ///     store: &bildad_store_diesel::PgStore,
    ///     conn: &mut AsyncPgConnection,
    /// ) -> Result<(), AppError> {
    ///     conn.transaction::<_, AppError, _>(async |conn| {
    ///         // … the application's own writes on `conn` …
    ///         let entry = NewEntry::new("welcome", serde_json::json!({"email": "a@b.c"}));
    ///         store.enqueue_in(conn, entry).await?;
    ///         Ok(())
    ///     })
    ///     .await
    /// }
    /// ```
    pub async fn enqueue_in(
        &self,
        conn: &mut AsyncPgConnection,
        entry: NewEntry,
    ) -> StoreResult<QueueEntry> {
        let mut out = self
            .enqueue_many_in(conn, vec![entry])
            .await
            .map_err(StoreError::for_single_entry)?;
        Ok(out.remove(0))
    }

    /// [`PgStore::enqueue_in`] for several entries: all of them or none, in order.
    /// Violations are reported at `/<index>/<field>`.
    pub async fn enqueue_many_in(
        &self,
        conn: &mut AsyncPgConnection,
        entries: Vec<NewEntry>,
    ) -> StoreResult<Vec<QueueEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let schemas = &self.schemas;
        conn.transaction::<_, Fail, _>(async |c| Ok(enqueue_on(schemas, c, entries).await?))
            .await
            .map_err(|f| f.0)
    }

    /// The typed [`PgStore::enqueue_in`]: the job `A::KIND` with `args` as its context
    /// and `options` over the job type's defaults (see [`NewEntry::typed`]).
    ///
    /// ```no_run
    /// # #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
    /// # struct Welcome { email: String }
    /// # impl bildad_core::JobArgs for Welcome { const KIND: &'static str = "welcome"; }
    /// # async fn signup(store: &bildad_store_diesel::PgStore,
    /// #     conn: &mut diesel_async::AsyncPgConnection) -> Result<(), bildad_core::StoreError> {
    /// use bildad_core::EnqueueOptions;
    ///
    /// let welcome = Welcome { email: "ada@example.com".into() };
    /// store.enqueue_args_in(conn, &welcome, EnqueueOptions::default()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn enqueue_args_in<A: JobArgs>(
        &self,
        conn: &mut AsyncPgConnection,
        args: &A,
        options: EnqueueOptions,
    ) -> StoreResult<QueueEntry> {
        self.enqueue_in(conn, NewEntry::typed(args, options)?).await
    }
}
