use std::convert::Infallible;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// The address of the client that sent the request, when the server records it (it does when
/// served through `into_make_service_with_connect_info`). Behind the gateway, the peer is the
/// gateway; a service that installs [`TrustForwardedFor`] takes the client from the
/// `x-forwarded-for` the gateway sets instead.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<String>);

/// Request extension: the peer is our own gateway (reachable only through mutual TLS or a
/// private network), so its `x-forwarded-for` names the real client.
#[derive(Debug, Clone, Copy)]
pub struct TrustForwardedFor;

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        if parts.extensions.get::<TrustForwardedFor>().is_some()
            && let Some(client) = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.split(',').next())
                .map(str::trim)
                .filter(|client| !client.is_empty())
        {
            return Ok(Self(Some(client.to_owned())));
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        Ok(Self(peer))
    }
}
