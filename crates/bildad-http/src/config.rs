//! `ApiConfig`: how the router authenticates and bounds its requests.

use std::time::Duration;

/// How the API authenticates and bounds requests. Start from `ApiConfig::default()`
/// and set what you need:
///
/// ```
/// let config = bildad_http::ApiConfig::default().with_auth_token("s3cret");
/// assert_eq!(config.body_limit, 1024 * 1024);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiConfig {
    /// When set, every route but `GET /jobs/health` needs
    /// `Authorization: Bearer <token>` (compared in constant time). An empty token
    /// matches nothing: every protected request is refused.
    pub auth_token: Option<String>,
    /// The largest request body, in bytes; a larger one is a 413 (default 1 MiB).
    pub body_limit: usize,
    /// How long a request waits for the database before answering 503
    /// (default 10 s). The store call itself is not cancelled: it finishes in the
    /// background, so a slow write is never cut in half.
    pub store_timeout: Duration,
    /// How long `GET /jobs/health` waits for the database (default 3 s).
    pub health_timeout: Duration,
    /// How long `GET /jobs/metrics` reuses the cluster's queue gauges before it queries
    /// the database again (default 5 s): at most one query per period per router.
    pub metrics_cache: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            auth_token: None,
            body_limit: 1024 * 1024,
            store_timeout: Duration::from_secs(10),
            health_timeout: Duration::from_secs(3),
            metrics_cache: Duration::from_secs(5),
        }
    }
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("ApiConfig")
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("body_limit", &self.body_limit)
            .field("store_timeout", &self.store_timeout)
            .field("health_timeout", &self.health_timeout)
            .field("metrics_cache", &self.metrics_cache)
            .finish()
    }
}

impl ApiConfig {
    /// Requires `Authorization: Bearer <token>` on every route but the health check.
    pub fn with_auth_token(mut self, token: impl Into<String>) -> Self {
        self.auth_token = Some(token.into());
        self
    }

    /// Sets the largest accepted request body, in bytes.
    pub fn with_body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// Sets how long a request waits for the database before answering 503.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.store_timeout = timeout;
        self
    }

    /// Sets how long the metrics' cluster gauges are cached (see
    /// [`ApiConfig::metrics_cache`]).
    pub fn with_metrics_cache(mut self, period: Duration) -> Self {
        self.metrics_cache = period;
        self
    }
}
