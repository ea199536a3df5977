//! How requests reach the API: over HTTP, or handed to the API's router in this process (the
//! embedded runtime's web front end), which runs the same middleware and handlers without a
//! socket.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use tower::ServiceExt as _;

use crate::ApiError;

/// The largest answer read from the in-process router; the API's pages are far smaller.
const IN_PROCESS_BODY_LIMIT: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Http { http: reqwest::Client, base: String },
    InProcess(axum::Router),
}

/// Whom a request is made for, when a server calls the API on a visitor's behalf: the
/// visitor's TCP peer and the `x-forwarded-for` it came with. The API decides who the client
/// is (for quotas and login throttling) exactly as if the visitor had called it directly.
#[derive(Debug, Clone)]
pub struct Origin {
    pub peer: SocketAddr,
    pub forwarded_for: Option<HeaderValue>,
}

/// One request, as the client's methods describe it.
pub(crate) struct Call<'a> {
    pub method: Method,
    pub path: &'a str,
    pub headers: HeaderMap,
    pub body: Option<Vec<u8>>,
}

impl Transport {
    pub(crate) async fn send(
        &self,
        call: Call<'_>,
        origin: Option<&Origin>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), ApiError> {
        match self {
            Self::Http { http, base } => {
                let mut request = http
                    .request(call.method, format!("{base}{}", call.path))
                    .headers(call.headers);
                if let Some(origin) = origin {
                    // As a proxy does: the hops it was given, then the peer it saw.
                    let peer = origin.peer.ip().to_string();
                    let hops = match origin.forwarded_for.as_ref().map(HeaderValue::to_str) {
                        Some(Ok(hops)) => format!("{hops}, {peer}"),
                        _ => peer,
                    };
                    request = request.header("x-forwarded-for", hops);
                }
                if let Some(body) = call.body {
                    request = request.body(body);
                }
                let response = request.send().await?;
                let (status, headers) = (response.status(), response.headers().clone());
                Ok((status, headers, response.bytes().await?))
            }
            Self::InProcess(router) => {
                let mut request = http::Request::builder()
                    .method(call.method)
                    .uri(call.path)
                    .body(axum::body::Body::from(call.body.unwrap_or_default()))
                    .map_err(|e| ApiError::Transport(e.to_string()))?;
                *request.headers_mut() = call.headers;
                if let Some(origin) = origin {
                    request.extensions_mut().insert(ConnectInfo(origin.peer));
                    if let Some(hops) = &origin.forwarded_for {
                        request
                            .headers_mut()
                            .insert("x-forwarded-for", hops.clone());
                    }
                }
                request
                    .headers_mut()
                    .insert(header::HOST, HeaderValue::from_static("localhost"));
                let response = match router.clone().oneshot(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, IN_PROCESS_BODY_LIMIT)
                    .await
                    .map_err(|e| ApiError::Transport(e.to_string()))?;
                Ok((parts.status, parts.headers, body))
            }
        }
    }
}
