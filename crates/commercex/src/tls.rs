//! TLS with rustls (ring): HTTPS for the gateway (HTTP/1.1 and HTTP/2 by ALPN), mutual TLS
//! for services (only clients with a certificate from the internal CA get in), and the
//! internal client that presents the caller's certificate and trusts only the internal CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Where this process's listener gets its certificate, and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// How this process calls other services over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The only CA trusted for service URLs; `None` trusts the public web PKI.
    pub ca_file: Option<PathBuf>,
    /// The certificate and key presented to services that require mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("reading certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading the private key {}", path.display()))
}

fn roots(ca_file: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(ca_file)? {
        roots
            .add(cert)
            .with_context(|| format!("adding the CA in {}", ca_file.display()))?;
    }
    Ok(roots)
}

pub fn server_config(tls: &ServerTls) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match &tls.client_ca_file {
        Some(ca_file) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca_file)?), provider())
                    .build()
                    .context("building the client certificate verifier")?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certificates(&tls.cert_file)?, private_key(&tls.key_file)?)
        .context("the TLS certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Adds the internal CA and our client certificate to `builder`.
pub fn client(
    builder: reqwest::ClientBuilder,
    tls: &ClientTls,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = builder.use_rustls_tls();
    if let Some(ca_file) = &tls.ca_file {
        builder = builder.tls_built_in_root_certs(false);
        for cert in certificates(ca_file)? {
            let cert = reqwest::Certificate::from_der(cert.as_ref())
                .with_context(|| format!("the CA in {}", ca_file.display()))?;
            builder = builder.add_root_certificate(cert);
        }
    }
    if let Some((cert_file, key_file)) = &tls.identity {
        let mut pem =
            std::fs::read(cert_file).with_context(|| format!("reading {}", cert_file.display()))?;
        pem.extend(
            std::fs::read(key_file).with_context(|| format!("reading {}", key_file.display()))?,
        );
        let identity = reqwest::Identity::from_pem(&pem)
            .context("the internal client certificate and key do not form a usable identity")?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}
