//! An example application: axum + diesel-async with Bildad added by the steps of
//! `docs/INSTALL.md`.
//!
//! - `POST /signup {"email": …}` inserts the user and enqueues the typed welcome job in
//!   one transaction of the app's own database ([`signup`]); 201, or 409 for a known
//!   e-mail (and no job).
//! - The welcome worker reads the app's mailer through the registry's state
//!   ([`welcome`]).
//! - Bildad's store shares the app's connection pool; the app's migrations and Bildad's
//!   run through one diesel-async migration harness ([`db`]).
//! - Bildad's API is nested beside the app's routes under `/jobs`.

pub mod db;
pub mod signup;
pub mod welcome;

pub use db::Database;
pub use welcome::{Mail, Mailer, Welcome, registry};

use axum::Router;
use axum::routing::post;
use bildad_runtime::NodeRuntime;

/// The whole app: its own route, and Bildad's API (behind `auth_token` when given).
pub fn app(db: Database, node: &NodeRuntime, auth_token: Option<String>) -> Router {
    let mut config = bildad_http::ApiConfig::default();
    if let Some(token) = auth_token {
        config = config.with_auth_token(token);
    }
    Router::new()
        .route("/signup", post(signup::signup))
        .with_state(db)
        .merge(bildad_http::router(node.engine().clone(), config))
}
