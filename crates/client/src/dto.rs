//! The API's answers, as far as this client's callers read them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token is valid for.
    #[serde(default)]
    pub expires_in: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub roles: Vec<String>,
}

impl Me {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == "admin")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Price {
    /// In minor units.
    pub amount: i64,
    pub currency: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Product {
    pub id: Uuid,
    pub sku: String,
    pub name: String,
    pub description: String,
    pub price: Price,
    pub category: String,
    /// Units that can be ordered now.
    pub available: i64,
    pub archived: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProductPage {
    pub items: Vec<Product>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShippingAddress {
    pub name: String,
    pub line1: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    pub unit_price: i64,
    pub line_total: i64,
}

/// An order as the API shows it to its customer.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    pub cancel_reason: Option<String>,
    /// In minor units.
    pub total: i64,
    pub currency: String,
    pub items: Vec<OrderLine>,
    pub shipping_address: ShippingAddress,
    pub created_at: DateTime<Utc>,
}

impl Order {
    pub fn is_pending(&self) -> bool {
        self.status == "pending"
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct OrderPage {
    pub items: Vec<Order>,
    pub next_cursor: Option<Uuid>,
}

/// One step of an order's saga.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    pub step: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Timeline {
    pub steps: Vec<Step>,
}
