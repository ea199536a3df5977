//! TLS with rustls (ring): HTTPS for the gateway (HTTP/1.1 and HTTP/2 by ALPN), mutual TLS
//! for services (only clients with a certificate from the internal CA get in), and the
//! internal client that presents the caller's certificate and trusts only the internal CA.
//!
//! Certificates are short-lived where they come from cert-manager, which renews them in place:
//! a process picks up new certificate and key files within [`RELOAD_EVERY`], for new
//! connections in and out, without a restart.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_util::sync::CancellationToken;

/// How often certificate files are looked at for a renewal.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Where this process's listener gets its certificate, and whom it lets in.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub certificate: Arc<ReloadingCertificate>,
    /// Clients must present a certificate signed by this CA (mutual TLS).
    pub client_ca_file: Option<PathBuf>,
}

/// How this process calls other services over HTTPS.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// The only CA trusted for service URLs; `None` trusts the public web PKI.
    pub ca_file: Option<PathBuf>,
    /// The certificate presented to services that require mutual TLS.
    pub identity: Option<Arc<ReloadingCertificate>>,
}

/// A certificate and key from two PEM files, read again when either file changes.
pub struct ReloadingCertificate {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Loaded>,
}

struct Loaded {
    key: Arc<CertifiedKey>,
    modified: (SystemTime, SystemTime),
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("cert_file", &self.cert_file)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl ReloadingCertificate {
    pub fn load(cert_file: PathBuf, key_file: PathBuf) -> anyhow::Result<Self> {
        let loaded = load(&cert_file, &key_file)?;
        Ok(Self {
            cert_file,
            key_file,
            current: RwLock::new(loaded),
        })
    }

    pub fn is_from(&self, cert_file: &Path, key_file: &Path) -> bool {
        self.cert_file == cert_file && self.key_file == key_file
    }

    fn key(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .key
            .clone()
    }

    /// Takes the files' new contents if they changed; a broken pair keeps the old one.
    fn reload_if_changed(&self) {
        let Ok(modified) = modified(&self.cert_file, &self.key_file) else {
            return;
        };
        let unchanged = self
            .current
            .read()
            .is_ok_and(|current| current.modified == modified);
        if unchanged {
            return;
        }
        match load(&self.cert_file, &self.key_file) {
            Ok(loaded) => {
                tracing::info!(cert_file = %self.cert_file.display(), "TLS certificate reloaded");
                *self
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = loaded;
            }
            // Mid-renewal, one file may be new and the other old: the next look settles it.
            Err(error) => tracing::warn!(
                cert_file = %self.cert_file.display(),
                error = format!("{error:#}"),
                "TLS certificate files changed but do not load; keeping the current certificate"
            ),
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl ResolvesClientCert for ReloadingCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Looks at `certificates` every [`RELOAD_EVERY`] until `cancel`.
pub async fn keep_reloading(
    certificates: Vec<Arc<ReloadingCertificate>>,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(RELOAD_EVERY) => {}
        }
        for certificate in &certificates {
            certificate.reload_if_changed();
        }
    }
}

fn modified(cert_file: &Path, key_file: &Path) -> std::io::Result<(SystemTime, SystemTime)> {
    Ok((
        std::fs::metadata(cert_file)?.modified()?,
        std::fs::metadata(key_file)?.modified()?,
    ))
}

fn load(cert_file: &Path, key_file: &Path) -> anyhow::Result<Loaded> {
    let modified = modified(cert_file, key_file)
        .with_context(|| format!("reading {}", cert_file.display()))?;
    let key = CertifiedKey::from_der(
        certificates(cert_file)?,
        private_key(key_file)?,
        &provider(),
    )
    .with_context(|| {
        format!(
            "{} and {} do not form a usable certificate and key",
            cert_file.display(),
            key_file.display()
        )
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        modified,
    })
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

/// Both HTTP versions, by ALPN.
fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
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
    let mut config = builder.with_cert_resolver(tls.certificate.clone());
    config.alpn_protocols = alpn();
    Ok(Arc::new(config))
}

/// Adds the internal CA and our client certificate to `builder`.
pub fn client(
    builder: reqwest::ClientBuilder,
    tls: &ClientTls,
) -> anyhow::Result<reqwest::ClientBuilder> {
    Ok(builder.use_preconfigured_tls(client_config(tls)?))
}

/// What a client calling services trusts (the internal CA, or the public roots without one)
/// and the certificate it presents, if any.
pub fn client_config(tls: &ClientTls) -> anyhow::Result<rustls::ClientConfig> {
    let roots = match &tls.ca_file {
        Some(ca_file) => roots(ca_file)?,
        None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        Some(identity) => config.with_client_cert_resolver(identity.clone()),
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = alpn();
    Ok(config)
}
