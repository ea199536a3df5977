use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use events::contract::inventory::MAX_UNITS_PER_PRODUCT;
use platform::{ApiError, FieldError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{
    MAX_LINES, Order, OrderFilter, OrderStatus, OrdersSummary, PlaceOrder, RequestedLine,
    ShippingAddress,
};
use crate::store::TimelineEntry;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub product_id: Uuid,
    /// 1 to 100; an order holds at most 1,000 units of one product over all its lines.
    pub quantity: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderRequest {
    pub items: Vec<ItemRequest>,
    /// A token from the payment provider (sandbox: `tok_visa`, `tok_chargeDeclined`, ...).
    #[schema(example = "tok_visa")]
    pub payment_token: String,
    pub shipping_address: ShippingAddress,
}

impl PlaceOrderRequest {
    /// A stable digest of the request, to tell a retry from a different request.
    pub fn fingerprint(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        Sha256::digest(&canonical)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn parse(self) -> Result<PlaceOrder, ApiError> {
        let mut problems = Vec::new();
        if self.items.is_empty() || self.items.len() > MAX_LINES {
            problems.push(FieldError::new(
                "/items",
                "invalid",
                format!("an order has 1 to {MAX_LINES} items"),
            ));
        }
        for (n, item) in self.items.iter().enumerate() {
            if !(1..=100).contains(&item.quantity) {
                problems.push(FieldError::new(
                    format!("/items/{n}/quantity"),
                    "invalid",
                    "quantity must be between 1 and 100",
                ));
            }
        }
        // Inventory holds at most so many units of one product per order: asking for more
        // over several lines is refused here, not left for inventory to turn down later.
        let mut units: BTreeMap<Uuid, i64> = BTreeMap::new();
        for item in self
            .items
            .iter()
            .filter(|item| (1..=100).contains(&item.quantity))
        {
            *units.entry(item.product_id).or_default() += item.quantity;
        }
        for (product_id, units) in units {
            if units > MAX_UNITS_PER_PRODUCT {
                problems.push(FieldError::new(
                    "/items",
                    "invalid",
                    format!(
                        "an order holds at most {MAX_UNITS_PER_PRODUCT} units of one product; \
                         it asks for {units} of {product_id}"
                    ),
                ));
            }
        }
        let token_ok = !self.payment_token.is_empty()
            && self.payment_token.len() <= 100
            && self.payment_token.bytes().all(|b| b.is_ascii_graphic());
        if !token_ok {
            problems.push(FieldError::new(
                "/payment_token",
                "invalid",
                "payment_token must be 1 to 100 visible characters",
            ));
        }
        for (field, detail) in self.shipping_address.problems() {
            problems.push(FieldError::new(
                format!("/shipping_address{field}"),
                "invalid",
                detail,
            ));
        }
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        Ok(PlaceOrder {
            lines: self
                .items
                .iter()
                .map(|i| RequestedLine {
                    product_id: i.product_id,
                    quantity: i.quantity,
                })
                .collect(),
            payment_token: self.payment_token,
            address: self.shipping_address,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemResponse {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub quantity: i64,
    /// Minor units, as priced when the order was placed.
    pub unit_price: i64,
    pub line_total: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderResponse {
    pub id: Uuid,
    /// The customer's user id.
    pub customer_id: Uuid,
    /// `pending`, `confirmed` or `cancelled`.
    pub status: String,
    /// For cancelled orders: `out_of_stock`, `payment_declined`, `reservation_expired`,
    /// `cancelled_by_customer`, `cancelled_by_admin` or `timed_out` (not settled within the
    /// saga deadline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<String>,
    pub items: Vec<OrderItemResponse>,
    /// Minor units.
    pub total: i64,
    pub currency: String,
    pub shipping_address: ShippingAddress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<Order> for OrderResponse {
    fn from(order: Order) -> Self {
        Self {
            id: order.id,
            customer_id: order.customer_id,
            status: order.status.as_str().to_owned(),
            cancel_reason: order.cancel_reason.map(|r| r.as_str().to_owned()),
            items: order
                .lines
                .into_iter()
                .map(|l| OrderItemResponse {
                    line_total: l.unit_price.amount() * l.quantity,
                    product_id: l.product_id,
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: l.unit_price.amount(),
                })
                .collect(),
            total: order.total.amount(),
            currency: order.total.currency().code(),
            shipping_address: order.address,
            created_at: order.created_at,
            updated_at: order.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GetParams {
    /// Wait up to this long (`500ms`, `5s`; at most 8 s) for a pending order to be confirmed or
    /// cancelled, and answer as soon as it is: no need to ask again and again.
    #[param(example = "5s")]
    pub wait: Option<String>,
}

/// The longest a client may wait for an order to settle in one request: below the gateway's
/// default upstream timeout (10 s), which would otherwise answer 504 first.
pub const MAX_WAIT: Duration = Duration::from_secs(8);

impl GetParams {
    pub fn wait(&self) -> Result<Option<Duration>, ApiError> {
        let Some(raw) = &self.wait else {
            return Ok(None);
        };
        match humantime::parse_duration(raw) {
            Ok(wait) if wait <= MAX_WAIT => Ok(Some(wait)),
            _ => Err(ApiError::validation(
                "wait",
                "invalid",
                "wait must be a duration such as 500ms or 5s, at most 8s",
            )),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl ListParams {
    pub fn limit(&self) -> Result<u32, ApiError> {
        page_limit(self.limit)
    }
}

/// A page's size: 1 to 100, 20 when not given.
pub fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(20) {
        limit @ 1..=100 => Ok(limit),
        _ => Err(ApiError::validation(
            "limit",
            "invalid",
            "limit must be between 1 and 100",
        )),
    }
}

/// Orders at a glance, for an operator's dashboard.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrdersSummaryResponse {
    /// When the figures were counted.
    pub at: DateTime<Utc>,
    /// Orders placed in each of the last 60 minutes, oldest first (the current minute last).
    pub placed_per_minute: Vec<i64>,
    /// Orders waiting for the saga to end.
    pub pending: i64,
    /// How long the oldest pending order has waited, in seconds.
    pub oldest_pending_seconds: f64,
    /// Orders placed in the last 24 hours, by status.
    #[schema(value_type = Object)]
    pub last_day_by_status: BTreeMap<String, i64>,
    /// Orders placed in the last 24 hours and cancelled, by reason.
    #[schema(value_type = Object)]
    pub last_day_cancelled_by_reason: BTreeMap<String, i64>,
}

impl From<OrdersSummary> for OrdersSummaryResponse {
    fn from(summary: OrdersSummary) -> Self {
        Self {
            at: summary.at,
            placed_per_minute: summary.placed_per_minute,
            pending: summary.pending,
            oldest_pending_seconds: summary.oldest_pending_seconds,
            last_day_by_status: summary.last_day_by_status,
            last_day_cancelled_by_reason: summary.last_day_cancelled_by_reason,
        }
    }
}

/// An administrator's search of every customer's orders.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// `pending`, `confirmed` or `cancelled`.
    pub status: Option<String>,
    /// The customer's user id.
    pub customer_id: Option<String>,
    /// Placed at or after: an RFC 3339 time, or a date (its start, UTC).
    pub placed_from: Option<String>,
    /// Placed before: an RFC 3339 time, or a date (its start, UTC).
    pub placed_to: Option<String>,
    /// 1 to 100, default 20.
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl SearchParams {
    pub fn parse(&self) -> Result<OrderFilter, ApiError> {
        let mut problems = Vec::new();
        let mut check = |field: &str, ok: bool, detail: &str| {
            if !ok {
                problems.push(FieldError::new(field, "invalid", detail));
            }
        };
        let status = self.status.as_deref().map(OrderStatus::parse);
        check(
            "status",
            !matches!(status, Some(None)),
            "status is pending, confirmed or cancelled",
        );
        let customer = self.customer_id.as_deref().map(Uuid::parse_str);
        check(
            "customer_id",
            !matches!(customer, Some(Err(_))),
            "customer_id is a user id (a UUID)",
        );
        let from = self.placed_from.as_deref().map(point_in_time);
        check(
            "placed_from",
            !matches!(from, Some(None)),
            "placed_from is an RFC 3339 time or a date (YYYY-MM-DD)",
        );
        let to = self.placed_to.as_deref().map(point_in_time);
        check(
            "placed_to",
            !matches!(to, Some(None)),
            "placed_to is an RFC 3339 time or a date (YYYY-MM-DD)",
        );
        if !problems.is_empty() {
            return Err(ApiError::Validation(problems));
        }
        Ok(OrderFilter {
            status: status.flatten(),
            customer: customer.and_then(Result::ok),
            placed_from: from.flatten(),
            placed_to: to.flatten(),
        })
    }
}

/// An RFC 3339 time, or a date read as its first moment in UTC.
fn point_in_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    let date = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPage {
    /// Newest first.
    pub items: Vec<OrderResponse>,
    pub next_cursor: Option<Uuid>,
}

impl OrderPage {
    /// A page of at most `limit` orders; a full page has a cursor to the next.
    pub fn of(orders: Vec<Order>, limit: u32) -> Self {
        let next_cursor = (orders.len() == limit as usize)
            .then(|| orders.last().map(|o| o.id))
            .flatten();
        Self {
            items: orders.into_iter().map(OrderResponse::from).collect(),
            next_cursor,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineStep {
    /// `placed`, `stock_reserved`, `confirmed`, `cancelled`, `refunded`, ...
    pub step: String,
    pub detail: String,
    /// The event that carried this step, if one did.
    pub event_id: Option<String>,
    pub at: DateTime<Utc>,
}

impl From<TimelineEntry> for TimelineStep {
    fn from(entry: TimelineEntry) -> Self {
        Self {
            step: entry.step,
            detail: entry.detail,
            event_id: entry.event_id,
            at: entry.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub order_id: Uuid,
    pub steps: Vec<TimelineStep>,
}
