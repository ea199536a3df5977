//! TLS as production runs it: a service that accepts only clients with a certificate from the
//! internal CA, and a gateway that serves HTTPS (HTTP/2 and HTTP/1.1) and reaches that service
//! with its own certificate. The certificates are made here, for this test alone.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use serde_json::json;

use crate::cli::signal_and_wait;
use crate::deployment::launch;
use crate::helpers::*;

/// A throwaway PKI: the internal CA and certificates signed by it, and a rogue one.
struct Pki {
    dir: tempfile::TempDir,
    internal: Issuer,
}

type Issuer = CertifiedIssuer<'static, KeyPair>;

fn authority(name: &str) -> Issuer {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl Pki {
    /// The internal CA, a certificate from it for each role, and one from a rogue CA.
    fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().unwrap(),
            internal: authority("CommerceX internal CA"),
        };
        pki.write("ca.pem", &pki.internal.pem());
        pki.leaf(&pki.internal, "service");
        pki.leaf(&pki.internal, "gateway");
        pki.leaf(&authority("Somebody else"), "rogue");
        pki
    }

    /// A new certificate and key for `name` from the internal CA, as cert-manager renews
    /// them: in place.
    fn renew(&self, name: &str) {
        self.leaf(&self.internal, name);
    }

    /// The DER of `name`'s certificate.
    fn der(&self, name: &str) -> Vec<u8> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        CertificateDer::from_pem_file(self.path(&format!("{name}.pem")))
            .unwrap()
            .to_vec()
    }

    fn leaf(&self, issuer: &Issuer, name: &str) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, issuer).unwrap();
        self.write(&format!("{name}.pem"), &cert.pem());
        self.write(&format!("{name}-key.pem"), &key.serialize_pem());
    }

    fn write(&self, name: &str, contents: &str) {
        std::fs::write(self.dir.path().join(name), contents).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn text(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// A client that trusts only the internal CA, presenting `identity`'s certificate if any.
    fn client(&self, identity: Option<&str>) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.text("ca.pem").as_bytes()).unwrap();
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .timeout(Duration::from_secs(10));
        if let Some(name) = identity {
            let pem = self.text(&format!("{name}.pem")) + &self.text(&format!("{name}-key.pem"));
            builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
        }
        builder
    }
}

