//! The one mapping of database errors to [`StoreError`] kinds, for both backends, and
//! the store's own named errors. The driver's error stays attached as the source of the
//! `Unavailable` or `Database` failure, so that a caller can log the real cause.

use bildad_core::{DbFailure, StoreError};
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};

/// A transaction's failure: a store error, or a diesel error still to be mapped.
pub(crate) struct Fail(pub(crate) StoreError);

impl From<DieselError> for Fail {
    fn from(e: DieselError) -> Self {
        Fail(db_error(e))
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Fail(e)
    }
}

/// Maps a diesel error to a store error kind, keeping it as the source.
///
/// - a unique or foreign-key violation is a `Conflict`;
/// - a transient failure is `Unavailable` (see [`is_transient`]);
/// - anything else is `Database`.
pub(crate) fn db_error(e: DieselError) -> StoreError {
    let message = match &e {
        DieselError::DatabaseError(_, info) => describe(info.as_ref()),
        DieselError::BrokenTransactionManager => {
            "the connection's transaction state is broken".to_string()
        }
        other => other.to_string(),
    };
    if is_unique_violation(&e) || is_foreign_key_violation(&e) {
        return StoreError::Conflict(message);
    }
    let transient = is_transient(&e);
    let failure = DbFailure::caused_by(message, e);
    if transient {
        StoreError::Unavailable(failure)
    } else {
        StoreError::Database(failure)
    }
}

/// The messages of the PostgreSQL errors that retrying can cure, whose SQLSTATE diesel
/// does not pass on (its kind is `Unknown`): 57P01 `admin_shutdown`, 57P02
/// `crash_shutdown`, 57P03 `cannot_connect_now`, 53300 `too_many_connections`, 40P01
/// `deadlock_detected`, and the server's own class 08 (`connection_exception`) reports.
/// These are the server's English texts (`lc_messages` C or English).
const TRANSIENT_MESSAGES: &[&str] = &[
    "terminating connection due to administrator command", // 57P01
    "terminating connection because of crash of another server process", // 57P02
    "the database system is",                              // 57P03: starting up, shutting down, …
    "sorry, too many clients already",                     // 53300
    "remaining connection slots are reserved",             // 53300
    "too many connections for",                            // 53300: … role, … database
    "deadlock detected",                                   // 40P01
    "could not serialize access",                          // 40001
    "server closed the connection unexpectedly",           // 08006
    "connection closed",                                   // 08003 / 08006 (tokio-postgres)
    "could not receive data from client",                  // 08006
    "SSL connection has been closed unexpectedly",         // 08006
    // MySQL/MariaDB: 1213 ER_LOCK_DEADLOCK, 1205 ER_LOCK_WAIT_TIMEOUT, 1040 too many
    // connections, 1053 shutdown in progress, 2013 lost connection.
    "Deadlock found when trying to get lock",
    "Lock wait timeout exceeded",
    "Too many connections",
    "Server shutdown in progress",
    "Lost connection to",
    // MariaDB 1467 ER_AUTOINC_READ_FAILED: a deadlock's victim that waited for a table's
    // AUTO-INC lock gets this instead of 1213.
    "Failed to read auto-increment value",
    // mysql_async's own reports of a lost connection, which carry no server code: an I/O
    // failure on the socket (`Error::Io`: broken pipe, reset) and a closed connection.
    "Input/output error:",
    "Connection to the server is closed",
    // SQLite: still busy after busy_timeout.
    "database is locked",
    "database is busy",
];

/// True when the failure is transient: the connection was lost or refused (SQLSTATE
/// class 08, 57P01-57P03, 53300), or the transaction lost a race that a retry wins
/// (40001 serialization failure, 40P01 deadlock), or SQLite stayed busy.
pub(crate) fn is_transient(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(kind, info) => {
            matches!(
                kind,
                DatabaseErrorKind::ClosedConnection
                    | DatabaseErrorKind::UnableToSendCommand
                    | DatabaseErrorKind::SerializationFailure
            ) || TRANSIENT_MESSAGES
                .iter()
                .any(|m| info.message().contains(m))
        }
        DieselError::BrokenTransactionManager => true,
        _ => false,
    }
}

fn describe(info: &dyn DatabaseErrorInformation) -> String {
    match info.details() {
        Some(d) => format!("{} ({d})", info.message()),
        None => info.message().to_string(),
    }
}

/// True for a foreign-key violation. SQLite reports some (a `RESTRICT` on delete)
/// without the extended code, so the message decides too.
pub(crate) fn is_foreign_key_violation(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => true,
        DieselError::DatabaseError(_, info) => {
            info.message().contains("FOREIGN KEY constraint failed")
        }
        _ => false,
    }
}

/// True for a NOT NULL violation (PostgreSQL reports its kind).
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn is_not_null_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::NotNullViolation, _)
    )
}

