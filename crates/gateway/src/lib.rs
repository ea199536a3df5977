//! The API gateway: the one public entry point. In embedded mode it mounts every service's
//! router in-process (no network hop), adds the HTTP conventions, the health endpoints, the
//! aggregated OpenAPI document and the docs UI.

use std::sync::Arc;

use axum::{Extension, Router};
use platform::auth::TokenVerifier;
use platform::http::{HttpLimits, ReadinessCheck, apply_conventions, health_routes};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

/// Everything the public router is made of.
pub struct GatewayParts {
    /// Each service's routes with their OpenAPI description.
    pub services: Vec<OpenApiRouter>,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    pub verifier: Arc<TokenVerifier>,
    pub limits: HttpLimits,
}

pub fn router(parts: GatewayParts) -> Router {
    let mut combined = OpenApiRouter::new();
    for service in parts.services {
        combined = combined.merge(service);
    }
    let (api, openapi) = combined.split_for_parts();
    let app = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", describe(openapi)))
        .merge(health_routes(parts.readiness))
        .layer(Extension(parts.verifier));
    apply_conventions(app, parts.limits)
}

/// The aggregated document: every service's paths under one title and security scheme.
fn describe(mut openapi: OpenApi) -> OpenApi {
    openapi.info = InfoBuilder::new()
        .title("CommerceX API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Event-driven commerce backend. Errors are application/problem+json (RFC 9457).",
        ))
        .build();
    let components = openapi.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    openapi
}
