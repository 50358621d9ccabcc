//! What every handler shares.

use crate::config::ApiConfig;
use crate::error::ApiError;
use bildad_core::StoreResult;
use bildad_runtime::Engine;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The router's state: the node's engine and the API configuration.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) engine: Engine,
    pub(crate) config: Arc<ApiConfig>,
    /// The metrics' cluster gauges, cached (see [`crate::metrics`]).
    pub(crate) gauges: Arc<crate::metrics::ClusterGauges>,
}

impl AppState {
    /// Runs a store call on its own task and waits at most `store_timeout` for it.
    ///
    /// The call runs to completion even when the caller gives up (timeout, client
    /// gone), so a write is never cancelled half-way; a database that does not answer
    /// is a 503, never a hanging request.
    pub(crate) async fn call<T, F>(&self, fut: F) -> Result<T, ApiError>
    where
        F: Future<Output = StoreResult<T>> + Send + 'static,
        T: Send + 'static,
    {
        bounded(self.config.store_timeout, fut).await
    }
}

pub(crate) async fn bounded<T, F>(limit: Duration, fut: F) -> Result<T, ApiError>
where
    F: Future<Output = StoreResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let task = tokio::spawn(fut);
    match tokio::time::timeout(limit, task).await {
        Err(_) => {
            tracing::warn!(?limit, "store call timed out");
            Err(ApiError::unavailable(format!(
                "the database did not answer within {} s; retry later",
                limit.as_secs_f64()
            )))
        }
        Ok(Err(join)) => {
            tracing::error!(error = %join, "store call panicked");
            Err(ApiError::internal())
        }
        Ok(Ok(result)) => result.map_err(ApiError::from),
    }
}
