//! What a CommerceX process tells the outside world about itself.
//!
//! - Logs ([`logs`]): one JSON object per line in production, readable lines in development,
//!   each with the trace and span ids of the work it belongs to, on stdout for a server.
//!   Levels per module from `RUST_LOG` (default `info`).
//! - Traces ([`traces`]): OpenTelemetry spans, exported over OTLP when the standard `OTEL_*`
//!   variables ask for it.
//! - Metrics ([`metrics`]): Prometheus text at `/metrics`.

pub mod logs;
pub mod metrics;
pub mod traces;

use tracing::Subscriber;
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, filter};

use crate::cli::LogFormat;
pub use logs::LogStream;

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

/// Levels without `RUST_LOG`: `info`, but not the Vault client's own error lines, which
/// repeat (without context) what CommerceX reports about the same failure.
const DEFAULT_LEVELS: &str = "info,rustify=off,vaultrs=off";

/// The target of the lines that say a server is up and that it stopped. They are logged
/// whatever the level, since operators and scripts wait for them.
pub const LIFECYCLE: &str = "commercex::lifecycle";

/// Installs logging and tracing for a process that runs as `service` (`commercex` for the
/// embedded runtime and the command-line tools), logging to `stream`. A second call in one
/// process (tests start several apps) keeps the first installation.
pub fn init(
    format: LogFormat,
    service: &'static str,
    stream: LogStream,
) -> anyhow::Result<Telemetry> {
    let traces = traces::Traces::from_env(service)?;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LEVELS))
        .add_directive(format!("{LIFECYCLE}=info").parse()?);
    let otel_layer = otel_layer(&traces);
    let dispatch_slot = logs::DispatchSlot::default();
    let log_layer = logs::layer(format, service, stream, dispatch_slot.clone());
    let dispatch = tracing::Dispatch::new(
        tracing_subscriber::registry()
            .with(filter)
            .with(otel_layer)
            .with(log_layer),
    );
    let _ = dispatch_slot.set(dispatch.downgrade());
    let installed = dispatch.try_init();
    Ok(Telemetry {
        traces: installed.is_ok().then_some(traces),
    })
}

/// The layer that gives spans their OpenTelemetry ids and, when traces are exported, makes
/// them OpenTelemetry spans. It runs for every span, and every poll of an instrumented
/// future enters and leaves one, so what it does by default and nobody here reads is off:
/// source locations, thread names and busy/idle times as attributes (allocations and clock
/// reads per span or poll), and attaching the span's context to a thread-local on every
/// entry (`platform::trace_context` reads the span's own context, never the current one).
/// Log events become span events only when there is an exporter to send them to.
fn otel_layer<S>(traces: &traces::Traces) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let exporting = traces.exporting();
    tracing_opentelemetry::layer()
        .with_tracer(traces.tracer())
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter::filter_fn(move |metadata| {
            exporting || metadata.is_span()
        }))
}
