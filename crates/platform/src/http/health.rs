use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// Something `/readyz` must reach before this process takes traffic: a database, the bus.
#[async_trait]
pub trait ReadinessCheck: Send + Sync {
    fn name(&self) -> &str;
    async fn check(&self) -> Result<(), String>;
}

/// `/healthz` says the process is alive; `/readyz` says its dependencies answer.
pub fn health_routes(checks: Vec<Arc<dyn ReadinessCheck>>) -> Router {
    let checks = Arc::new(checks);
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/readyz", get(move || ready(checks.clone())))
}

async fn ready(checks: Arc<Vec<Arc<dyn ReadinessCheck>>>) -> Response {
    let mut results = serde_json::Map::new();
    let mut healthy = true;
    for check in checks.iter() {
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(2), check.check()).await;
        let status = match outcome {
            Ok(Ok(())) => json!("ok"),
            // The cause goes to the log, not to whoever asks on the public port.
            Ok(Err(error)) => {
                healthy = false;
                tracing::warn!(check = check.name(), %error, "not ready");
                json!("unavailable")
            }
            Err(_) => {
                healthy = false;
                json!("timed out")
            }
        };
        results.insert(check.name().to_owned(), status);
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if healthy { "ready" } else { "unavailable" }, "checks": results});
    (status, axum::Json(body)).into_response()
}
