//! Bildad: durable background jobs for nodes that share one SQL database.
