//! Typed errors of the storage contract.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// One reason an input was rejected: where (a JSON pointer into the request, such as
/// `/context/email` or `/priority`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// JSON pointer to the offending value, relative to the request body.
    pub pointer: String,
    /// What is wrong with it.
    pub message: String,
}

impl Violation {
    /// A violation at `pointer`.
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.pointer.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.pointer, self.message)
        }
    }
}

/// What kind of failure a [`StoreError`] is, so callers branch on kinds, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The named thing does not exist.
    NotFound,
    /// The write collides with existing state (duplicate identifier or code, wrong status).
    Conflict,
    /// The input breaks a rule; nothing was written.
    Invalid,
    /// The database cannot be reached right now; transient, retry later.
    Unavailable,
    /// Any other database failure.
    Database,
    /// A unique job that is already enqueued within its window (SPEC §8): not a failure
    /// of the request, nothing was written.
    Duplicate,
}

/// The error of every [`crate::JobStore`] method.
///
/// A method that returns an error has changed nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The named template, entry or run does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The write collides with existing state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input breaks one or more rules; every violation is listed.
    #[error("invalid input: {}", join(.0))]
    Invalid(Vec<Violation>),
    /// The database cannot be reached right now (transient).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] DbFailure),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(#[source] DbFailure),
    /// Entry `index` of the request is a unique job already enqueued within its window
    /// as `job_run_identifier` (SPEC §8); nothing was written (a batch is all or
    /// nothing).
    #[error("entry {index} is a duplicate of {job_run_identifier:?}")]
    Duplicate {
        /// The entry's place in the request (0 for a single enqueue).
        index: usize,
        /// The identifier of the entry enqueued earlier with the same unique key.
        job_run_identifier: String,
    },
}

/// What went wrong in the database, with the driver's own error when there is one
/// ([`std::error::Error::source`]), so that a caller can log the real cause.
///
/// Built from a message (`"…".into()`) or with [`DbFailure::caused_by`]. Two failures
/// are equal when their messages are.
#[derive(Debug, Clone)]
pub struct DbFailure {
    message: String,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl DbFailure {
    /// A failure described by `message`, caused by `source`.
    pub fn caused_by(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// The description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for DbFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DbFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PartialEq for DbFailure {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl From<String> for DbFailure {
    fn from(message: String) -> Self {
        Self {
            message,
            source: None,
        }
    }
}

impl From<&str> for DbFailure {
    fn from(message: &str) -> Self {
        message.to_string().into()
    }
}

fn join(v: &[Violation]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl StoreError {
    /// The error of `enqueue_many` for a one-entry batch, as `enqueue` reports it: the
    /// violations' pointers lose the batch index (`/0/context` becomes `/context`).
    pub fn for_single_entry(self) -> Self {
        match self {
            Self::Invalid(v) => Self::Invalid(
                v.into_iter()
                    .map(|mut x| {
                        if let Some(rest) = x.pointer.strip_prefix("/0") {
                            x.pointer = rest.to_string();
                        }
                        x
                    })
                    .collect(),
            ),
            other => other,
        }
    }

    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Database(_) => ErrorKind::Database,
            Self::Duplicate { .. } => ErrorKind::Duplicate,
        }
    }

    /// True when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A single violation.
    pub fn invalid(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![Violation::new(pointer, message)])
    }

    /// A database failure (`Database`) described by `message`.
    pub fn database(message: impl Into<String>) -> Self {
        Self::Database(DbFailure::from(message.into()))
    }

    /// The violations, when the error is `Invalid`.
    pub fn violations(&self) -> &[Violation] {
        match self {
            Self::Invalid(v) => v,
            _ => &[],
        }
    }
}

/// Shorthand for results of the storage contract.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_failure_keeps_its_cause() {
        let cause = std::io::Error::other("terminating connection due to administrator command");
        let e = StoreError::Unavailable(DbFailure::caused_by("connection lost", cause));
        let failure = std::error::Error::source(&e).expect("the failure");
        assert_eq!(failure.to_string(), "connection lost");
        let cause = failure.source().expect("the driver's error");
        assert!(
            cause.to_string().contains("administrator command"),
            "{cause}"
        );
        assert_eq!(e, StoreError::Unavailable("connection lost".into()));
        assert!(e.is_transient());
    }
}
