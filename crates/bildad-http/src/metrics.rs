//! `GET /jobs/metrics`: Prometheus' text exposition of this node's metrics and of the
//! cluster's queue gauges (docs/OBSERVABILITY.md).
//!
//! - **This node's** counters, histograms and gauges are recorded by `bildad-runtime`
//!   through the `metrics` facade. [`crate::router`] installs a Prometheus recorder as
//!   the process's global recorder, unless the application installed one first (its own
//!   exporter then receives them, and this route serves the cluster's gauges only).
//! - **The cluster's** gauges (queue depth per queue and state, the oldest available
//!   entry's age) come from one grouped query ([`bildad_core::JobStore::queue_depths`]),
//!   rendered on a recorder of their own and cached for [`ApiConfig::metrics_cache`]:
//!   scrapes within that period, concurrent ones included, share one query
//!   (single flight), so scraping every node costs the database one cheap query per
//!   node per period.

use crate::config::ApiConfig;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bildad_core::{FailureKind, QueueDepth};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

/// Gauge: entries per `queue` and `state` (`available`, `scheduled`, `running`).
pub const QUEUE_DEPTH: &str = "bildad_queue_depth";
/// Gauge: seconds since the `run_at` of the oldest available entry, per `queue`.
pub const QUEUE_OLDEST_AGE: &str = "bildad_queue_oldest_available_age_seconds";

/// The exposition format's content type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The Prometheus recorder this crate installed as the global recorder, or `None` when
/// the application had installed a recorder of its own first.
///
/// [`crate::router`] calls this, so that a node's metrics are recorded from the start.
/// An application that wants its own recorder installs it before building the router.
pub fn prometheus_recorder() -> Option<&'static PrometheusHandle> {
    static GLOBAL: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    GLOBAL
        .get_or_init(|| {
            let handle = builder().install_recorder().ok()?;
            bildad_runtime::metrics::describe();
            Some(handle)
        })
        .as_ref()
}

fn builder() -> PrometheusBuilder {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            bildad_runtime::metrics::DURATION_BUCKETS,
        )
        .expect("the buckets are not empty")
}

/// The cluster's gauges, rendered, and when: cached per router.
#[derive(Default)]
pub(crate) struct ClusterGauges {
    cached: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl ClusterGauges {
    /// The rendered gauges, queried again when older than `config.metrics_cache`. The
    /// lock is held across the query: concurrent scrapes wait for one query.
    async fn text(&self, s: &AppState, config: &ApiConfig) -> Result<String, ApiError> {
        let mut cached = self.cached.lock().await;
        if let Some((at, text)) = cached.as_ref()
            && at.elapsed() < config.metrics_cache
        {
            return Ok(text.clone());
        }
        let store = s.engine.store().clone();
        let depths = s.call(async move { store.queue_depths().await }).await?;
        let text = render_depths(&depths);
        *cached = Some((Instant::now(), text.clone()));
        Ok(text)
    }
}

/// The depths as gauges, on a recorder of their own: a queue that emptied is absent.
fn render_depths(depths: &[QueueDepth]) -> String {
    let recorder = builder().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_gauge!(QUEUE_DEPTH, "Entries per queue and state (cluster-wide).");
        metrics::describe_gauge!(
            QUEUE_OLDEST_AGE,
            metrics::Unit::Seconds,
            "Seconds since the run_at of the oldest available entry (cluster-wide)."
        );
        for d in depths {
            for (state, n) in [
                ("available", d.available),
                ("scheduled", d.scheduled),
                ("running", d.running),
            ] {
                metrics::gauge!(QUEUE_DEPTH, "queue" => d.queue.clone(), "state" => state)
                    .set(n as f64);
            }
            metrics::gauge!(QUEUE_OLDEST_AGE, "queue" => d.queue.clone())
                .set(d.oldest_available_age.as_secs_f64());
        }
    });
    handle.render()
}

/// Counts a run that an operator's request ended, in its queue (read from the run; the
/// default queue when it cannot be read: the count matters more than its label).
pub(crate) async fn operator_ended(s: &AppState, run: bildad_core::RunId, kind: FailureKind) {
    let store = s.engine.store().clone();
    let queue = s
        .call(async move { store.get_run(run).await })
        .await
        .map_or_else(|_| bildad_core::DEFAULT_QUEUE.to_string(), |r| r.queue);
    bildad_runtime::metrics::run_ended_by_operator(&queue, kind);
}

/// This node's metrics and the cluster's queue gauges, in Prometheus' text format.
#[utoipa::path(get, path = "/jobs/metrics", tag = "engine",
    responses(
        (status = 200, description = "the metrics, in Prometheus' text exposition format \
            (docs/OBSERVABILITY.md)", content_type = "text/plain", body = String),
        (status = 503, description = "the database cannot be reached", body = crate::openapi::ErrorJson),
    ))]
pub(crate) async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let cluster = s.gauges.text(&s, &s.config).await?;
    let node = match prometheus_recorder() {
        Some(handle) => {
            bildad_runtime::metrics::node_slots(&**s.engine.executor());
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    Ok(([(header::CONTENT_TYPE, CONTENT_TYPE)], node + &cluster).into_response())
}
