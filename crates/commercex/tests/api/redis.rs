//! Redis-backed shared state against a real Redis: login throttling shared by identity
//! instances, and what happens when Redis is gone (quotas open, throttling falls back to the
//! instance's memory; nothing fails).

use std::sync::Arc;
use std::time::Duration;

use gateway::ratelimit::{RateLimits, RedisRateLimits};
use platform::shared_redis::SharedRedis;
use users::throttle::{AttemptThrottle, RedisThrottle, ThrottlePolicy};

fn redis_url() -> Option<String> {
    testkit::required_env("REDIS_URL", "Redis")
}

fn shared(url: &str) -> Arc<SharedRedis> {
    let prefix = format!("t{}:", uuid::Uuid::new_v4().simple());
    Arc::new(SharedRedis::open(url, None, &prefix).unwrap())
}

const POLICY: ThrottlePolicy = ThrottlePolicy {
    per_account_and_client: 3,
    per_account: 100,
    per_client: 100,
    registrations_per_client: None,
    first_delay: Duration::from_secs(20),
    window: Duration::from_secs(60),
};

#[tokio::test]
async fn identity_instances_share_login_attempts() {
    let Some(url) = redis_url() else { return };
    let redis = shared(&url);
    // Two identity instances: separate throttles, one Redis.
    let first = RedisThrottle::new(POLICY, redis.clone());
    let second = RedisThrottle::new(POLICY, redis);
    let who = POLICY.login_subjects("shared@example.com", Some("10.0.0.1"));
    first.charge(&who).await.unwrap();
    second.charge(&who).await.unwrap();
    first.charge(&who).await.unwrap();
    let wait = second
        .charge(&who)
        .await
        .expect_err("three attempts across instances use the allowance up");
    assert!(
        wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    first.refund(&who).await;
    second.charge(&who).await.expect("a refund gives one back");
    assert!(second.charge(&who).await.is_err());
    for subject in &who {
        second.forgive(subject).await;
    }
    assert!(
        first.charge(&who).await.is_ok(),
        "forgiving on one instance forgives on all"
    );
}

#[tokio::test]
async fn concurrent_guesses_on_several_instances_get_no_more_than_the_allowance() {
    let Some(url) = redis_url() else { return };
    let redis = shared(&url);
    let instances = [
        Arc::new(RedisThrottle::new(POLICY, redis.clone())),
        Arc::new(RedisThrottle::new(POLICY, redis)),
    ];
    let who = POLICY.login_subjects("raced@example.com", Some("10.0.0.3"));
    let guesses = (0..30).map(|n| {
        let (throttle, who) = (instances[n % 2].clone(), who.clone());
        tokio::spawn(async move { throttle.charge(&who).await.is_ok() })
    });
    let mut passed = 0;
    for guess in guesses {
        passed += usize::from(guess.await.unwrap());
    }
    assert_eq!(passed, 3);
}

#[tokio::test]
async fn without_redis_quotas_open_and_throttling_stays_per_instance() {
    // Nothing listens on port 9 (discard) here: every command fails fast.
    let gone = shared("redis://127.0.0.1:9");
    let limits = RateLimits {
        store: Arc::new(RedisRateLimits {
            redis: gone.clone(),
        }),
        per_client: Some(1),
        per_user: None,
    };
    for _ in 0..3 {
        assert!(
            limits.charge("client:10.0.0.2", 1).await.is_ok(),
            "quotas fail open"
        );
    }
    let throttle = RedisThrottle::new(POLICY, gone.clone());
    let who = POLICY.login_subjects("offline@example.com", Some("10.0.0.2"));
    for _ in 0..3 {
        assert!(throttle.charge(&who).await.is_ok());
    }
    assert!(
        throttle.charge(&who).await.is_err(),
        "the instance's own memory still throttles"
    );
    assert!(gone.failures() > 0, "the failures are counted");
}

/// A Redis that speaks only TLS, with a certificate from a CA made for the test.
struct TlsRedis {
    _server: tokio::process::Child,
    _dir: tempfile::TempDir,
    url: String,
    ca_pem: String,
}

impl TlsRedis {
    async fn start() -> Option<Self> {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let redis_server = testkit::required_tool("redis-server", "a Redis with TLS")?;
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, contents: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).unwrap();
            path.display().to_string()
        };
        let (cert_file, key_file) = (
            file("redis.pem", &cert.pem()),
            file("redis-key.pem", &key.serialize_pem()),
        );
        let ca_file = file("ca.pem", &ca.pem());
        let port = testkit::free_port();
        let server = tokio::process::Command::new(redis_server)
            .args([
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .args(["--tls-cert-file", &cert_file, "--tls-key-file", &key_file])
            .args(["--tls-ca-cert-file", &ca_file, "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        testkit::wait_for("Redis to listen", || async {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Some(Self {
            _server: server,
            _dir: dir,
            url: format!("rediss://127.0.0.1:{port}"),
            ca_pem: ca.pem(),
        })
    }
}

#[tokio::test]
async fn redis_over_tls_is_checked_against_its_ca() {
    let Some(redis) = TlsRedis::start().await else {
        return;
    };
    let trusted = SharedRedis::open(&redis.url, Some(redis.ca_pem.clone().into_bytes()), "t:")
        .expect("a rediss URL");
    trusted.ping().await.expect("PING over TLS");
    let limits = RateLimits {
        store: Arc::new(RedisRateLimits {
            redis: Arc::new(trusted),
        }),
        per_client: Some(1),
        per_user: None,
    };
    assert!(limits.charge("client:10.0.0.3", 1).await.is_ok());
    assert!(
        limits.charge("client:10.0.0.3", 1).await.is_err(),
        "the quota is counted in the TLS Redis"
    );
    // The system's CAs do not vouch for this server.
    let untrusted = SharedRedis::open(&redis.url, None, "t:").expect("a rediss URL");
    assert!(untrusted.ping().await.is_err());
}
