//! Bildad's runtime: the engine, the job killer and the tokio executor.
