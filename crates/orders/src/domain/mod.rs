//! Order rules with no I/O: what a valid order request is, and how an order's status may move.

mod address;
mod order;
mod placement;

pub use address::ShippingAddress;
pub use order::{CancelReason, Order, OrderLine, OrderStatus, Transition};
pub use placement::{MAX_LINES, PlaceOrder, RequestedLine};
