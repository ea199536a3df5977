use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::problem::{ApiError, PROBLEM_JSON};

/// Limits every public request is held to.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Wraps a router in the conventions every CommerceX endpoint follows.
pub fn apply_conventions(router: Router, limits: HttpLimits) -> Router {
    let router = router
        .fallback(|| async { ApiError::NotFound("no such resource".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::map_response(problem_for_bare_errors));
    with_request_conventions(router, limits)
}

/// What every request gets, API call or web page: a request id, a traced span, the request
/// metrics, refusal of ambiguous paths, the timeout and the body limit.
pub fn with_request_conventions(router: Router, limits: HttpLimits) -> Router {
    router.layer(
        ServiceBuilder::new()
            // No browser guesses a type other than the one declared (a JSON body
            // rendered as HTML).
            .layer(SetResponseHeaderLayer::if_not_present(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetRequestIdLayer::x_request_id(RequestIdV7))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(finish_span),
            )
            .layer(axum::middleware::from_fn(count_request))
            .layer(axum::middleware::from_fn(refuse_ambiguous_paths))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::SERVICE_UNAVAILABLE,
                limits.request_timeout,
            ))
            .layer(DefaultBodyLimit::max(limits.max_body_bytes)),
    )
}

#[derive(Clone, Copy)]
struct RequestIdV7;

impl MakeRequestId for RequestIdV7 {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
            .ok()
            .map(RequestId::new)
    }
}

/// OpenTelemetry's HTTP server span: named `{method} {route}`, continuing the caller's trace.
fn request_span<B>(request: &Request<B>) -> Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let span = tracing::info_span!(
        "http.request",
        otel.name = %span_name(method, route),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        url.path = %request.uri().path(),
        http.response.status_code = tracing::field::Empty,
        request_id = %request_id,
    );
    crate::trace_context::continue_from_headers(&span, request.headers());
    span
}

fn finish_span<B>(response: &Response<B>, latency: Duration, span: &Span) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    tracing::info!(
        http.response.status_code = status.as_u16(),
        latency_ms = latency.as_millis() as u64,
        "request finished"
    );
}

fn span_name(method: &str, route: Option<&str>) -> String {
    match route {
        Some(route) => format!("{method} {route}"),
        None => method.to_owned(),
    }
}

/// A path with dot segments or encoded separators means different things to different
/// parsers: a proxy in front may resolve `..` where the router does not, and
/// `/api/v1/auth/../../metrics` would then reach what the route it was checked against
/// never allowed. Such a path is refused, never interpreted.
async fn refuse_ambiguous_paths(request: axum::extract::Request, next: Next) -> Response {
    if is_ambiguous(request.uri().path()) {
        return ApiError::BadRequest(
            "the path has a '.' or '..' segment or an encoded separator".into(),
        )
        .into_response();
    }
    next.run(request).await
}

fn is_ambiguous(path: &str) -> bool {
    if !path.bytes().any(|b| matches!(b, b'.' | b'%' | b'\\')) {
        return false;
    }
    path.split('/').any(|segment| {
        let lowered = segment.to_ascii_lowercase();
        let dots = lowered.replace("%2e", ".");
        dots == "."
            || dots == ".."
            || lowered.contains("%2f")
            || lowered.contains("%5c")
            || segment.contains('\\')
    })
}

/// `http_server_request_duration_seconds` by method, route and status.
async fn count_request(request: axum::extract::Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    // Routes are patterns, never raw paths, so label sets stay bounded.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics::histogram!(
        "http_server_request_duration_seconds",
        "http_request_method" => method,
        "http_route" => route,
        "http_response_status_code" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}

/// Help text for the metrics every HTTP service records.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        "http_server_request_duration_seconds",
        metrics::Unit::Seconds,
        "Requests served, by method, route and status code."
    );
}

/// The method as OpenTelemetry names it: the standard ones, everything else `_OTHER`, so a
/// client cannot create label values at will.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// Errors produced below our handlers (a timeout, a body limit, a framework rejection) come
/// without a body; give them the same problem+json shape as everything else.
async fn problem_for_bare_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error())
        || response.headers().contains_key(header::CONTENT_TYPE)
    {
        return response;
    }
    let error = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::NOT_FOUND => ApiError::NotFound("no such resource".into()),
        StatusCode::SERVICE_UNAVAILABLE => {
            ApiError::Unavailable("the request did not complete in time".into())
        }
        other if other.is_client_error() => {
            ApiError::BadRequest(other.canonical_reason().unwrap_or("bad request").into())
        }
        _ => ApiError::Internal(anyhow::anyhow!("bare {status} response")),
    };
    let mut problem = error.into_response();
    *problem.status_mut() = status;
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            problem.headers_mut().insert(name, value.clone());
        }
    }
    debug_assert_eq!(problem.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    problem
}

#[cfg(test)]
mod tests {
    use super::is_ambiguous;

    #[test]
    fn dot_segments_and_encoded_separators_are_ambiguous() {
        for path in [
            "/api/v1/auth/../../../metrics",
            "/api/v1/auth/./login",
            "/api/v1/auth/%2e%2e/metrics",
            "/api/v1/auth/.%2E/metrics",
            "/api/v1/products/..%2f..%2fmetrics",
            "/api/v1/products/a%2Fb",
            "/api/v1/products/a%5cb",
            "/api/v1/products/a\\b",
            "/..",
        ] {
            assert!(is_ambiguous(path), "{path}");
        }
        for path in [
            "/api/v1/products",
            "/api/v1/products/0190c6d0-0000-7000-8000-000000000000",
            "/.well-known/jwks.json",
            "/api/v1/products/file.name",
            "/api/v1/products/a%20b",
            "/api/v1/products/...",
        ] {
            assert!(!is_ambiguous(path), "{path}");
        }
    }
}
