//! Support for cross-crate tests.
