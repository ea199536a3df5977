//! Inventory rules with no I/O.

mod levels;
mod reservation;

pub use levels::{Adjustment, StockLevels};
pub use reservation::{
    Quantity, RequestError, ReservationLine, ReservationRequest, ReservationStatus,
};