fn env(pairs: &[(&str, &Path)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.display().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_take_only_internal_clients_and_the_gateway_serves_https() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let password_file = write_file(data.path(), "admin-password", PASSWORD);
    let mut service_env = env(&[
        ("COMMERCEX_DATA_DIR", data.path()),
        ("COMMERCEX_TLS_CERT_FILE", &pki.path("service.pem")),
        ("COMMERCEX_TLS_KEY_FILE", &pki.path("service-key.pem")),
        ("COMMERCEX_TLS_CLIENT_CA_FILE", &pki.path("ca.pem")),
        ("COMMERCEX_ADMIN_PASSWORD_FILE", &password_file),
    ]);
    service_env.push(("COMMERCEX_ADMIN_EMAIL".into(), ADMIN_EMAIL.into()));
    let management = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    service_env.push(("COMMERCEX_METRICS_LISTEN".into(), management.to_string()));
    let mut users = launch("users", &["serve", "users"], &[], &service_env, data.path()).await;
    let health = format!("https://{}/healthz", users.addr);

    // The kubelet's probes and Prometheus have no client certificate: they use the
    // management listener, in plain HTTP.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let answer = reqwest::get(format!("http://{management}{path}"))
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{path} on the management listener");
        assert!(
            !answer.headers().contains_key("strict-transport-security"),
            "no HSTS over plain HTTP"
        );
    }

    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", users.addr))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP got in"
    );
    let anonymous = pki.client(None).build().unwrap().get(&health).send().await;
    assert!(anonymous.is_err(), "a client without a certificate got in");
    let rogue = pki
        .client(Some("rogue"))
        .build()
        .unwrap()
        .get(&health)
        .send()
        .await;
    assert!(rogue.is_err(), "a certificate from another CA got in");
    let internal = pki
        .client(Some("gateway"))
        .build()
        .unwrap()
        .get(&health)
        .send()
        .await
        .unwrap();
    assert_eq!(internal.status(), 200);
    assert_eq!(
        internal.headers()["strict-transport-security"],
        "max-age=31536000",
        "served over TLS, browsers are told to stay on it"
    );

    let unreachable = "http://127.0.0.1:9";
    let mut gateway_env = env(&[
        ("COMMERCEX_DATA_DIR", data.path()),
        ("COMMERCEX_TLS_CERT_FILE", &pki.path("service.pem")),
        ("COMMERCEX_TLS_KEY_FILE", &pki.path("service-key.pem")),
        ("COMMERCEX_INTERNAL_CA_FILE", &pki.path("ca.pem")),
        ("COMMERCEX_INTERNAL_CERT_FILE", &pki.path("gateway.pem")),
        ("COMMERCEX_INTERNAL_KEY_FILE", &pki.path("gateway-key.pem")),
    ]);
    gateway_env.push((
        "COMMERCEX_USERS_URL".into(),
        format!("https://{}", users.addr),
    ));
    for service in ["CATALOG", "INVENTORY", "ORDERS", "PAYMENTS", "WEBHOOKS"] {
        gateway_env.push((format!("COMMERCEX_{service}_URL"), unreachable.into()));
    }
    let mut gateway = launch(
        "gateway",
        &["serve", "gateway"],
        &[],
        &gateway_env,
        data.path(),
    )
    .await;
    let public = pki.client(None).build().unwrap();
    let registered = public
        .post(format!("https://{}/api/v1/auth/register", gateway.addr))
        .json(&json!({"email": "tls@example.com", "password": PASSWORD, "name": "Over TLS"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        registered.status(),
        201,
        "through the gateway and mutual TLS to users"
    );
    assert_eq!(registered.version(), reqwest::Version::HTTP_2);
    let http1 = pki.client(None).http1_only().build().unwrap();
    let answer = http1
        .get(format!("https://{}/healthz", gateway.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (answer.status().as_u16(), answer.version()),
        (200, reqwest::Version::HTTP_11)
    );

    // cert-manager renews the certificate in place: new connections get the new one, and the
    // gateway still gets through with its own.
    let served = || async {
        let answer = pki
            .client(Some("gateway"))
            .tls_info(true)
            .build()
            .unwrap()
            .get(&health)
            .send()
            .await
            .unwrap();
        answer
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate().map(<[u8]>::to_vec))
            .unwrap()
    };
    assert_eq!(served().await, pki.der("service"));
    pki.renew("service");
    let renewed = pki.der("service");
    testkit::wait_for("the renewed certificate to be served", || async {
        served().await == renewed
    })
    .await;
    let after_renewal = public
        .post(format!("https://{}/api/v1/auth/login", gateway.addr))
        .json(&json!({"email": "tls@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(after_renewal.status(), 200);

    for process in [&mut gateway, &mut users] {
        assert!(
            signal_and_wait(&mut process.child, "-TERM").await.success(),
            "{}",
            process.log_text()
        );
    }
}

/// `TEST_DATABASE_URL`'s database at `localhost` (the name its certificate carries), with
/// `params` added.
fn postgres_url_with(storage: &testkit::TestStorage, params: &str) -> String {
    use secrecy::ExposeSecret;
    let platform::db::Storage::Postgres { url } = &storage.storage else {
        panic!("a PostgreSQL storage");
    };
    let url = url.expose_secret().replace("@127.0.0.1", "@localhost");
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{params}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_connections_verify_the_server_certificate() {
    let Some(ca) = testkit::required_env("TEST_DATABASE_CA", "PostgreSQL with TLS") else {
        return;
    };
    let Some(storage) = testkit::TestStorage::postgres().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let migrate = |url: String| {
        let dir = data.path().display().to_string();
        async move {
            commercex_command()
                .args(["migrate", "--database-url", &url, "--data-dir", &dir])
                .env("RUST_BACKTRACE", "0")
                .output()
                .await
                .unwrap()
        }
    };
    let verified = migrate(postgres_url_with(
        &storage,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    ))
    .await;
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let pki = Pki::new();
    let rogue_ca = pki.path("rogue.pem");
    let impostor = migrate(postgres_url_with(
        &storage,
        &format!("sslmode=verify-full&sslrootcert={}", rogue_ca.display()),
    ))
    .await;
    assert!(
        !impostor.status.success(),
        "a server certificate from another CA was accepted"
    );
}
