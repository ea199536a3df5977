//! A webhook receiver for tests: a real HTTP server on loopback that answers as it is told
//! (down, failing, asking for time, too slow, then well) and keeps every request it got; and
//! the check of its deliveries' signatures with the Standard Webhooks reference library.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{PythonChecker, RefusingPort, TestApp};

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// 429 with `Retry-After` in seconds.
    TooMany(u64),
    /// Answers 200 after this long: longer than the sender waits, so not an answer it gets.
    Slow(Duration),
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
    pub at: Instant,
    /// What the receiver answered; 0 when it answered too late (`Reply::Slow`).
    pub answered: u16,
}

impl Received {
    pub fn event(&self) -> Value {
        serde_json::from_str(&self.body).expect("the body is JSON")
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    received: Vec<Received>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    server: Option<JoinHandle<()>>,
    /// Holds the address while the receiver is down.
    down: Option<RefusingPort>,
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let reply = {
        let mut script = script.lock().unwrap();
        let reply = script.replies.pop_front().unwrap_or(Reply::Status(200));
        let answered = match reply {
            Reply::Status(status) => status,
            Reply::TooMany(_) => 429,
            Reply::Slow(_) => 0,
        };
        script.received.push(Received {
            id: header("webhook-id"),
            timestamp: header("webhook-timestamp"),
            signature: header("webhook-signature"),
            content_type: header("content-type"),
            body,
            at: Instant::now(),
            answered,
        });
        reply
    };
    match reply {
        Reply::Status(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Reply::TooMany(seconds) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", seconds.to_string())],
        )
            .into_response(),
        Reply::Slow(wait) => {
            tokio::time::sleep(wait).await;
            StatusCode::OK.into_response()
        }
    }
}

impl Receiver {
    /// A receiver answering 200 to everything not scripted.
    pub async fn up() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut receiver = Self {
            addr: listener.local_addr().unwrap(),
            script: Arc::default(),
            server: None,
            down: None,
        };
        receiver.serve(listener);
        receiver
    }

    /// A receiver whose address refuses every connection until [`Receiver::come_up`].
    pub fn down() -> Self {
        let port = RefusingPort::reserve();
        Self {
            addr: port.addr(),
            script: Arc::default(),
            server: None,
            down: Some(port),
        }
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.script.clone());
        self.server = Some(tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        }));
    }

    /// Starts answering on the address that refused until now.
    pub async fn come_up(&mut self) {
        let port = self.down.take().expect("the receiver is down");
        let addr = port.addr();
        drop(port);
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        self.serve(listener);
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    /// The next requests are answered so, in order; then 200s again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().unwrap().replies.extend(replies);
    }

    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }

    /// The ids of the events answered with a 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<String> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .map(|r| r.id)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Checks every request's signature with the Standard Webhooks reference library (Python
/// `standardwebhooks`): each must verify with each of `secrets` on its own. Says SKIPPED
/// when the library is not installed and the test may be skipped.
pub async fn verify_with_reference_library(received: &[Received], secrets: &[&str]) {
    let mut input = String::new();
    for delivery in received {
        for secret in secrets {
            let line = json!({
                "secret": secret,
                "headers": {
                    "webhook-id": delivery.id,
                    "webhook-timestamp": delivery.timestamp,
                    "webhook-signature": delivery.signature,
                },
                "body": delivery.body,
            });
            input.push_str(&line.to_string());
            input.push('\n');
        }
    }
    PythonChecker {
        script: "webhook_verify.py",
        package: "the Standard Webhooks reference library",
        install: "pip install standardwebhooks",
        refused: "signatures the library refused",
    }
    .check(&input, received.len() * secrets.len())
    .await;
}

impl TestApp {
    /// Registers an endpoint for `types` at `url`; its id and signing secret.
    pub async fn webhook_endpoint(
        &self,
        admin: &str,
        url: &str,
        types: &[&str],
    ) -> (String, String) {
        let response = self
            .send(
                reqwest::Method::POST,
                "/api/v1/admin/webhooks/endpoints",
                Some(admin),
                Some(&json!({"url": url, "event_types": types, "description": "test receiver"})),
            )
            .await;
        assert_eq!(response.status(), 201);
        let created: Value = response.json().await.unwrap();
        (
            created["endpoint"]["id"].as_str().unwrap().to_owned(),
            created["secret"].as_str().unwrap().to_owned(),
        )
    }

    /// The webhooks service's store as this app opens it: its database, and the webhook
    /// secret key it generated into its data directory (development).
    pub async fn webhook_store(&self) -> webhooks::store::WebhookStore {
        let keys = std::fs::read_to_string(self.data_dir.join("dev-webhook-secret-keys"))
            .expect("the development webhook secret key");
        let keys = platform::sealing::SealingKeys::parse(&keys).expect("a key");
        webhooks::store::WebhookStore::new(self.database("webhooks").await, Arc::new(keys))
    }

    /// `GET /api/v1/admin/webhooks/endpoints` and what is below it (`path`, may be empty).
    pub async fn webhook(&self, admin: &str, path: &str) -> Value {
        let url = match path {
            "" => "/api/v1/admin/webhooks/endpoints".to_owned(),
            path => format!("/api/v1/admin/webhooks/endpoints/{path}"),
        };
        let response = self.get(&url, Some(admin)).await;
        assert_eq!(response.status(), 200, "{path}");
        response.json().await.unwrap()
    }
}
