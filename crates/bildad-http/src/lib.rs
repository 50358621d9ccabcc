//! Bildad's axum adapter.
