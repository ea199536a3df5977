//! `commercex probe URL`: the container health check. The runtime image has no shell and no
//! curl, so the binary asks its own management listener.

use std::time::Duration;

use anyhow::{Context, bail};

pub async fn run(url: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    if !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    Ok(())
}
