//! Where deliveries may go. Production sends over HTTPS only, and never to an address inside
//! the platform's own networks (loopback, private, link-local, and the other special-purpose
//! ranges) unless an operator allow-listed it: an endpoint URL is the one request an
//! integrator makes us send, and it must not reach what the internet cannot (SSRF). The
//! check is made on every address a name resolves to, when the request is sent, so a name
//! that later resolves somewhere private is refused then.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;
use url::{Host, Url};

/// The longest endpoint URL taken.
const MAX_URL: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("not an absolute http(s) URL")]
    Malformed,
    #[error("the URL is longer than {MAX_URL} characters")]
    TooLong,
    #[error("credentials in the URL would be stored and shown in plain text")]
    Credentials,
    #[error("only https URLs are taken (http only to this machine, in development)")]
    NotHttps,
    #[error(
        "{0} is a private, loopback, link-local or reserved address: not a destination \
         unless allow-listed (--webhook-allow-networks)"
    )]
    Internal(IpAddr),
}

/// The rules one process applies.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// The production profile: https only, public addresses only unless allow-listed.
    pub production: bool,
    /// Networks taken although internal (a partner reached over a private link).
    pub allowed: Vec<IpNet>,
}

impl DestinationPolicy {
    /// An endpoint URL an integrator gave, checked as far as it can be without resolving it.
    pub fn check_url(&self, raw: &str) -> Result<Url, DestinationError> {
        if raw.len() > MAX_URL {
            return Err(DestinationError::TooLong);
        }
        let url = Url::parse(raw).map_err(|_| DestinationError::Malformed)?;
        let host = url.host().ok_or(DestinationError::Malformed)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(DestinationError::Credentials);
        }
        match url.scheme() {
            "https" => {}
            "http" if !self.production && is_this_machine(&host) => {}
            "http" => return Err(DestinationError::NotHttps),
            _ => return Err(DestinationError::Malformed),
        }
        match host {
            Host::Ipv4(ip) => self.check_ip(IpAddr::V4(ip))?,
            Host::Ipv6(ip) => self.check_ip(IpAddr::V6(ip))?,
            Host::Domain(_) => {}
        }
        Ok(url)
    }

    /// One address a delivery is about to connect to.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), DestinationError> {
        if !self.production || !is_internal(ip) || self.allowed.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        Err(DestinationError::Internal(ip))
    }
}

fn is_this_machine(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// Addresses the internet cannot reach, or that are not unicast: RFC 6890's special-purpose
/// ranges. An IPv4 address inside IPv6 (mapped or NAT64) is judged as the IPv4 address.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let [a, b, ..] = ip.segments();
            if (a, b) == (0x64, 0xff9b) {
                let octets = ip.octets();
                return is_internal_v4(Ipv4Addr::new(
                    octets[12], octets[13], octets[14], octets[15],
                ));
            }
            ip.is_unspecified()
                || ip.is_loopback()
                || ip.is_multicast()
                || (a & 0xfe00) == 0xfc00 // unique local
                || (a & 0xffc0) == 0xfe80 // link-local
                || (a, b) == (0x2001, 0x0db8) // documentation
                || (a == 0x2001 && b < 0x0200) // IETF protocol assignments (Teredo, ...)
                || a == 0x0100 && ip.segments()[1..4] == [0, 0, 0] // discard-only
                || ip.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible (deprecated)
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (b & 0xc0) == 64) // shared address space (carrier-grade NAT)
        || (a, b, c) == (192, 0, 0) // IETF protocol assignments
        || (a == 198 && (b & 0xfe) == 18) // benchmarking
        || a >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production() -> DestinationPolicy {
        DestinationPolicy {
            production: true,
            allowed: vec!["10.20.0.0/16".parse().expect("network")],
        }
    }

    fn development() -> DestinationPolicy {
        DestinationPolicy::default()
    }

    #[test]
    fn production_takes_https_to_public_addresses_only() {
        let policy = production();
        assert!(
            policy
                .check_url("https://hooks.example.com/commercex")
                .is_ok()
        );
        assert!(policy.check_url("https://93.184.216.34/in").is_ok());
        assert_eq!(
            policy.check_url("http://hooks.example.com/"),
            Err(DestinationError::NotHttps)
        );
        assert_eq!(
            policy.check_url("http://127.0.0.1:8080/"),
            Err(DestinationError::NotHttps)
        );
        for internal in [
            "https://127.0.0.1/",
            "https://10.0.0.5/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[::ffff:192.168.1.1]/",
            "https://[64:ff9b::a9fe:a9fe]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
        ] {
            assert!(
                matches!(
                    policy.check_url(internal),
                    Err(DestinationError::Internal(_))
                ),
                "{internal} was taken"
            );
        }
    }

    #[test]
    fn allow_listed_networks_are_taken_in_production() {
        let policy = production();
        assert!(policy.check_url("https://10.20.3.4/hook").is_ok());
        assert!(policy.check_ip("10.21.0.1".parse().expect("ip")).is_err());
    }

    #[test]
    fn development_takes_plain_http_to_this_machine_only() {
        let policy = development();
        assert!(policy.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(policy.check_url("http://localhost:9000/hook").is_ok());
        assert!(policy.check_url("http://[::1]:9000/hook").is_ok());
        assert!(policy.check_url("https://10.0.0.5/").is_ok());
        assert_eq!(
            policy.check_url("http://hooks.example.com/"),
            Err(DestinationError::NotHttps)
        );
    }

    #[test]
    fn other_schemes_credentials_and_junk_are_refused() {
        let policy = development();
        assert_eq!(
            policy.check_url("ftp://example.com/"),
            Err(DestinationError::Malformed)
        );
        assert_eq!(
            policy.check_url("/relative"),
            Err(DestinationError::Malformed)
        );
        assert_eq!(
            policy.check_url("https://user:pw@example.com/"),
            Err(DestinationError::Credentials)
        );
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert_eq!(policy.check_url(&long), Err(DestinationError::TooLong));
    }

    #[test]
    fn public_addresses_of_both_families_are_not_internal() {
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450::1"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }
}
