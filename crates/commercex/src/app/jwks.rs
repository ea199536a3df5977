//! How a service that is not the identity service learns the keys that sign access tokens:
//! from the identity service's JWKS, fetched at start-up and re-read periodically, so a key
//! rotation reaches every service without a restart.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::jwk::JwkSet;
use platform::auth::{TokenAudience, TokenVerifier};
use tokio_util::sync::CancellationToken;

/// How long start-up waits for the identity service before giving up (the orchestrator
/// restarts us; readiness stays false meanwhile).
const STARTUP_WAIT: Duration = Duration::from_secs(60);

pub struct RemoteJwks {
    client: reqwest::Client,
    urls: Vec<String>,
}

impl RemoteJwks {
    pub fn new(client: reqwest::Client, users_urls: &[String]) -> Self {
        let urls = users_urls
            .iter()
            .map(|base| format!("{}/.well-known/jwks.json", base.trim_end_matches('/')))
            .collect();
        Self { client, urls }
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let mut last = anyhow::anyhow!("no identity service URL (set COMMERCEX_USERS_URL)");
        for url in &self.urls {
            let answer = self
                .client
                .get(url)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status);
            match answer {
                Ok(answer) => return answer.json().await.context("reading the JWKS"),
                Err(error) => last = anyhow::Error::new(error).context(format!("GET {url}")),
            }
        }
        Err(last)
    }

    /// A verifier with the identity service's current keys, waiting for it to come up.
    pub async fn verifier(&self, audience: &TokenAudience) -> anyhow::Result<TokenVerifier> {
        let deadline = tokio::time::Instant::now() + STARTUP_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.fetch().await {
                Ok(jwks) => {
                    return TokenVerifier::from_jwks(&jwks, audience)
                        .context("the identity service's JWKS is unusable");
                }
                Err(error) if tokio::time::Instant::now() < deadline => {
                    tracing::info!(
                        error = format!("{error:#}"),
                        "waiting for the identity service's JWKS"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(error) => return Err(error.context("the identity service did not come up")),
            }
        }
    }

    /// Re-reads the keys every `every` until `cancel`; a failed read keeps the old keys.
    pub async fn refresh(
        self,
        verifier: Arc<TokenVerifier>,
        every: Duration,
        cancel: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let fetched = self.fetch().await;
            match fetched.and_then(|jwks| verifier.replace_keys(&jwks).map_err(Into::into)) {
                Ok(()) => tracing::debug!(kids = ?verifier.kids(), "refreshed the JWKS"),
                Err(error) => tracing::warn!(
                    error = format!("{error:#}"),
                    "could not refresh the JWKS; keeping the keys we have"
                ),
            }
        }
    }
}
