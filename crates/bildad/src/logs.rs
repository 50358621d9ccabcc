//! The binary's logs and traces. Logs go to stderr as human-readable text (the default)
//! or one JSON object per line for log shippers (`--log-format json`). Either way every
//! line logged inside a run carries the run's span fields: `run_id`, `identifier`,
//! `template`, `queue`, `retry` and `node` (the JSON lines under `span` and `spans`).
//!
//! With the feature `otel` (on by default), spans are also exported over OTLP (HTTP,
//! protobuf) when the standard environment names an endpoint
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), unless
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`. The exporter reads the rest
//! of the `OTEL_*` variables itself (headers, timeout, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`).

use std::io::IsTerminal;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Text for people (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the current span and its parents.
    Json,
}

/// What must outlive the process's work: the trace exporter, flushed when dropped.
pub(crate) struct Telemetry {
    #[cfg(feature = "otel")]
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        #[cfg(feature = "otel")]
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: could not flush the traces: {e}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
pub(crate) fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    #[cfg(feature = "otel")]
    let (otel, provider) = match otlp() {
        Ok(Some(provider)) => {
            use opentelemetry::trace::TracerProvider as _;
            let tracer = provider.tracer("bildad");
            let layer = tracing_opentelemetry::layer().with_tracer(tracer);
            (Some(layer), Some(provider))
        }
        Ok(None) => (None, None),
        Err(e) => {
            eprintln!("warning: OTLP trace export is off: {e}");
            (None, None)
        }
    };
    #[cfg(not(feature = "otel"))]
    let otel: Option<tracing_subscriber::layer::Identity> = None;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Telemetry {
        #[cfg(feature = "otel")]
        provider,
    }
}

/// The OTLP exporter the environment asks for, if any.
#[cfg(feature = "otel")]
fn otlp() -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
        .is_some();
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if !endpoint || disabled {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| e.to_string())?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(env("OTEL_SERVICE_NAME").unwrap_or_else(|| "bildad".into()))
                .build(),
        )
        .build();
    Ok(Some(provider))
}
