//! Order rules with no I/O: what a valid order request is, how it is priced, and how an
//! order's status may move.

mod address;
mod filter;
mod order;
mod placement;
mod pricing;
mod summary;

pub use address::ShippingAddress;
pub use filter::OrderFilter;
pub use order::{CancelReason, Order, OrderLine, OrderStatus, Transition};
pub use placement::{MAX_LINES, PlaceOrder, RequestedLine};
pub use pricing::{CatalogProduct, FieldProblem, Priced, price};
pub use summary::{OrdersSummary, per_minute};
