//! Typed errors of the storage contract.

use serde::{Deserialize, Serialize};

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
    Unavailable(String),
    /// Any other database failure.
    #[error("database error: {0}")]
    Database(String),
}

fn join(v: &[Violation]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

impl StoreError {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::Conflict(_) => ErrorKind::Conflict,
            Self::Invalid(_) => ErrorKind::Invalid,
            Self::Unavailable(_) => ErrorKind::Unavailable,
            Self::Database(_) => ErrorKind::Database,
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
