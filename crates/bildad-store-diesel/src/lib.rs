//! Bildad's `JobStore` on diesel: PostgreSQL and embedded SQLite.
