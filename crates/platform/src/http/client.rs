use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use ipnet::IpNet;

/// The address of the client that sent the request, when the server records it (it does when
/// served through `into_make_service_with_connect_info`): the TCP peer, unless the peer is a
/// proxy [`ForwardedBy`] trusts, in which case `x-forwarded-for` is walked from the right and
/// the first address that is not a trusted proxy is the client. Whatever a client writes
/// into the header itself sits to the left of that, and is never believed.
#[derive(Debug, Clone)]
pub struct ClientAddr(pub Option<String>);

/// Request extension: whose `x-forwarded-for` is believed.
#[derive(Debug, Clone, Default)]
pub struct ForwardedBy {
    /// Every peer is one of ours, proved by mutual TLS (a service behind the gateway).
    pub any_peer: bool,
    /// Proxies in front (load balancers, the ingress), by address (`--trusted-proxies`).
    pub proxies: Arc<[IpNet]>,
}

impl ForwardedBy {
    fn is_proxy(&self, addr: IpAddr) -> bool {
        self.proxies.iter().any(|net| net.contains(&addr))
    }

    /// The client behind `peer`, given the `x-forwarded-for` hops (left to right).
    fn client(&self, peer: IpAddr, hops: &[&str]) -> IpAddr {
        let mut client = peer;
        let mut believed = self.any_peer || self.is_proxy(peer);
        for hop in hops.iter().rev() {
            if !believed {
                break;
            }
            // Unreadable: whoever wrote it is not a proxy of ours; the last one believed is
            // as far as the chain is known.
            let Ok(addr) = hop.trim().parse::<IpAddr>() else {
                break;
            };
            client = addr;
            believed = self.is_proxy(addr);
        }
        client
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
        else {
            return Ok(Self(None));
        };
        let client = match parts.extensions.get::<ForwardedBy>() {
            None => peer,
            Some(trust) => {
                let hops: Vec<&str> = parts
                    .headers
                    .get_all("x-forwarded-for")
                    .iter()
                    .filter_map(|value| value.to_str().ok())
                    .flat_map(|value| value.split(','))
                    .filter(|hop| !hop.trim().is_empty())
                    .collect();
                trust.client(peer, &hops)
            }
        };
        Ok(Self(Some(client.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusting(proxies: &[&str]) -> ForwardedBy {
        ForwardedBy {
            any_peer: false,
            proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn the_client_is_the_right_most_address_that_is_not_a_trusted_proxy() {
        let edge = trusting(&["10.0.0.0/8"]);
        // Through the ingress: the ingress appended the client it saw.
        assert_eq!(
            edge.client(ip("10.1.1.1"), &["203.0.113.7"]),
            ip("203.0.113.7")
        );
        // A client that claims to be someone else is named by the hop the ingress added.
        assert_eq!(
            edge.client(ip("10.1.1.1"), &["1.2.3.4", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Two proxies of ours in a row.
        assert_eq!(
            edge.client(ip("10.1.1.1"), &["203.0.113.7", "10.2.2.2"]),
            ip("203.0.113.7")
        );
        // Not through a trusted proxy: the header is the client's own say, not believed.
        assert_eq!(
            edge.client(ip("198.51.100.9"), &["1.2.3.4"]),
            ip("198.51.100.9")
        );
        // Garbage stops the walk at the last believed hop.
        assert_eq!(edge.client(ip("10.1.1.1"), &["nonsense"]), ip("10.1.1.1"));
        // Nothing trusted at all: the peer.
        assert_eq!(
            trusting(&[]).client(ip("10.1.1.1"), &["1.2.3.4"]),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn behind_the_gateway_over_mutual_tls_the_gateways_word_is_taken() {
        let service = ForwardedBy {
            any_peer: true,
            proxies: Arc::new([]),
        };
        assert_eq!(
            service.client(ip("10.9.9.9"), &["203.0.113.7"]),
            ip("203.0.113.7")
        );
        assert_eq!(service.client(ip("10.9.9.9"), &[]), ip("10.9.9.9"));
    }
}
