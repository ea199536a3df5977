//! A typed client of CommerceX's public HTTP API: what a shopper and an operator do, from
//! signing up to waiting for an order to settle. The load generator, the integration tests and
//! the web front end all use it, so all three speak the API the way a third party would.
//!
//! Only the fields its callers read are typed; an answer other than the one expected is an
//! [`ApiError`] carrying the problem document.

mod admin;
mod dto;
mod error;
mod transport;
mod webhooks;

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

pub use admin::{
    Account, AccountPage, Attempt, DeadLetter, EventFlow, Lag, LedgerEntry, LedgerPage,
    OrdersSummary, Payment, Stock,
};
pub use dto::{
    Me, Order, OrderLine, OrderPage, Price, Product, ProductPage, ShippingAddress, Step, Tokens,
};
pub use error::{ApiError, FieldProblem, Problem};
pub use transport::Origin;
use transport::{Call, Transport};
pub use webhooks::{
    CreatedEndpoint, RotatedSecret, WebhookDelivery, WebhookDeliveryPage, WebhookEndpoint,
};

/// A client of one CommerceX.
#[derive(Debug, Clone)]
pub struct ApiClient {
    transport: Transport,
    origin: Option<Origin>,
}

impl ApiClient {
    /// A client of the API at `base` (`http://127.0.0.1:8080`) with its own connection pool:
    /// requests time out after 30 s, and idle connections are dropped after 5 s, before the
    /// server's header read timeout (10 s) would close one under a request.
    pub fn new(base: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(5))
            .build()?;
        Ok(Self::with(http, base))
    }

    /// A client that sends through `http` to the API at `base`.
    pub fn with(http: reqwest::Client, base: &str) -> Self {
        Self {
            transport: Transport::Http {
                http,
                base: base.trim_end_matches('/').to_owned(),
            },
            origin: None,
        }
    }

    /// A client that hands each request to `router`, the API served in this process.
    pub fn in_process(router: axum::Router) -> Self {
        Self {
            transport: Transport::InProcess(router),
            origin: None,
        }
    }

    /// The same client, calling on behalf of the visitor at `origin`.
    pub fn on_behalf_of(&self, origin: Origin) -> Self {
        Self {
            transport: self.transport.clone(),
            origin: Some(origin),
        }
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
        self.call_with(method, path, token, HeaderMap::new(), body, expected)
            .await
    }

    async fn call_with<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        headers: HeaderMap,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<T, ApiError> {
        self.exchange(method, path, token, headers, body, expected)
            .await
            .map(|(answer, _)| answer)
    }

    /// Sends a request; the answer as `T` and its headers, if its status is `expected`.
    async fn exchange<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        mut headers: HeaderMap,
        body: Option<&Value>,
        expected: StatusCode,
    ) -> Result<(T, HeaderMap), ApiError> {
        if let Some(token) = token {
            let bearer = HeaderValue::try_from(format!("Bearer {token}"))
                .map_err(|_| ApiError::Transport("a token that is not a header".into()))?;
            headers.insert(header::AUTHORIZATION, bearer);
        }
        let body = body
            .map(|body| {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                serde_json::to_vec(body)
            })
            .transpose()
            .map_err(|e| ApiError::Body(e.to_string()))?;
        let call = Call {
            method,
            path,
            headers,
            body,
        };
        let (status, headers, body) = self.transport.send(call, self.origin.as_ref()).await?;
        if status != expected {
            return Err(ApiError::unexpected(status, &body));
        }
        // No body (a 204, or a 202 that says nothing more) reads as `null`: `()`.
        let answer = if body.is_empty() {
            serde_json::from_value(Value::Null)
        } else {
            serde_json::from_slice(&body)
        };
        let answer = answer.map_err(|e| ApiError::Body(e.to_string()))?;
        Ok((answer, headers))
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

    /// A new token pair for a refresh token (which is used up).
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, ApiError> {
        let body = json!({"refresh_token": refresh_token});
        self.call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(&body),
            StatusCode::OK,
        )
        .await
    }

    /// Ends the session the refresh token belongs to.
    pub async fn logout(&self, refresh_token: &str) -> Result<(), ApiError> {
        let body = json!({"refresh_token": refresh_token});
        self.call::<()>(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(&body),
            StatusCode::NO_CONTENT,
        )
        .await
    }

    pub async fn me(&self, token: &str) -> Result<Me, ApiError> {
        self.call(
            Method::GET,
            "/api/v1/users/me",
            Some(token),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Creates a product (an administrator's token); its id.
    pub async fn create_product(&self, admin: &str, product: &Value) -> Result<Uuid, ApiError> {
        let created: Product = self
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

    /// A listing or search of the catalog; `query` is the query string without the `?`.
    pub async fn products(&self, query: &str) -> Result<ProductPage, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/products?{query}"),
            None,
            None,
            StatusCode::OK,
        )
        .await
    }

    pub async fn product(&self, id: Uuid) -> Result<Product, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/products/{id}"),
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
        let mut headers = HeaderMap::new();
        let key = HeaderValue::try_from(key)
            .map_err(|_| ApiError::Transport("an idempotency key that is not a header".into()))?;
        headers.insert("idempotency-key", key);
        self.call_with(
            Method::POST,
            "/api/v1/orders",
            Some(customer),
            headers,
            Some(body),
            StatusCode::ACCEPTED,
        )
        .await
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

    /// The customer's orders, newest first, a page at a time.
    pub async fn orders(&self, customer: &str, after: Option<Uuid>) -> Result<OrderPage, ApiError> {
        let path = match after {
            Some(cursor) => format!("/api/v1/orders?cursor={cursor}"),
            None => "/api/v1/orders".to_owned(),
        };
        self.call(Method::GET, &path, Some(customer), None, StatusCode::OK)
            .await
    }

    /// The steps the order's saga has taken so far.
    pub async fn timeline(&self, customer: &str, id: Uuid) -> Result<Vec<Step>, ApiError> {
        let timeline: dto::Timeline = self
            .call(
                Method::GET,
                &format!("/api/v1/orders/{id}/timeline"),
                Some(customer),
                None,
                StatusCode::OK,
            )
            .await?;
        Ok(timeline.steps)
    }

    /// Asks for the order to be cancelled; the order as it then stands.
    pub async fn cancel(&self, customer: &str, id: Uuid) -> Result<Order, ApiError> {
        self.call(
            Method::POST,
            &format!("/api/v1/orders/{id}/cancel"),
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
