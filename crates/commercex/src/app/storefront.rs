//! The storefront's side of the wiring: beside the API in one process, or alone.

use anyhow::Context;
use client::ApiClient;
use platform::http::{health_routes, with_request_conventions};
use secrecy::ExposeSecret;

use crate::settings::Settings;

fn pages(settings: &Settings, api: ApiClient) -> anyhow::Result<axum::Router> {
    let secret = settings
        .web_session_secret
        .as_ref()
        .context("the storefront's session secret is loaded")?;
    let web = web::Web::new(
        api,
        Some(secret.expose_secret().trim().as_bytes()),
        settings.tls.is_some(),
    )?;
    Ok(with_request_conventions(web::router(web), settings.limits))
}

/// The pages beside `api`, which they call in memory: the same handlers, middleware, quotas
/// and checks a request over the network meets, without a socket.
pub fn beside(settings: &Settings, api: axum::Router) -> anyhow::Result<axum::Router> {
    let pages = pages(settings, ApiClient::in_process(api.clone()))?;
    Ok(api.merge(pages))
}

/// The pages alone (`serve web`), calling the API through `api`, with health endpoints and a
/// page of their own for addresses that are not pages.
pub fn alone(settings: &Settings, api: ApiClient) -> anyhow::Result<axum::Router> {
    Ok(pages(settings, api)?
        .merge(health_routes(Vec::new()))
        .fallback(web::not_found))
}
