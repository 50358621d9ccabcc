//! Observability through the API: `GET /jobs/metrics` (behind the token, Prometheus'
//! text format, the cluster's gauges from one cached query however many scrapes race for
//! it), and the enqueue's `traceparent` header kept with the entry.

use crate::Api;
use bildad_conformance::{Call, FaultStore, Once};
use bildad_core::{JobStore, MemoryStore, NewEntry};
use bildad_http::ApiConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn parse(body: &Value) -> prometheus_parse::Scrape {
    let text = body.as_str().expect("a text body");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("parses")
}

fn gauge(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect();
    assert_eq!(found.len(), 1, "one sample {name} {labels:?}: {found:?}");
    match found[0].value {
        prometheus_parse::Value::Gauge(v) | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name} is not a gauge: {other:?}"),
    }
}

/// The route needs the token like every other but the health check.
#[tokio::test]
async fn metrics_need_the_token() {
    let config = ApiConfig::default().with_auth_token("s3cret");
    let api = Api::start(Arc::new(MemoryStore::new()), config).await;
    let anonymous = Api { token: None, ..api };
    anonymous.get("/jobs/metrics").await.expect(401);
    let wrong = Api {
        token: Some("wrong".into()),
        ..anonymous
    };
    wrong.get("/jobs/metrics").await.expect(401);
    let right = Api {
        token: Some("s3cret".into()),
        ..wrong
    };
    right.get("/jobs/metrics").await.expect(200);
}

/// The queue gauges count the store's entries per state, in the text format.
#[tokio::test]
async fn metrics_report_the_queue_depths() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let api = Api::start(store.clone(), ApiConfig::default()).await;
    api.templates().await;
    let later = store.now().await.unwrap() + chrono::Duration::hours(1);
    for _ in 0..3 {
        store
            .enqueue(NewEntry::new("test.echo", json!({})).run_at(later))
            .await
            .unwrap();
    }
    let scrape = parse(&api.get("/jobs/metrics").await.expect(200));
    let depth = |state| {
        gauge(
            &scrape,
            "bildad_queue_depth",
            &[("queue", "default"), ("state", state)],
        )
    };
    assert_eq!(
        (depth("available"), depth("scheduled"), depth("running")),
        (0.0, 3.0, 0.0)
    );
    let age = [("queue", "default")];
    assert_eq!(
        gauge(&scrape, "bildad_queue_oldest_available_age_seconds", &age),
        0.0
    );
}

/// Scrapes that race within one cache period share one query: the first query is held
/// while the others arrive, and a second query would fail (and its scrape with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_scrapes_make_one_query_per_cache_period() {
    let faults = FaultStore::new(Arc::new(MemoryStore::new()));
    let config = ApiConfig::default().with_metrics_cache(Duration::from_secs(3600));
    let api = Api::start(faults.clone(), config).await;
    let hold = faults.once(Call::QueueDepths, 0, Once::HoldBefore);
    faults.once(Call::QueueDepths, 0, Once::Fail);
    let scrapes = futures::future::join_all((0..8).map(|_| api.get("/jobs/metrics")));
    let release = async {
        hold.entered().await;
        // Give the other scrapes every chance to reach the store (not needed for the
        // assertion: with the guard none of them ever does).
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        hold.release();
    };
    let (answers, ()) = tokio::join!(scrapes, release);
    for a in answers {
        a.expect(200);
    }
    api.get("/jobs/metrics").await.expect(200);
    assert_eq!(faults.refused(Call::QueueDepths), Vec::<String>::new());
}

/// Once the period is over, a scrape queries again.
#[tokio::test]
async fn a_scrape_after_the_cache_period_queries_again() {
    let faults = FaultStore::new(Arc::new(MemoryStore::new()));
    let config = ApiConfig::default().with_metrics_cache(Duration::ZERO);
    let api = Api::start(faults.clone(), config).await;
    api.get("/jobs/metrics").await.expect(200);
    faults.once(Call::QueueDepths, 0, Once::Fail);
    api.get("/jobs/metrics").await.expect(503);
    assert_eq!(faults.refused(Call::QueueDepths).len(), 1);
}

/// The enqueue keeps the request's `traceparent` header with the entry (its claims hand
/// it over); a header that is not one is ignored, never an error.
#[tokio::test]
async fn enqueue_keeps_a_valid_traceparent_and_ignores_a_bad_one() {
    use axum::body::Body;
    use axum::http::{Request, header};
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let api = Api::start(store.clone(), ApiConfig::default()).await;
    api.templates().await;
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (header_value, id) in [(traceparent, "traced"), ("garbage", "untraced")] {
        let body = json!({"template": "test.echo", "context": {}, "job_run_identifier": id});
        let req = Request::post("/jobs/queue")
            .header(header::CONTENT_TYPE, "application/json")
            .header("traceparent", header_value)
            .body(Body::from(body.to_string()))
            .unwrap();
        api.send(req).await.expect(201);
    }
    let node = bildad_core::NodeRef::new("trace-test");
    let claimed = store
        .claim(bildad_core::ClaimRequest {
            node,
            job_types: vec!["test.echo".into()],
            limit: 10,
            expiry_grace: Duration::from_secs(60),
            only_identifier: None,
            queues: None,
            queue_caps: Default::default(),
        })
        .await
        .unwrap();
    let of = |id: &str| {
        let c = claimed.iter().find(|c| c.run.job_run_identifier == id);
        c.expect("claimed").trace_context.clone()
    };
    assert_eq!(of("traced").as_deref(), Some(traceparent));
    assert_eq!(of("untraced"), None);
}
