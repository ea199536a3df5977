//! Sending one delivery: the Standard Webhooks headers, the CloudEvent as the body, and a
//! client that connects only where the destination policy allows, follows no redirect,
//! gives up after the timeouts and reads at most a little of what the endpoint answers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, USER_AGENT};

use crate::domain::{DestinationPolicy, SigningSecret, retry_after, signature_header};

/// How much of an endpoint's answer is kept (for the operator to read).
const ANSWER_KEPT: usize = 512;
const CONTENT: &str = "application/cloudevents+json; charset=utf-8";
/// Why a delivery none of whose secrets opens was not sent: unsigned, the endpoint could not
/// tell it from a forgery.
const NO_SECRET: &str = "not sent: none of the endpoint's signing secrets opens with the \
                         webhook secret keys; give back the key they were sealed with, or \
                         rotate the endpoint's secret";

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// From sending to the end of reading the answer.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            total: Duration::from_secs(15),
        }
    }
}

/// How one try went.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: Option<u16>,
    /// What went wrong, for the operator: the connection's error, or the first bytes of a
    /// non-2xx answer.
    pub error: Option<String>,
    /// How long the endpoint asked us to wait (`Retry-After` on a 429 or 503).
    pub retry_after: Option<Duration>,
    pub latency: Duration,
    pub at: DateTime<Utc>,
}

impl Answer {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

pub struct Sender {
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
}

impl Sender {
    /// `builder` brings the TLS set-up (the public roots); the rest is set here.
    pub fn new(
        builder: reqwest::ClientBuilder,
        policy: Arc<DestinationPolicy>,
        timeouts: Timeouts,
    ) -> Result<Self, reqwest::Error> {
        let client = builder
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeouts.connect)
            .timeout(timeouts.total)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self { client, policy })
    }

    /// Posts `body` to `url`, signed with every secret in `secrets`.
    pub async fn send(
        &self,
        url: &str,
        webhook_id: &str,
        body: String,
        secrets: &[SigningSecret],
    ) -> Answer {
        let at = platform::time::now();
        let started = Instant::now();
        let answer = |status, error: String, retry_after| Answer {
            status,
            error: (!error.is_empty()).then_some(error),
            retry_after,
            latency: started.elapsed(),
            at,
        };
        // An address in the URL itself is checked here; names are checked as they resolve.
        if let Err(refused) = self.policy.check_url(url) {
            return answer(None, refused.to_string(), None);
        }
        if secrets.is_empty() {
            return answer(None, NO_SECRET.to_owned(), None);
        }
        let timestamp = at.timestamp();
        let signature = signature_header(secrets, webhook_id, timestamp, body.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static(CONTENT))
            .header(
                USER_AGENT,
                concat!("CommerceX-Webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return answer(None, describe(&error), None),
        };
        let status = response.status();
        let waited = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, platform::time::now()));
        let retry_after = (status.as_u16() == 429 || status.as_u16() == 503)
            .then_some(waited)
            .flatten();
        let mut kept = Vec::new();
        while kept.len() < ANSWER_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => kept.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is what counts: an answer cut short still answered.
                Err(_) => break,
            }
        }
        kept.truncate(ANSWER_KEPT);
        let error = match status.is_success() {
            true => String::new(),
            false => format!(
                "HTTP {}: {}",
                status.as_u16(),
                String::from_utf8_lossy(&kept).trim()
            ),
        };
        answer(Some(status.as_u16()), error, retry_after)
    }
}

/// The error and its causes on one line (reqwest's own message names only the request).
fn describe(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

/// Resolves names as the system does, then keeps only the addresses the policy allows; a
/// name left with none is refused before any connection is made.
struct GuardedResolver(Arc<DestinationPolicy>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        refusal = Some(refused);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
                (true, Some(refused)) => Err(format!("{host}: {refused}").into()),
                (true, None) => Err(format!("{host} has no address").into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn production_sender() -> Sender {
        let policy = Arc::new(DestinationPolicy {
            production: true,
            allowed: Vec::new(),
        });
        Sender::new(reqwest::Client::builder(), policy, Timeouts::default()).expect("client")
    }

    #[tokio::test]
    async fn production_never_connects_to_a_name_that_resolves_inside() {
        let secret = SigningSecret::generate();
        // `localhost` passes the URL check (a name) and is refused once resolved.
        let answer = production_sender()
            .send("https://localhost:9/hook", "id", "{}".into(), &[secret])
            .await;
        assert_eq!(answer.status, None);
        let error = answer.error.expect("an error");
        assert!(error.contains("not a destination"), "{error}");
    }

    #[tokio::test]
    async fn production_never_connects_to_an_internal_address_in_the_url() {
        let answer = production_sender()
            .send("https://169.254.169.254/latest", "id", "{}".into(), &[])
            .await;
        assert_eq!(answer.status, None);
        assert!(answer.error.expect("an error").contains("169.254.169.254"));
    }

    #[tokio::test]
    async fn a_delivery_with_no_secret_to_sign_it_is_not_sent() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.set_nonblocking(true).expect("non-blocking");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let policy = Arc::new(DestinationPolicy {
            production: false,
            allowed: Vec::new(),
        });
        // Nobody answers the listener: the try with a secret below gives up soon.
        let timeouts = Timeouts {
            connect: Duration::from_secs(1),
            total: Duration::from_millis(300),
        };
        let sender = Sender::new(reqwest::Client::builder(), policy, timeouts).expect("client");
        let answer = sender.send(&url, "id", "{}".into(), &[]).await;
        assert_eq!(answer.status, None);
        assert!(answer.error.expect("an error").starts_with("not sent"));
        let connected = listener.accept();
        assert!(
            matches!(&connected, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the endpoint was never contacted: {connected:?}"
        );
        // The same sender does reach it with a secret.
        let secret = SigningSecret::generate();
        let answer = sender.send(&url, "id", "{}".into(), &[secret]).await;
        assert!(answer.error.is_some(), "nobody answered");
        assert!(listener.accept().is_ok(), "but it was contacted");
    }
}
