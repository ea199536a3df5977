//! The API gateway: the one public entry point. In embedded mode it mounts every service's
//! router in-process (no network hop), adds the HTTP conventions, the health endpoints, the
//! aggregated OpenAPI document and the docs UI. In proxy mode ([`proxy`]) it forwards to
//! services running as their own processes. A service process serves its own router through
//! [`router`] too, without the edge checks.

mod common_responses;
pub mod edge;
pub mod proxy;
pub mod ratelimit;

/// Help text for the gateway's own metrics.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "commercex_rate_limit_rejections_total",
        "Requests refused with 429 at the edge, by quota scope (client, user)."
    );
    describe_counter!(
        "commercex_rate_limit_fail_open_total",
        "Requests let through unmetered because the quota store (Redis) did not answer."
    );
    describe_histogram!(
        "http_client_request_duration_seconds",
        Unit::Seconds,
        "Proxied requests to services, by service, instance, method and outcome (status code or error type)."
    );
}

use std::sync::Arc;

use axum::{Extension, Router};
use platform::auth::TokenVerifier;
use platform::http::{HttpLimits, ReadinessCheck, apply_conventions, health_routes};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::edge::{EdgeGuard, edge_layer};
use crate::ratelimit::RateLimits;

/// Everything the public router is made of.
pub struct GatewayParts {
    /// Each service's routes with their OpenAPI description.
    pub services: Vec<OpenApiRouter>,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    pub verifier: Arc<TokenVerifier>,
    pub limits: HttpLimits,
    /// Quotas checked at the edge; `None` for a service process behind a gateway.
    pub rate_limits: Option<RateLimits>,
}

pub fn router(parts: GatewayParts) -> Router {
    let mut combined = OpenApiRouter::new();
    for service in parts.services {
        assert_no_schema_clash(combined.get_openapi(), service.get_openapi());
        combined = combined.merge(service);
    }
    let (api, openapi) = combined.split_for_parts();
    let mut app = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", describe(openapi)))
        .merge(events::asyncapi::routes())
        .merge(health_routes(parts.readiness))
        .layer(Extension(parts.verifier.clone()));
    if let Some(rate_limits) = parts.rate_limits {
        app = edge_layer(
            app,
            EdgeGuard {
                verifier: parts.verifier,
                rate_limits,
            },
        );
    }
    apply_conventions(app, parts.limits)
}

/// The docs UI, reading the document from `/openapi.json` (served separately).
fn docs_ui() -> Router {
    SwaggerUi::new("/docs")
        .config(Config::from("/openapi.json"))
        .into()
}

/// The aggregated document: every service's paths under one title and security scheme.
/// Two services naming different schemas alike would publish one of them under both names
/// (merging keeps one), and clients generated from the document would read one service's
/// answers with the other's type. Like axum's overlapping routes, a fault of the code
/// found at start-up, whatever the configuration: every test that starts the app finds it.
fn assert_no_schema_clash(merged: &OpenApi, service: &OpenApi) {
    let (Some(merged), Some(service)) = (&merged.components, &service.components) else {
        return;
    };
    for (name, schema) in &service.schemas {
        if merged
            .schemas
            .get(name)
            .is_some_and(|known| known != schema)
        {
            panic!(
                "two services describe different schemas named {name} in OpenAPI: rename one \
                 (#[schema(as = ...)] or the type's name)"
            );
        }
    }
}

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
    common_responses::add(&mut openapi);
    openapi
}

#[cfg(test)]
mod tests {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{ComponentsBuilder, OpenApiBuilder};

    use super::*;

    fn with_schema(name: &str, property: &str) -> OpenApi {
        let schema = ObjectBuilder::new()
            .property(property, ObjectBuilder::new().schema_type(Type::String))
            .build();
        OpenApiBuilder::new()
            .components(Some(ComponentsBuilder::new().schema(name, schema).build()))
            .build()
    }

    #[test]
    fn services_may_share_a_schema_they_describe_alike() {
        assert_no_schema_clash(
            &with_schema("Price", "amount"),
            &with_schema("Price", "amount"),
        );
        assert_no_schema_clash(
            &with_schema("Price", "amount"),
            &with_schema("Cart", "items"),
        );
    }

    #[test]
    #[should_panic(expected = "different schemas named AttemptResponse")]
    fn two_schemas_of_one_name_stop_the_start() {
        assert_no_schema_clash(
            &with_schema("AttemptResponse", "operation"),
            &with_schema("AttemptResponse", "status_code"),
        );
    }
}
