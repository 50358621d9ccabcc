//! The binary's logs: human-readable text (the default) or one JSON object per line for
//! log shippers (`--log-format json`). Either way every line logged inside a run carries
//! the run's span fields: `run_id`, `identifier`, `template`, `queue`, `retry` and
//! `node` (the JSON lines as `span` and `spans`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// Text for people (colours on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the current span and its parents.
    Json,
}

/// Installs the global subscriber: `RUST_LOG` filters (default `info`).
pub(crate) fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
