//! A service's instances as the gateway sees them: base URLs tried in round-robin order,
//! with the service's timeout.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Url;

use super::routes::Service;

#[derive(Debug)]
pub struct Upstream {
    pub service: Service,
    instances: Vec<Url>,
    next: AtomicUsize,
    pub timeout: Duration,
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
    pub fn rotation(&self) -> impl Iterator<Item = &Url> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.instances.len();
        (0..count).map(move |i| &self.instances[(start + i) % count])
    }

    /// `path_and_query` (starting with `/`) on `base`.
    pub fn url(base: &Url, path_and_query: &str) -> String {
        format!("{}{}", base.as_str().trim_end_matches('/'), path_and_query)
    }
}

fn parse_base(service: Service, raw: &str) -> Result<Url, UpstreamError> {
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
    Ok(url)
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
                .map(|url| url.host_str().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(hosts(&upstream), ["a", "b", "c"]);
        assert_eq!(hosts(&upstream), ["b", "c", "a"]);
        assert_eq!(hosts(&upstream), ["c", "a", "b"]);
    }

    #[test]
    fn urls_join_without_double_slashes() {
        let base = Url::parse("http://orders:8080/").expect("url");
        assert_eq!(
            Upstream::url(&base, "/api/v1/orders?x=1"),
            "http://orders:8080/api/v1/orders?x=1"
        );
        let prefixed = Url::parse("http://lb/orders").expect("url");
        assert_eq!(
            Upstream::url(&prefixed, "/api/v1/orders"),
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
