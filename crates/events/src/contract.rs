//! The event contract: every topic, event type and payload services exchange. A payload
//! type's shape is versioned by its `.vN` suffix; a breaking change is a new type.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every topic events are published on.
pub const TOPICS: [&str; 5] = [
    users::TOPIC,
    catalog::TOPIC,
    inventory::TOPIC,
    orders::TOPIC,
    payments::TOPIC,
];

/// Every event type published on the topics, with its payload's schema: what the AsyncAPI
/// document (`crate::asyncapi`) and the webhooks' subscriptions are made from.
pub fn published() -> Vec<Published> {
    vec![
        Published::of::<users::UserRegisteredV1>(),
        Published::of::<catalog::ProductCreatedV1>(),
        Published::of::<catalog::ProductUpdatedV1>(),
        Published::of::<catalog::ProductArchivedV1>(),
        Published::of::<inventory::StockAdjustedV1>(),
        Published::of::<inventory::InventoryReservedV1>(),
        Published::of::<inventory::InventoryRejectedV1>(),
        Published::of::<inventory::ReservationExpiredV1>(),
        Published::of::<orders::OrderPlacedV1>(),
        Published::of::<orders::OrderConfirmedV1>(),
        Published::of::<orders::OrderCancelledV1>(),
        Published::of::<payments::PaymentCapturedV1>(),
        Published::of::<payments::PaymentFailedV1>(),
        Published::of::<payments::PaymentRefundedV1>(),
    ]
}

/// One published event type.
#[derive(Debug, Clone, Copy)]
pub struct Published {
    /// e.g. `commercex.order.placed.v1`.
    pub event_type: &'static str,
    pub topic: &'static str,
    /// The payload type's name, e.g. `OrderPlacedV1`.
    pub name: &'static str,
    /// Its JSON Schema, from the Rust type itself.
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
}

impl Published {
    fn of<E: EventKind + JsonSchema>() -> Self {
        let path = std::any::type_name::<E>();
        Self {
            event_type: E::TYPE,
            topic: E::TOPIC,
            name: path.rsplit("::").next().unwrap_or(path),
            schema: |generator| generator.subschema_for::<E>(),
        }
    }

    /// The URI every event of this type names as its `dataschema`, and its schema's `$id`.
    pub fn schema_uri(&self) -> String {
        schema_uri(self.event_type)
    }
}

/// The `dataschema` of events of `event_type`: a URN, the `$id` of its schema (served at
/// `/asyncapi/schemas/{event_type}.json`, and in the AsyncAPI document).
pub fn schema_uri(event_type: &str) -> String {
    format!("urn:commercex:event-schema:{event_type}")
}

/// An event type and the topic (one per aggregate) it is published on.
pub trait EventKind: Serialize {
    const TYPE: &'static str;
    const TOPIC: &'static str;
}

pub mod users {
    use super::*;

    pub const TOPIC: &str = "commercex.users";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct UserRegisteredV1 {
        pub user_id: Uuid,
        pub email: String,
        pub name: String,
        pub roles: Vec<String>,
    }

    impl EventKind for UserRegisteredV1 {
        const TYPE: &'static str = "commercex.user.registered.v1";
        const TOPIC: &'static str = TOPIC;
    }
}

/// Money in event payloads: minor units and an ISO 4217 code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Price {
    pub amount: i64,
    pub currency: String,
}

pub mod catalog {
    use super::*;

    pub const TOPIC: &str = "commercex.catalog";

    /// A product as other services need it (orders snapshot prices from it).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct ProductCreatedV1 {
        pub product_id: Uuid,
        pub sku: String,
        pub name: String,
        pub price: Price,
        pub category: String,
    }

    impl EventKind for ProductCreatedV1 {
        const TYPE: &'static str = "commercex.product.created.v1";
        const TOPIC: &'static str = TOPIC;
    }

    /// The product after a change (price changes included); carries the whole state.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct ProductUpdatedV1 {
        pub product_id: Uuid,
        pub sku: String,
        pub name: String,
        pub price: Price,
        pub category: String,
        pub version: i64,
    }

    impl EventKind for ProductUpdatedV1 {
        const TYPE: &'static str = "commercex.product.updated.v1";
        const TOPIC: &'static str = TOPIC;
    }

    /// The product is withdrawn: gone from listings and no longer orderable.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct ProductArchivedV1 {
        pub product_id: Uuid,
    }

    impl EventKind for ProductArchivedV1 {
        const TYPE: &'static str = "commercex.product.archived.v1";
        const TOPIC: &'static str = TOPIC;
    }
}

pub mod inventory {
    use super::*;

    pub const TOPIC: &str = "commercex.inventory";

    /// The most units of one product inventory holds for one order (its lines merged). Orders
    /// refuses more where the order is placed, so that no customer can send inventory a
    /// request it has to turn down.
    pub const MAX_UNITS_PER_PRODUCT: i64 = 1000;

