//! Cross-crate and multi-node tests.
