//! Runs the example app: `DATABASE_URL=sqlite://example.db cargo run -p bildad-example-app`.

use bildad_core::NodeConfig;
use bildad_example_app::{app, ensure_templates, registry};
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| "sqlite://example.db".into());
    let store = bildad_store_diesel::connect(&url).await?;
    ensure_templates(&store).await?;
    let node = bildad_runtime::NodeRuntime::start(
        store,
        registry(),
        NodeConfig {
            node_name: "example-1".into(),
            killer_interval: Duration::from_secs(20),
            ..Default::default()
        },
    )
    .await?;
    let token = std::env::var("BILDAD_AUTH_TOKEN").ok();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:4100").await?;
    println!("example app on http://127.0.0.1:4100 — try:");
    println!(
        "  curl -X POST localhost:4100/signup -H 'content-type: application/json' -d '{{\"email\":\"ada@example.com\"}}'"
    );
    axum::serve(listener, app(&node, token))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    node.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
