//! A typed client of CommerceX's public HTTP API, for what a shopper and an operator do most:
//! sign up and log in, create and stock products, place an order and wait for it to settle.
//! Only the fields its callers read are typed; an answer other than the one expected is an
//! [`ApiError`] with the status and the problem's detail.

use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// What went wrong with a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No answer: the connection failed or timed out.
    #[error("no response ({0})")]
    Transport(#[from] reqwest::Error),
    /// An answer other than the one expected, with the problem's detail (or the body).
    #[error("{status} {detail}")]
    Status { status: StatusCode, detail: String },
    /// The expected status, but a body that does not read as expected.
    #[error("unreadable answer: {0}")]
    Body(String),
}

impl ApiError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// An order as the API shows it to its customer.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: Uuid,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    pub cancel_reason: Option<String>,
    /// In minor units.
    pub total: i64,
}

impl Order {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

/// A client of one CommerceX, at `base` (`http://127.0.0.1:8080`).
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: Client,
    base: String,
}

impl ApiClient {
    /// A client with its own connection pool: requests time out after 30 s, and idle
    /// connections are dropped after 5 s, before the server's header read timeout (10 s)
    /// would close one under a request.
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let http = Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self::with(http, base))
    }

    /// A client that sends through `http`.
    pub fn with(http: Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request and reads the answer as `T` if its status is `expected`.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<T, ApiError> {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        read(request.send().await?, expected).await
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> Result<(), ApiError> {
        let body = json!({"email": email, "password": password, "name": name});
        self.call::<Value>(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(&body),
            StatusCode::CREATED,
        )
        .await
        .map(drop)
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<Tokens, ApiError> {
        let body = json!({"email": email, "password": password});
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(&body),
            StatusCode::OK,
        )
        .await
    }

    /// Registers the account, then logs in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<Tokens, ApiError> {
        self.register(email, password, name).await?;
        self.login(email, password).await
    }

    /// Creates a product (an administrator's token); its id.
    pub async fn create_product(&self, admin: &str, product: &Value) -> Result<Uuid, ApiError> {
        #[derive(Deserialize)]
        struct Created {
            id: Uuid,
        }
        let created: Created = self
            .call(
                Method::POST,
                "/api/v1/products",
                Some(admin),
                Some(product),
                StatusCode::CREATED,
            )
            .await?;
        Ok(created.id)
    }

    /// Adds `delta` units to a product's stock (an administrator's token).
    pub async fn adjust_stock(
        &self,
        admin: &str,
        product: Uuid,
        delta: i64,
        reason: &str,
    ) -> Result<(), ApiError> {
        let body = json!({"delta": delta, "reason": reason});
        self.call::<Value>(
            Method::POST,
            &format!("/api/v1/inventory/{product}/adjustments"),
            Some(admin),
            Some(&body),
            StatusCode::OK,
        )
        .await
        .map(drop)
    }

    /// A listing or search of the catalog (`query` without the `?`), as JSON.
    pub async fn products(&self, query: &str) -> Result<Value, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/products?{query}"),
            None,
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Places an order (`body` as `POST /api/v1/orders` takes it) under `key`; the order as
    /// accepted, pending.
    pub async fn place_order(
        &self,
        customer: &str,
        key: &str,
        body: &Value,
    ) -> Result<Order, ApiError> {
        let response = self
            .http
            .post(self.url("/api/v1/orders"))
            .bearer_auth(customer)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await?;
        read(response, StatusCode::ACCEPTED).await
    }

    /// The order, once it is no longer pending or `wait` has passed (the API's long poll).
    pub async fn order(&self, customer: &str, id: Uuid, wait: Duration) -> Result<Order, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/orders/{id}?wait={}ms", wait.as_millis()),
            Some(customer),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Waits, `within` at most, for the order to settle; the order as it then stands (still
    /// pending if it did not). Asked with the long poll; a platform that answers at once is
    /// asked again every 10 ms.
    pub async fn settled(
        &self,
        customer: &str,
        id: Uuid,
        within: Duration,
    ) -> Result<Order, ApiError> {
        let deadline = Instant::now() + within;
        loop {
            let asked = Instant::now();
            let wait = deadline
                .saturating_duration_since(asked)
                .min(Duration::from_secs(5));
            let order = self.order(customer, id, wait).await?;
            if !order.is_pending() || Instant::now() >= deadline {
                return Ok(order);
            }
            if asked.elapsed() < Duration::from_secs(1) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// The body of `response` as `T` if its status is `expected`.
async fn read<T: DeserializeOwned>(
    response: reqwest::Response,
    expected: StatusCode,
) -> Result<T, ApiError> {
    let status = response.status();
    let body = response.bytes().await?;
    if status != expected {
        let problem: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let detail = problem["detail"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).into_owned(),
            str::to_owned,
        );
        return Err(ApiError::Status { status, detail });
    }
    serde_json::from_slice(&body).map_err(|e| ApiError::Body(e.to_string()))
}
