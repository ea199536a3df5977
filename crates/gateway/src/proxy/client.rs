//! The client that forwards requests to services: hyper's pooled keep-alive connections
//! (HTTP/1.1, or HTTP/2 where TLS negotiates it), with the internal TLS configuration. It is
//! hyper's client rather than reqwest's because forwarding is the gateway's whole job:
//! reqwest parses every URL as a browser would and runs a redirect policy on every answer,
//! which was a quarter of the gateway's instructions per request (docs/BENCHMARKS.md).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub type ForwardClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A client that trusts what `tls` trusts and presents its client certificate, if any. The
/// protocols it offers by ALPN are the connector's to set (both HTTP versions).
pub fn forward_client(mut tls: rustls::ClientConfig) -> ForwardClient {
    tls.alpn_protocols.clear();
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(Duration::from_secs(2)));
    http.set_nodelay(true);
    // `https://` upstreams go through the TLS layer below, which needs this off.
    http.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        // Below the services' header read timeout (10 s), which closes idle connections:
        // the gateway lets a connection go before a service can close it under a request.
        .pool_idle_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .build(connector)
}
