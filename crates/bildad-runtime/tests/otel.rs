//! The run's span through OpenTelemetry (feature `otel`), exported in process (no
//! collector): a `CONSUMER` span named after its queue, with the messaging conventions'
//! attributes, linked to the span of the request that enqueued the entry.

use bildad_core::{
    Backoff, ClaimRequest, JobContext, JobError, JobExecutor, JobRegistry, JobStore, MemoryStore,
    NewEntry, NewTemplate, NodeRef,
};
use bildad_runtime::TokioExecutor;
use opentelemetry::trace::{SpanId, SpanKind, TraceId, TracerProvider as _};
use opentelemetry::{KeyValue, Value as Attr};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;

async fn echo(ctx: JobContext) -> Result<Option<Value>, JobError> {
    tracing::info!("inside the run");
    Ok(Some(ctx.context))
}

fn attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Attr> {
    attrs
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_span_follows_the_messaging_conventions_and_links_to_its_enqueuer() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bildad-test")));
    // Global: the job runs on the runtime's worker threads.
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let t = NewTemplate::new("otel.echo", "echo", "otel.echo", json!({"type": "object"}));
    store.create_template(t).await.unwrap();
    // The enqueuing request's span context, kept with the entry.
    let enqueuer_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let enqueuer_span = "00f067aa0ba902b7";
    let entry = NewEntry::new("otel.echo", json!({}))
        .queue("mail")
        .trace_context(format!("00-{enqueuer_trace}-{enqueuer_span}-01"));
    let entry = store.enqueue(entry).await.unwrap();
    let node = NodeRef::new("otel-node");
    store.heartbeat(&node).await.unwrap();
    let mut claimed = store
        .claim(ClaimRequest {
            node: node.clone(),
            job_types: vec!["otel.echo".into()],
            limit: 1,
            expiry_grace: Duration::from_secs(60),
            only_identifier: None,
            queues: None,
            queue_caps: Default::default(),
        })
        .await
        .unwrap();
    let run = claimed.remove(0);

    let executor = TokioExecutor::new(store.clone(), node.clone(), Backoff::immediate(), 1);
    let job = JobRegistry::new()
        .with("otel.echo", echo)
        .get("otel.echo")
        .unwrap();
    executor.spawn(run, job);
    assert!(
        executor.wait_idle(Duration::from_secs(20)).await,
        "the run ends"
    );
    // The span closes when the run's task is dropped, just after its slot is freed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let span = loop {
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        if let Some(s) = spans.into_iter().find(|s| s.name == "process mail") {
            break s;
        }
        assert!(tokio::time::Instant::now() < deadline, "no run span");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(span.span_kind, SpanKind::Consumer);
    let a = &span.attributes;
    assert_eq!(attr(a, "messaging.system"), Some(&Attr::from("bildad")));
    assert_eq!(
        attr(a, "messaging.operation.type"),
        Some(&Attr::from("process"))
    );
    assert_eq!(
        attr(a, "messaging.destination.name"),
        Some(&Attr::from("mail"))
    );
    let id = entry.job_run_identifier.clone();
    assert_eq!(attr(a, "messaging.message.id"), Some(&Attr::from(id)));
    let links: Vec<_> = span.links.iter().map(|l| l.span_context.clone()).collect();
    assert_eq!(links.len(), 1, "one link: {links:?}");
    assert_eq!(
        links[0].trace_id(),
        TraceId::from_hex(enqueuer_trace).unwrap()
    );
    assert_eq!(links[0].span_id(), SpanId::from_hex(enqueuer_span).unwrap());
    assert!(links[0].is_remote());
}
