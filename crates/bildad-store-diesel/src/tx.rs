//! The enqueue inside the application's own transaction (SPEC §7), as one trait over
//! both backends: [`EnqueueIn`]. Each backend writes only `enqueue_many_in` (`pg/tx.rs`,
//! `sqlite/tx.rs`); the single and typed forms are written here, once.

use bildad_core::{EnqueueOptions, JobArgs, NewEntry, QueueEntry, StoreError, StoreResult};
use std::future::Future;

/// A store that enqueues on the application's own connection `C`, as part of the
/// transaction the application holds on it (diesel-async's `AsyncConnection::transaction`):
/// the job exists if and only if that transaction commits.
///
/// Implemented by [`PgStore`](crate::PgStore) for `AsyncPgConnection` and by
/// [`SqliteStore`](crate::SqliteStore) for [`SqliteConnectionWrapper`](crate::SqliteConnectionWrapper).
///
/// The checks are exactly those of [`bildad_core::JobStore::enqueue`] (the same code):
/// `Invalid` with every violation (fields, unknown or inactive template, a context its
/// schema refuses), `Conflict` for a used identifier.
///
/// **A failed enqueue leaves the caller's transaction usable**: it runs in a savepoint,
/// rolled back on failure (on PostgreSQL a failed statement would otherwise abort the
/// whole transaction), so the application still decides whether to commit the rest. The
/// transaction must be opened through diesel (`transaction`), not by sending `BEGIN` as
/// text: diesel then knows to take a savepoint. On a connection outside any transaction
/// the enqueue is its own transaction.
///
/// **Wake-up**: on PostgreSQL the nodes with `wake_on_enqueue` are woken when the
/// caller's transaction commits, never before. On SQLite the store cannot see that
/// commit: call [`SqliteStore::notify_enqueued`](crate::SqliteStore::notify_enqueued)
/// after it, or the node's ticker finds the entries at its next tick.
///
/// ```no_run
/// use bildad_core::{EnqueueOptions, JobArgs, StoreError};
/// use bildad_store_diesel::{EnqueueIn, PgStore};
/// use diesel_async::{AsyncConnection, AsyncPgConnection};
///
/// #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
/// struct Welcome {
///     email: String,
/// }
/// impl JobArgs for Welcome {
///     const KIND: &'static str = "mail.welcome";
/// }
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
/// async fn sign_up(store: &PgStore, conn: &mut AsyncPgConnection, email: &str) -> Result<(), AppError> {
///     conn.transaction::<_, AppError, _>(async |conn| {
///         // … the application's own writes on `conn` …
///         let welcome = Welcome { email: email.into() };
///         store.enqueue_args_in(conn, &welcome, EnqueueOptions::default()).await?;
///         Ok(())
///     })
///     .await
/// }
/// ```
pub trait EnqueueIn<C: Send>: Sync {
    /// Enqueues `entries` on `conn`: all of them or none, in order. Violations are
    /// reported at `/<index>/<field>`.
    fn enqueue_many_in(
        &self,
        conn: &mut C,
        entries: Vec<NewEntry>,
    ) -> impl Future<Output = StoreResult<Vec<QueueEntry>>> + Send;

    /// Enqueues `entry` on `conn` (violations at `/<field>`).
    fn enqueue_in(
        &self,
        conn: &mut C,
        entry: NewEntry,
    ) -> impl Future<Output = StoreResult<QueueEntry>> + Send {
        async move {
            let mut out = self
                .enqueue_many_in(conn, vec![entry])
                .await
                .map_err(StoreError::for_single_entry)?;
            Ok(out.remove(0))
        }
    }

    /// The typed enqueue on `conn`: the job `A::KIND` with `args` as its context and
    /// `options` over the job type's defaults (see [`NewEntry::typed`]).
    fn enqueue_args_in<A: JobArgs>(
        &self,
        conn: &mut C,
        args: &A,
        options: EnqueueOptions,
    ) -> impl Future<Output = StoreResult<QueueEntry>> + Send {
        async move { self.enqueue_in(conn, NewEntry::typed(args, options)?).await }
    }
}
