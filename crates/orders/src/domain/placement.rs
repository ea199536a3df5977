use uuid::Uuid;

use super::ShippingAddress;

pub const MAX_LINES: usize = 50;

/// One requested line: 1 to 100 units of a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestedLine {
    pub product_id: Uuid,
    pub quantity: i64,
}

/// A checked order request (prices are looked up when it is placed).
#[derive(Debug, Clone)]
pub struct PlaceOrder {
    pub lines: Vec<RequestedLine>,
    pub payment_token: String,
    pub address: ShippingAddress,
}
