//! What an administrator does through the API: products and their versions, stock and its
//! ledger, every customer's orders and payments, dead letters, accounts and their roles.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{ApiClient, ApiError, OrderPage, Price, Product};

#[derive(Debug, Clone, Deserialize)]
pub struct Stock {
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LedgerEntry {
    /// `adjustment`, `reservation`, `committed`, `released` or `expired`.
    pub kind: String,
    pub on_hand_delta: i64,
    pub reserved_delta: i64,
    pub on_hand_after: i64,
    pub reserved_after: i64,
    pub reason: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LedgerPage {
    pub items: Vec<LedgerEntry>,
    pub next_cursor: Option<Uuid>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attempt {
    pub operation: String,
    pub outcome: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Payment {
    pub amount: Price,
    /// `awaiting_stock`, `pending`, `captured`, `failed`, `voided` or `refunded`.
    pub status: String,
    pub failure_reason: Option<String>,
    pub attempts: Vec<Attempt>,
}

#[derive(Debug, Clone, Deserialize)]
struct PaymentList {
    items: Vec<Payment>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DeadLetter {
    pub id: Uuid,
    pub service: String,
    pub consumer_group: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub error: String,
    pub attempts: i64,
    /// `dead`, `replay_requested`, `replayed` or `discarded`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub envelope: Value,
}

#[derive(Debug, Clone, Deserialize)]
struct DeadLetterList {
    items: Vec<DeadLetter>,
}

/// Orders at a glance.
#[derive(Debug, Clone, Deserialize)]
pub struct OrdersSummary {
    /// The last 60 minutes, oldest first.
    pub placed_per_minute: Vec<i64>,
    pub pending: i64,
    pub oldest_pending_seconds: f64,
    pub last_day_by_status: BTreeMap<String, i64>,
    pub last_day_cancelled_by_reason: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Deserialize)]
struct PaymentsSummary {
    last_day_by_status: BTreeMap<String, i64>,
}

/// How a service's events stand.
#[derive(Debug, Clone, Deserialize)]
pub struct EventFlow {
    pub outbox_backlog: i64,
    pub oldest_unpublished_seconds: f64,
    pub dead_letters: BTreeMap<String, i64>,
    pub consumer_lag: Vec<Lag>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Lag {
    pub consumer_group: String,
    pub topic: String,
    pub events: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Account {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl Account {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == "admin")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct AccountPage {
    pub items: Vec<Account>,
    pub next_cursor: Option<Uuid>,
}

/// The account search's query string. (Built apart: the serializer is not `Send`, and the
/// client's futures must be.)
fn account_query(words: &str, after: Option<Uuid>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !words.trim().is_empty() {
        query.append_pair("q", words.trim());
    }
    if let Some(after) = after {
        query.append_pair("cursor", &after.to_string());
    }
    query.finish()
}

fn if_match(etag: &str) -> Result<HeaderMap, ApiError> {
    let mut headers = HeaderMap::new();
    let etag = HeaderValue::try_from(etag)
        .map_err(|_| ApiError::Transport("an ETag that is not a header".into()))?;
    headers.insert(header::IF_MATCH, etag);
    Ok(headers)
}

impl ApiClient {
    /// A product as an administrator reads it (archived ones too), with its `ETag`.
    pub async fn product_version(
        &self,
        admin: &str,
        id: Uuid,
    ) -> Result<(Product, String), ApiError> {
        let (product, headers) = self
            .exchange::<Product>(
                Method::GET,
                &format!("/api/v1/products/{id}"),
                Some(admin),
                HeaderMap::new(),
                None,
                StatusCode::OK,
            )
            .await?;
        let etag = headers
            .get(header::ETAG)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok((product, etag))
    }

    /// Changes a product if it is still the version `etag` names (412 if not).
    pub async fn update_product(
        &self,
        admin: &str,
        id: Uuid,
        etag: &str,
        patch: &Value,
    ) -> Result<Product, ApiError> {
        self.call_with(
            Method::PATCH,
            &format!("/api/v1/products/{id}"),
            Some(admin),
            if_match(etag)?,
            Some(patch),
            StatusCode::OK,
        )
        .await
    }

    /// Takes a product out of the catalog (it stays readable by administrators).
    pub async fn archive_product(&self, admin: &str, id: Uuid) -> Result<(), ApiError> {
        self.call::<()>(
            Method::DELETE,
            &format!("/api/v1/products/{id}"),
            Some(admin),
            None,
            StatusCode::NO_CONTENT,
        )
        .await
    }

    pub async fn stock(&self, id: Uuid) -> Result<Stock, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/inventory/{id}"),
            None,
            None,
            StatusCode::OK,
        )
        .await
    }

    /// The product's stock movements, newest first.
    pub async fn ledger(&self, admin: &str, id: Uuid) -> Result<LedgerPage, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/inventory/{id}/ledger"),
            Some(admin),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Every customer's orders; `query` is the search's query string without the `?`.
    pub async fn search_orders(&self, admin: &str, query: &str) -> Result<OrderPage, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/admin/orders?{query}"),
            Some(admin),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// The order's payments, each with every answer of the provider.
    pub async fn payments(&self, token: &str, order: Uuid) -> Result<Vec<Payment>, ApiError> {
        let list: PaymentList = self
            .call(
                Method::GET,
                &format!("/api/v1/payments?order_id={order}"),
                Some(token),
                None,
                StatusCode::OK,
            )
            .await?;
        Ok(list.items)
    }

    /// The dead letters of `service` that wait for an operator or a replay.
    pub async fn dead_letters(
        &self,
        admin: &str,
        service: &str,
    ) -> Result<Vec<DeadLetter>, ApiError> {
        let list: DeadLetterList = self
            .call(
                Method::GET,
                &format!("/api/v1/admin/dlq/{service}"),
                Some(admin),
                None,
                StatusCode::OK,
            )
            .await?;
        Ok(list.items)
    }

    /// Hands a dead letter back to its consumer (`replay`) or gives up on it (`discard`).
    pub async fn settle_dead_letter(
        &self,
        admin: &str,
        service: &str,
        id: Uuid,
        replay: bool,
    ) -> Result<DeadLetter, ApiError> {
        let (action, expected) = match replay {
            true => ("replay", StatusCode::ACCEPTED),
            false => ("discard", StatusCode::OK),
        };
        self.call(
            Method::POST,
            &format!("/api/v1/admin/dlq/{service}/{id}/{action}"),
            Some(admin),
            None,
            expected,
        )
        .await
    }

    pub async fn orders_summary(&self, admin: &str) -> Result<OrdersSummary, ApiError> {
        self.call(
            Method::GET,
            "/api/v1/admin/orders/summary",
            Some(admin),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Payments opened in the last day, by status.
    pub async fn payments_summary(&self, admin: &str) -> Result<BTreeMap<String, i64>, ApiError> {
        let summary: PaymentsSummary = self
            .call(
                Method::GET,
                "/api/v1/admin/payments/summary",
                Some(admin),
                None,
                StatusCode::OK,
            )
            .await?;
        Ok(summary.last_day_by_status)
    }

    pub async fn event_flow(&self, admin: &str, service: &str) -> Result<EventFlow, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/admin/events/{service}"),
            Some(admin),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// Accounts whose email or name contains `words`, newest first.
    pub async fn accounts(
        &self,
        admin: &str,
        words: &str,
        after: Option<Uuid>,
    ) -> Result<AccountPage, ApiError> {
        let query = account_query(words, after);
        self.call(
            Method::GET,
            &format!("/api/v1/admin/users?{query}"),
            Some(admin),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// The accounts of `ids` (100 at most), in any order; ids of no account are left out.
    pub async fn accounts_by_id(
        &self,
        admin: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Account>, ApiError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let page: AccountPage = self
            .call(
                Method::GET,
                &format!("/api/v1/admin/users?limit=100&ids={ids}"),
                Some(admin),
                None,
                StatusCode::OK,
            )
            .await?;
        Ok(page.items)
    }

    /// Makes the account an administrator, or no longer one.
    pub async fn set_admin(
        &self,
        admin: &str,
        id: Uuid,
        is_admin: bool,
    ) -> Result<Account, ApiError> {
        self.call(
            Method::PUT,
            &format!("/api/v1/admin/users/{id}/admin"),
            Some(admin),
            Some(&json!({"admin": is_admin})),
            StatusCode::OK,
        )
        .await
    }
}
