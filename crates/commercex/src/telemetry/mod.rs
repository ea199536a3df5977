//! What a CommerceX process tells the outside world about itself.
//!
//! - Logs ([`logs`]): one JSON object per line in production, readable lines in development,
//!   each with the trace and span ids of the work it belongs to. Levels per module from
//!   `RUST_LOG` (default `info`).
//! - Traces ([`traces`]): OpenTelemetry spans, exported over OTLP when the standard `OTEL_*`
//!   variables ask for it.
//! - Metrics ([`metrics`]): Prometheus text at `/metrics`.

pub mod logs;
pub mod metrics;
pub mod traces;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// Keeps the trace pipeline alive; [`Telemetry::shutdown`] exports what is still buffered.
pub struct Telemetry {
    traces: Option<traces::Traces>,
}

impl Telemetry {
    /// Exports the spans still buffered. Call once, before the process exits.
    pub fn shutdown(self) {
        if let Some(traces) = self.traces {
            traces.shutdown();
        }
    }
}

/// Installs logging and tracing for a process that runs as `service` (`commercex` for the
/// embedded runtime and the command-line tools). A second call in one process (tests start
/// several apps) keeps the first installation.
pub fn init(format: LogFormat, service: &'static str) -> anyhow::Result<Telemetry> {
    let traces = traces::Traces::from_env(service)?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let otel_layer = tracing_opentelemetry::layer().with_tracer(traces.tracer());
    let log_layer = logs::layer(format, service);
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(otel_layer)
        .with(log_layer)
        .try_init();
    Ok(Telemetry {
        traces: installed.is_ok().then_some(traces),
    })
}
