//! Runs the example app:
//! `DATABASE_URL=postgres://… LISTEN_ADDR=127.0.0.1:4100 target/release/bildad-example-app`
//! (`DATABASE_URL` defaults to `sqlite://example.db`, `LISTEN_ADDR` to `127.0.0.1:4100`;
//! `BILDAD_AUTH_TOKEN`, when set, guards `/jobs`).

use anyhow::Context;
use bildad_core::NodeConfig;
use bildad_example_app::{Database, Mailer, app, registry};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://example.db".into());
    let addr = std::env::var("LISTEN_ADDR").unwrap_or_else(|_| "127.0.0.1:4100".into());
    let db = Database::connect(&url)
        .await
        .with_context(|| format!("cannot open {url}"))?;
    db.migrate().await.context("cannot migrate")?;
    let node = bildad_runtime::NodeRuntime::start(
        db.store(),
        registry(Mailer::default()),
        NodeConfig {
            node_name: "example-1".into(),
            killer_interval: Duration::from_secs(20),
            engine_interval: Some(Duration::from_secs(5)),
            wake_on_enqueue: true,
            ..Default::default()
        },
    )
    .await?;
    let token = std::env::var("BILDAD_AUTH_TOKEN").ok();
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("example app on http://{addr} (dashboard: http://{addr}/jobs/dashboard) — try:");
    println!(
        "  curl -X POST {addr}/signup -H 'content-type: application/json' -d '{{\"email\":\"ada@example.com\"}}'"
    );
    axum::serve(listener, app(db, &node, token))
        .with_graceful_shutdown(stop_requested())
        .await?;
    node.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

/// Ctrl-C, or (on Unix) SIGTERM as a container runtime sends it.
async fn stop_requested() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                return;
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGTERM"),
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