    /// Stock levels after an adjustment; availability reaches the catalog through it.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct StockAdjustedV1 {
        pub product_id: Uuid,
        pub delta: i64,
        pub reason: String,
        pub on_hand: i64,
        pub reserved: i64,
        pub available: i64,
    }

    impl EventKind for StockAdjustedV1 {
        const TYPE: &'static str = "commercex.inventory.stock_adjusted.v1";
        const TOPIC: &'static str = TOPIC;
    }

    /// Every line of the order is held until `expires_at`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct InventoryReservedV1 {
        pub order_id: Uuid,
        pub expires_at: chrono::DateTime<chrono::Utc>,
    }

    impl EventKind for InventoryReservedV1 {
        const TYPE: &'static str = "commercex.inventory.reserved.v1";
        const TOPIC: &'static str = TOPIC;
    }

    /// Nothing is held: these products had too few units.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct InventoryRejectedV1 {
        pub order_id: Uuid,
        pub short: Vec<Uuid>,
    }

    impl EventKind for InventoryRejectedV1 {
        const TYPE: &'static str = "commercex.inventory.rejected.v1";
        const TOPIC: &'static str = TOPIC;
    }

    /// One product line held by a reservation.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    pub struct ReservedLine {
        pub product_id: Uuid,
        pub quantity: i64,
    }

    /// An order's reservation passed its time without being committed; its units are free
    /// again. The order cannot be fulfilled from it any more.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct ReservationExpiredV1 {
        pub order_id: Uuid,
        pub lines: Vec<ReservedLine>,
    }

    impl EventKind for ReservationExpiredV1 {
        const TYPE: &'static str = "commercex.inventory.reservation_expired.v1";
        const TOPIC: &'static str = TOPIC;
    }
}

/// The checkout saga's order events. Keyed by the order id; `correlationid` is the order id.
pub mod orders {
    use super::*;

    pub const TOPIC: &str = "commercex.orders";

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
    pub struct OrderLine {
        pub product_id: Uuid,
        pub quantity: i64,
        /// Unit price in minor units, snapshotted when the order was placed.
        pub unit_price: i64,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct OrderPlacedV1 {
        pub order_id: Uuid,
        pub customer_id: Uuid,
        pub lines: Vec<OrderLine>,
        pub total: Price,
        /// What the customer pays with, sealed for this order with the payment token keys
        /// (`platform::sealing`): only the payments service opens it, when it charges. The
        /// token itself is never in an event.
        pub sealed_payment_token: String,
    }

    impl EventKind for OrderPlacedV1 {
        const TYPE: &'static str = "commercex.order.placed.v1";
        const TOPIC: &'static str = TOPIC;
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct OrderConfirmedV1 {
        pub order_id: Uuid,
    }

    impl EventKind for OrderConfirmedV1 {
        const TYPE: &'static str = "commercex.order.confirmed.v1";
        const TOPIC: &'static str = TOPIC;
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct OrderCancelledV1 {
        pub order_id: Uuid,
        /// `out_of_stock`, `payment_declined`, `reservation_expired`, `cancelled_by_customer`,
        /// `cancelled_by_admin` or `timed_out`.
        pub reason: String,
        /// Undo what went through: payments refunds a captured charge, inventory puts
        /// committed units back. True when a confirmed order is cancelled, or a charge was
        /// captured after the order had been cancelled.
        pub compensate: bool,
    }

    impl EventKind for OrderCancelledV1 {
        const TYPE: &'static str = "commercex.order.cancelled.v1";
        const TOPIC: &'static str = TOPIC;
    }
}

/// Payments' side of the saga. Keyed by the order id.
pub mod payments {
    use super::*;

    pub const TOPIC: &str = "commercex.payments";

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct PaymentCapturedV1 {
        pub order_id: Uuid,
        pub payment_id: Uuid,
        pub amount: Price,
    }

    impl EventKind for PaymentCapturedV1 {
        const TYPE: &'static str = "commercex.payment.captured.v1";
        const TOPIC: &'static str = TOPIC;
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct PaymentFailedV1 {
        pub order_id: Uuid,
        pub payment_id: Uuid,
        pub reason: String,
    }

    impl EventKind for PaymentFailedV1 {
        const TYPE: &'static str = "commercex.payment.failed.v1";
        const TOPIC: &'static str = TOPIC;
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
    pub struct PaymentRefundedV1 {
        pub order_id: Uuid,
        pub payment_id: Uuid,
        pub amount: Price,
    }

    impl EventKind for PaymentRefundedV1 {
        const TYPE: &'static str = "commercex.payment.refunded.v1";
        const TOPIC: &'static str = TOPIC;
    }
}
