//! A service's instances as the gateway sees them: base URLs tried in round-robin order,
//! with the service's timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, PathAndQuery, Scheme};
use reqwest::Url;

use super::routes::Service;

#[derive(Debug)]
pub struct Upstream {
    pub service: Service,
    instances: Vec<Instance>,
    next: AtomicUsize,
    pub timeout: Duration,
}

/// One instance's base URL, taken apart once so that forwarding a request only puts parts
/// together.
#[derive(Debug)]
pub struct Instance {
    pub url: Url,
    /// The base URL without its trailing slash: how logs and metrics name the instance.
    pub name: String,
    scheme: Scheme,
    authority: Authority,
    /// A path the base URL has (`http://lb/orders`), without its trailing slash.
    prefix: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no base URL configured for the {0} service (set COMMERCEX_{1}_URL)")]
    Missing(Service, String),
    #[error("{service} service URL {url:?}: {reason}")]
    BadUrl {
        service: Service,
        url: String,
        reason: String,
    },
}

impl Upstream {
    /// `urls` are base URLs (`http://10.0.0.5:8081`, `https://orders-0.orders:8443`).
    pub fn new(
        service: Service,
        urls: &[String],
        timeout: Duration,
    ) -> Result<Self, UpstreamError> {
        if urls.is_empty() {
            return Err(UpstreamError::Missing(
                service,
                service.name().to_uppercase(),
            ));
        }
        let instances = urls
            .iter()
            .map(|raw| parse_base(service, raw))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            service,
            instances,
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    /// Every instance once, starting at the next one in round-robin order: a request goes to
    /// the first, and on to the following ones only while they refuse connections.
    pub fn rotation(&self) -> impl Iterator<Item = &Instance> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.instances.len();
        (0..count).map(move |i| &self.instances[(start + i) % count])
    }
}

impl Instance {
    fn new(url: Url) -> Result<Self, String> {
        let name = url.as_str().trim_end_matches('/').to_owned();
        let parts = name.parse::<Uri>().map_err(|e| e.to_string())?.into_parts();
        let (Some(scheme), Some(authority)) = (parts.scheme, parts.authority) else {
            return Err("a base URL needs a scheme and a host".to_owned());
        };
        let prefix = url.path().trim_end_matches('/').to_owned();
        Ok(Self {
            url,
            name,
            scheme,
            authority,
            prefix,
        })
    }

    /// `path_and_query` (starting with `/`) on this instance, as a string.
    pub fn url_for(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.name)
    }

    /// `path_and_query` on this instance, as the forwarding client takes it.
    pub fn uri(&self, path_and_query: &PathAndQuery) -> Result<Uri, http::Error> {
        let path_and_query = if self.prefix.is_empty() {
            path_and_query.clone()
        } else {
            format!("{}{}", self.prefix, path_and_query.as_str()).parse()?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
    }
}

impl std::fmt::Display for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

fn parse_base(service: Service, raw: &str) -> Result<Instance, UpstreamError> {
    let bad = |reason: &str| UpstreamError::BadUrl {
        service,
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("a base URL has no query or fragment"));
    }
    Instance::new(url).map_err(|reason| bad(&reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(urls: &[&str]) -> Upstream {
        let urls: Vec<String> = urls.iter().map(|u| (*u).to_owned()).collect();
        Upstream::new(Service::Orders, &urls, Duration::from_secs(1)).expect("valid")
    }

    #[test]
    fn rotation_starts_at_the_next_instance_and_covers_all() {
        let upstream = upstream(&["http://a:1", "http://b:1", "http://c:1"]);
        let hosts = |up: &Upstream| -> Vec<String> {
            up.rotation()
                .map(|instance| instance.url.host_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(hosts(&upstream), ["a", "b", "c"]);
        assert_eq!(hosts(&upstream), ["b", "c", "a"]);
        assert_eq!(hosts(&upstream), ["c", "a", "b"]);
    }

    #[test]
    fn urls_join_without_double_slashes() {
        let base = Instance::new(Url::parse("http://orders:8080/").expect("url")).expect("base");
        assert_eq!(
            base.url_for("/api/v1/orders?x=1"),
            "http://orders:8080/api/v1/orders?x=1"
        );
        let query = PathAndQuery::from_static("/api/v1/orders?x=1");
        assert_eq!(
            base.uri(&query).expect("uri").to_string(),
            "http://orders:8080/api/v1/orders?x=1"
        );
        let prefixed = Instance::new(Url::parse("http://lb/orders").expect("url")).expect("base");
        assert_eq!(
            prefixed.url_for("/api/v1/orders"),
            "http://lb/orders/api/v1/orders"
        );
        let path = PathAndQuery::from_static("/api/v1/orders");
        assert_eq!(
            prefixed.uri(&path).expect("uri").to_string(),
            "http://lb/orders/api/v1/orders"
        );
    }

    #[test]
    fn bad_configuration_is_named() {
        let missing = Upstream::new(Service::Payments, &[], Duration::from_secs(1));
        assert!(
            missing
                .unwrap_err()
                .to_string()
                .contains("COMMERCEX_PAYMENTS_URL")
        );
        let ftp = Upstream::new(Service::Orders, &["ftp://x".into()], Duration::from_secs(1));
        assert!(ftp.unwrap_err().to_string().contains("http or https"));
    }
}
