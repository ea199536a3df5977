//! The public OpenAPI document in proxy mode: each service's own document, fetched from its
//! instances on first request and merged, so it matches the embedded one path for path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use platform::problem::ApiError;
use tokio::sync::OnceCell;
use utoipa::openapi::OpenApi;

use super::Proxy;
use super::upstream::Upstream;

pub struct MergedDocument {
    upstreams: Vec<Arc<Upstream>>,
    merged: OnceCell<OpenApi>,
}

impl MergedDocument {
    pub fn new(upstreams: Vec<Arc<Upstream>>) -> Self {
        Self {
            upstreams,
            merged: OnceCell::new(),
        }
    }

    async fn get(&self, client: &reqwest::Client) -> Result<&OpenApi, ApiError> {
        self.merged
            .get_or_try_init(|| async {
                let mut merged = OpenApi::default();
                for upstream in &self.upstreams {
                    merged.merge(fetch(client, upstream).await?);
                }
                Ok(crate::describe(merged))
            })
            .await
    }
}

async fn fetch(client: &reqwest::Client, upstream: &Upstream) -> Result<OpenApi, ApiError> {
    for base in upstream.rotation() {
        let answer = client
            .get(base.url_for("/openapi.json"))
            .timeout(upstream.timeout)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        match answer {
            Ok(answer) => {
                return answer.json().await.map_err(|e| {
                    ApiError::Internal(anyhow::anyhow!(
                        "the {} service's OpenAPI document is unreadable: {e}",
                        upstream.service
                    ))
                });
            }
            Err(error) => tracing::warn!(service = %upstream.service, %error, "fetching OpenAPI"),
        }
    }
    Err(ApiError::Unavailable(format!(
        "the {} service is unavailable; its API description cannot be shown",
        upstream.service
    )))
}

pub async fn serve(State(proxy): State<Arc<Proxy>>) -> Result<Json<OpenApi>, ApiError> {
    proxy
        .openapi
        .get(&proxy.client)
        .await
        .map(|doc| Json(doc.clone()))
}