/// True for a unique violation (see [`is_foreign_key_violation`] for SQLite).
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => true,
        DieselError::DatabaseError(_, info) => info.message().contains("UNIQUE constraint failed"),
        _ => false,
    }
}

/// Maps a pool checkout error: no connection means the database is unavailable.
pub(crate) fn pool_error(e: diesel_async::pooled_connection::deadpool::PoolError) -> StoreError {
    use deadpool::managed::PoolError;
    let message = match &e {
        PoolError::Timeout(t) => {
            format!("no database connection within the wait timeout ({t:?})")
        }
        PoolError::Closed => "the connection pool is closed".to_string(),
        PoolError::NoRuntimeSpecified => {
            return StoreError::database("the connection pool has no runtime");
        }
        other => other.to_string(),
    };
    StoreError::Unavailable(DbFailure::caused_by(message, e))
}

/// `Ok(None)` for a missing row, the mapped error otherwise.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn not_found_is_none<T>(e: DieselError) -> Result<Option<T>, StoreError> {
    match e {
        DieselError::NotFound => Ok(None),
        e => Err(db_error(e)),
    }
}

/// The conflict of an identifier already used by an entry or a run.
pub(crate) fn identifier_taken(identifier: &str) -> StoreError {
    StoreError::Conflict(format!("job_run_identifier {identifier:?} is already used"))
}

/// The sole error of a missing template.
pub(crate) fn template_not_found(code: &str) -> StoreError {
    StoreError::NotFound(format!("template {code:?}"))
}

/// The sole error of a missing entry.
pub(crate) fn entry_not_found(identifier: &str) -> StoreError {
    StoreError::NotFound(format!("queue entry {identifier:?}"))
}

/// The conflict of deleting a template that entries still use.
pub(crate) fn template_in_use(code: &str) -> StoreError {
    StoreError::Conflict(format!(
        "template {code:?} has queue entries; remove them first"
    ))
}

/// The conflict of a template code already used.
pub(crate) fn template_exists(code: &str) -> StoreError {
    StoreError::Conflict(format!("a template with code {code:?} exists"))
}

/// The conflict of an entry that changed under every attempt of an operator action.
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
pub(crate) fn keeps_changing(identifier: &str) -> StoreError {
    StoreError::Conflict(format!(
        "queue entry {identifier:?} keeps changing; try again"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bildad_core::ErrorKind;

    fn db(kind: DatabaseErrorKind, message: &str) -> DieselError {
        DieselError::DatabaseError(kind, Box::new(message.to_string()))
    }

    #[test]
    fn transient_failures_are_unavailable() {
        for (kind, message) in [
            (
                DatabaseErrorKind::Unknown,
                "terminating connection due to administrator command",
            ),
            (
                DatabaseErrorKind::Unknown,
                "terminating connection because of crash of another server process",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is shutting down",
            ),
            (
                DatabaseErrorKind::Unknown,
                "the database system is starting up",
            ),
            (
                DatabaseErrorKind::Unknown,
                "sorry, too many clients already",
            ),
            (
                DatabaseErrorKind::Unknown,
                "remaining connection slots are reserved for roles with the SUPERUSER attribute",
            ),
            (DatabaseErrorKind::Unknown, "deadlock detected"),
            (
                DatabaseErrorKind::SerializationFailure,
                "could not serialize access due to concurrent update",
            ),
            (DatabaseErrorKind::ClosedConnection, "closed"),
            (DatabaseErrorKind::UnableToSendCommand, "connection closed"),
            (DatabaseErrorKind::Unknown, "database is locked"),
            (
                DatabaseErrorKind::Unknown,
                "Input/output error: Input/output error: Broken pipe (os error 32)",
            ),
            (
                DatabaseErrorKind::Unknown,
                "Driver error: `Connection to the server is closed.'",
            ),
            (
                DatabaseErrorKind::Unknown,
                "Failed to read auto-increment value from storage engine",
            ),
        ] {
            let e = db_error(db(kind, message));
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{kind:?} {message}");
            assert!(e.is_transient());
            assert!(e.to_string().contains(message), "{e}");
        }
    }

    #[test]
    fn other_failures_keep_their_kind_and_source() {
        let e = db_error(db(
            DatabaseErrorKind::Unknown,
            "relation \"x\" does not exist",
        ));
        assert_eq!(e.kind(), ErrorKind::Database);
        let failure = std::error::Error::source(&e).expect("the failure");
        let cause = failure.source().expect("the diesel error");
        assert!(cause.downcast_ref::<DieselError>().is_some(), "{cause}");
        assert_eq!(
            db_error(db(DatabaseErrorKind::UniqueViolation, "dup")).kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            db_error(db(
                DatabaseErrorKind::Unknown,
                "FOREIGN KEY constraint failed"
            ))
            .kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            db_error(DieselError::BrokenTransactionManager).kind(),
            ErrorKind::Unavailable
        );
    }
}
