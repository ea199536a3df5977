//! Forwarding one request to the service that owns its path, and its answer back.
//!
//! The request body is buffered (it is bounded by the body limit), so a request that found an
//! instance refusing connections can go to the next one; the response is streamed.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::Response;
use http_body_util::Full;
use hyper::body::Incoming;
use platform::http::{ClientAddr, method_label};
use platform::problem::ApiError;
use platform::trace_context;
use std::time::Instant;
use tracing::Instrument;

use super::Proxy;
use super::upstream::Upstream;

/// Headers that describe one hop, not the message (RFC 9110 7.6.1); never forwarded.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub async fn forward(
    State(proxy): State<Arc<Proxy>>,
    ClientAddr(client): ClientAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let upstream = proxy
        .upstream_for(request.uri().path())
        .ok_or_else(|| ApiError::NotFound("no such resource".into()))?;
    relay(&proxy, upstream, client, request).await
}

/// Sends the request to the first instance that takes the connection.
async fn relay(
    proxy: &Proxy,
    upstream: &Upstream,
    client: Option<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, proxy.max_body_bytes)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    let headers = upstream_headers(parts.headers, client.as_deref(), proxy.scheme);
    let root = PathAndQuery::from_static("/");
    let path_and_query = parts.uri.path_and_query().unwrap_or(&root);
    let method = method_label(&parts.method);
    for instance in upstream.rotation() {
        let span = tracing::info_span!(
            "proxy",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            server.address = %instance,
            service = %upstream.service,
            http.response.status_code = tracing::field::Empty,
        );
        let uri = instance.uri(path_and_query).map_err(|error| {
            ApiError::Internal(anyhow::anyhow!("forwarding to {instance}: {error}"))
        })?;
        let mut forwarded = http::Request::new(Full::new(body.clone()));
        *forwarded.method_mut() = parts.method.clone();
        *forwarded.uri_mut() = uri;
        *forwarded.headers_mut() = headers.clone();
        trace_context::inject_headers(&span, forwarded.headers_mut());
        let started = Instant::now();
        let sent = tokio::time::timeout(upstream.timeout, proxy.forward.request(forwarded))
            .instrument(span.clone())
            .await;
        let outcome = match &sent {
            Ok(Ok(answer)) => {
                span.record("http.response.status_code", answer.status().as_u16());
                answer.status().as_str().to_owned()
            }
            Ok(Err(error)) => {
                span.record("otel.status_code", "ERROR");
                error_type(error).to_owned()
            }
            Err(_) => {
                span.record("otel.status_code", "ERROR");
                "timeout".to_owned()
            }
        };
        metrics::histogram!(
            "http_client_request_duration_seconds",
            "http_request_method" => method,
            "server_address" => instance.name.clone(),
            "service" => upstream.service.name(),
            "outcome" => outcome,
        )
        .record(started.elapsed().as_secs_f64());
        match sent {
            Ok(Ok(answer)) => return Ok(downstream_response(answer)),
            Ok(Err(error)) if error.is_connect() => {
                tracing::warn!(service = %upstream.service, %instance, %error, "instance refused the connection; trying the next");
            }
            Ok(Err(error)) => {
                tracing::warn!(service = %upstream.service, %instance, %error, "request to instance failed");
                return Err(unavailable(upstream));
            }
            Err(_) => {
                tracing::warn!(service = %upstream.service, %instance, "instance did not answer in time");
                return Err(ApiError::GatewayTimeout(format!(
                    "the {} service did not answer within {}s",
                    upstream.service,
                    upstream.timeout.as_secs_f32()
                )));
            }
        }
    }
    Err(unavailable(upstream))
}

/// Why a request got no answer, as a bounded label value.
fn error_type(error: &hyper_util::client::legacy::Error) -> &'static str {
    if error.is_connect() {
        "connect_error"
    } else {
        "request_error"
    }
}

fn unavailable(upstream: &Upstream) -> ApiError {
    ApiError::Unavailable(format!(
        "the {} service is unavailable; retry shortly",
        upstream.service
    ))
}

/// The caller's headers minus hop-by-hop ones, plus who the caller is. `x-forwarded-for` is
/// replaced, not appended to: the gateway is the edge, and what a client claims there is not
/// evidence of anything.
fn upstream_headers(
    mut headers: HeaderMap,
    client: Option<&str>,
    scheme: &'static str,
) -> HeaderMap {
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove("forwarded");
    headers.remove("x-forwarded-for");
    if let Some(value) = client.and_then(|client| HeaderValue::from_str(client).ok()) {
        headers.insert("x-forwarded-for", value);
    }
    headers.insert("x-forwarded-proto", HeaderValue::from_static(scheme));
    headers
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in HOP_BY_HOP.iter().chain(&named) {
        headers.remove(name);
    }
}

/// The service's answer as the caller gets it: streamed, its hop-by-hop headers dropped.
fn downstream_response(answer: http::Response<Incoming>) -> Response {
    let (mut parts, body) = answer.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_spoofed_forwarding_headers_are_replaced() {
        let mut incoming = HeaderMap::new();
        incoming.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        incoming.insert("x-secret", HeaderValue::from_static("1"));
        incoming.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        incoming.insert("x-request-id", HeaderValue::from_static("abc"));
        incoming.insert("traceparent", HeaderValue::from_static("00-aa-bb-01"));
        incoming.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        let out = upstream_headers(incoming, Some("10.1.2.3"), "https");
        assert!(out.get(header::CONNECTION).is_none());
        assert!(out.get("x-secret").is_none());
        assert_eq!(out["x-forwarded-for"], "10.1.2.3");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert_eq!(out["x-request-id"], "abc");
        assert_eq!(out["traceparent"], "00-aa-bb-01");
        assert_eq!(out[header::AUTHORIZATION], "Bearer t");
    }
}
