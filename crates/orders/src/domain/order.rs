use chrono::{DateTime, Utc};
use platform::money::Money;
use uuid::Uuid;

use super::ShippingAddress;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Cancelled,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "pending" => Some(Self::Pending),
            "confirmed" => Some(Self::Confirmed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    OutOfStock,
    PaymentDeclined,
    ReservationExpired,
    CancelledByCustomer,
    /// An administrator cancelled it for the customer.
    CancelledByAdmin,
    /// Not settled within the saga deadline, whatever held it up.
    TimedOut,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutOfStock => "out_of_stock",
            Self::PaymentDeclined => "payment_declined",
            Self::ReservationExpired => "reservation_expired",
            Self::CancelledByCustomer => "cancelled_by_customer",
            Self::CancelledByAdmin => "cancelled_by_admin",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::OutOfStock,
            Self::PaymentDeclined,
            Self::ReservationExpired,
            Self::CancelledByCustomer,
            Self::CancelledByAdmin,
            Self::TimedOut,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == value)
    }
}

/// What a status change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Move from the first status to the second.
    Move(OrderStatus, OrderStatus),
    /// Already where the event would put it (a redelivery): nothing to do.
    Already,
    /// Not allowed from the current status.
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub product_id: Uuid,
    pub sku: String,
    pub name: String,
    pub unit_price: Money,
    pub quantity: i64,
}

#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub customer_id: Uuid,
    pub status: OrderStatus,
    /// Set exactly when the status is cancelled.
    pub cancel_reason: Option<CancelReason>,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub address: ShippingAddress,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl OrderStatus {
    /// Payment captured: a pending order is confirmed.
    pub fn confirm(self) -> Transition {
        match self {
            OrderStatus::Pending => Transition::Move(OrderStatus::Pending, OrderStatus::Confirmed),
            OrderStatus::Confirmed => Transition::Already,
            OrderStatus::Cancelled => Transition::Refused,
        }
    }

    /// Cancelling: pending or confirmed orders can be; cancelled ones already are.
    pub fn cancel(self) -> Transition {
        match self {
            OrderStatus::Cancelled => Transition::Already,
            from => Transition::Move(from, OrderStatus::Cancelled),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_moves() {
        use OrderStatus::*;
        assert_eq!(Pending.confirm(), Transition::Move(Pending, Confirmed));
        assert_eq!(Confirmed.confirm(), Transition::Already);
        assert_eq!(Cancelled.confirm(), Transition::Refused);
        assert_eq!(Pending.cancel(), Transition::Move(Pending, Cancelled));
        assert_eq!(Confirmed.cancel(), Transition::Move(Confirmed, Cancelled));
        assert_eq!(Cancelled.cancel(), Transition::Already);
    }

    #[test]
    fn a_cancel_reason_reads_back_as_written() {
        use CancelReason::*;
        for reason in [
            OutOfStock,
            PaymentDeclined,
            ReservationExpired,
            CancelledByCustomer,
            TimedOut,
        ] {
            assert_eq!(CancelReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(CancelReason::parse("cancelled"), None);
    }
}
