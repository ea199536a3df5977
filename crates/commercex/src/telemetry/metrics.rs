//! Prometheus metrics: one recorder per process, rendered at `GET /metrics` on the app's own
//! listener, or on a separate one (`--metrics-listen`, with the health endpoints) when the
//! API port is public or takes only mutual TLS. Names
//! follow OpenTelemetry's semantic conventions as Prometheus spells them (`http_server_...`,
//! `db_client_...`); CommerceX's own are `commercex_...`. Every process labels its series with
//! `service`.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Histogram buckets in seconds: OpenTelemetry's HTTP duration boundaries, extended to a
/// minute for checkouts that wait on retries.
const DURATION_BUCKETS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 30.0,
    60.0,
];

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use with `service` as a label on every series.
pub fn recorder(service: &'static str) -> PrometheusHandle {
    RECORDER
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .add_global_label("service", service)
                .set_buckets(&DURATION_BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            let recorder = match recorder {
                Ok(recorder) => recorder,
                // The buckets are a non-empty constant.
                Err(error) => unreachable!("histogram buckets rejected: {error}"),
            };
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder is installed; /metrics stays empty");
            }
            describe();
            // Every process, even one that has served nothing yet, says what it runs.
            metrics::gauge!("commercex_build_info", "version" => env!("CARGO_PKG_VERSION"))
                .set(1.0);
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

fn describe() {
    platform::http::describe_metrics();
    events::telemetry::describe();
    orders::metrics::describe();
    webhooks::metrics::describe();
    gateway::describe_metrics();
    crate::secrets::vault::describe();
    metrics::describe_gauge!(
        "commercex_build_info",
        "Always 1; its labels say which version this process runs."
    );
    metrics::describe_counter!(
        "commercex_connections_refused_total",
        "Connections closed as soon as accepted because the listener had --max-connections open."
    );
    metrics::describe_counter!(
        "commercex_redis_failures_total",
        "Redis commands that failed or were skipped while its circuit breaker was open."
    );
    metrics::describe_counter!(
        "commercex_db_transactions_total",
        "Write transactions begun, per service database: the cost of the event path per order."
    );
    metrics::describe_gauge!(
        "db_client_connections_usage",
        "Database connections by state (idle, used), per service database."
    );
    metrics::describe_gauge!(
        "db_client_connections_max",
        "The most connections the pool may open, per service database."
    );
}

/// Histograms buffer samples until upkeep folds them in; render does it too, but a process
/// nobody scrapes must not grow without bound.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(5));
                handle.run_upkeep();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start metrics upkeep");
    }
}

/// `GET /metrics`.
pub fn routes(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], handle.render()) }
        }),
    )
}

/// Serves `routes` (`/metrics`, and the health endpoints) on `addr` until `shutdown` fires.
pub async fn serve_separately(
    addr: SocketAddr,
    routes: Router,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    tracing::info!(%addr, "metrics at /metrics, health at /healthz and /readyz");
    tokio::spawn(async move {
        let served = axum::serve(listener, routes)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
        if let Err(error) = served {
            tracing::error!(%error, "the metrics listener failed");
        }
    });
    Ok(())
}
