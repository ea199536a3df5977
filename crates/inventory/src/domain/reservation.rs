use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use events::contract::inventory::MAX_UNITS_PER_PRODUCT;
use uuid::Uuid;

/// Units of one product for one order: 1 to `MAX_UNITS_PER_PRODUCT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(i64);

impl Quantity {
    pub fn parse(value: i64) -> Result<Self, &'static str> {
        if !(1..=MAX_UNITS_PER_PRODUCT).contains(&value) {
            return Err("quantity must be between 1 and 1000");
        }
        Ok(Self(value))
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReservationLine {
    pub product_id: Uuid,
    pub quantity: Quantity,
}

/// What an order asks to hold: its lines, merged per product and in product order, so that
/// concurrent reservations lock rows in the same order and cannot deadlock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservationRequest {
    pub order_id: Uuid,
    pub lines: Vec<ReservationLine>,
    pub expires_at: DateTime<Utc>,
}

/// Why no reservation can be asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A malformed request (orders never sends one): a poison message.
    #[error("a reservation needs at least one line")]
    NoLines,
    /// More units of these products than one order may hold: a refusal, not a fault.
    #[error("more than {MAX_UNITS_PER_PRODUCT} units of one product")]
    TooManyUnits(Vec<Uuid>),
}

impl ReservationRequest {
    pub fn new(
        order_id: Uuid,
        lines: &[ReservationLine],
        expires_at: DateTime<Utc>,
    ) -> Result<Self, RequestError> {
        if lines.is_empty() {
            return Err(RequestError::NoLines);
        }
        let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
        for line in lines {
            *merged.entry(line.product_id).or_default() += line.quantity.get();
        }
        let too_many: Vec<Uuid> = merged
            .iter()
            .filter(|(_, units)| **units > MAX_UNITS_PER_PRODUCT)
            .map(|(product_id, _)| *product_id)
            .collect();
        if !too_many.is_empty() {
            return Err(RequestError::TooManyUnits(too_many));
        }
        let lines = merged
            .into_iter()
            .map(|(product_id, units)| ReservationLine {
                product_id,
                quantity: Quantity(units),
            })
            .collect();
        Ok(Self {
            order_id,
            lines,
            expires_at,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    Active,
    Committed,
    Released,
    Expired,
    /// Committed, then the order was cancelled and its units put back.
    Returned,
}

impl ReservationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Committed => "committed",
            Self::Released => "released",
            Self::Expired => "expired",
            Self::Returned => "returned",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "active" => Some(Self::Active),
            "committed" => Some(Self::Committed),
            "released" => Some(Self::Released),
            "expired" => Some(Self::Expired),
            "returned" => Some(Self::Returned),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_merge_per_product_in_order() {
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let q = |n| Quantity::parse(n).unwrap();
        let request = ReservationRequest::new(
            Uuid::nil(),
            &[
                ReservationLine {
                    product_id: a,
                    quantity: q(2),
                },
                ReservationLine {
                    product_id: b,
                    quantity: q(1),
                },
                ReservationLine {
                    product_id: a,
                    quantity: q(3),
                },
            ],
            Utc::now(),
        )
        .unwrap();
        assert_eq!(
            request.lines,
            vec![
                ReservationLine {
                    product_id: b,
                    quantity: q(1)
                },
                ReservationLine {
                    product_id: a,
                    quantity: q(5)
                },
            ]
        );
        assert_eq!(
            ReservationRequest::new(Uuid::nil(), &[], Utc::now()),
            Err(RequestError::NoLines)
        );
        assert!(Quantity::parse(0).is_err());
    }

    #[test]
    fn more_units_of_a_product_than_one_order_may_hold_are_refused_by_product() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let line = |product_id, units| ReservationLine {
            product_id,
            quantity: Quantity::parse(units).unwrap(),
        };
        // Eleven lines of 100 of one product: each line is fine, together they are not.
        let mut lines = vec![line(a, 100); 11];
        lines.push(line(b, 1000));
        assert_eq!(
            ReservationRequest::new(Uuid::nil(), &lines, Utc::now()),
            Err(RequestError::TooManyUnits(vec![a]))
        );
        lines.pop();
        lines.pop();
        let request = ReservationRequest::new(Uuid::nil(), &lines, Utc::now()).unwrap();
        assert_eq!(request.lines, vec![line(a, MAX_UNITS_PER_PRODUCT)]);
    }

    proptest::proptest! {
        /// A quantity is exactly 1 to the per-product limit, and keeps its value.
        #[test]
        fn a_quantity_is_exactly_its_range(n in -5i64..MAX_UNITS_PER_PRODUCT + 5) {
            proptest::prop_assert_eq!(
                Quantity::parse(n).ok().map(Quantity::get),
                (1..=MAX_UNITS_PER_PRODUCT).contains(&n).then_some(n)
            );
        }

        /// However lines repeat products, a request holds each product once, in product order,
        /// with the units of its lines added up; or it names exactly the products over the
        /// limit.
        #[test]
        fn a_request_merges_lines_and_keeps_every_unit(
            lines in proptest::collection::vec((0u128..4, 1i64..=MAX_UNITS_PER_PRODUCT), 1..8),
        ) {
            let lines: Vec<ReservationLine> = lines
                .into_iter()
                .map(|(product, units)| ReservationLine {
                    product_id: Uuid::from_u128(product),
                    quantity: Quantity(units),
                })
                .collect();
            let mut wanted: BTreeMap<Uuid, i64> = BTreeMap::new();
            for line in &lines {
                *wanted.entry(line.product_id).or_default() += line.quantity.get();
            }
            let over: Vec<Uuid> = wanted
                .iter()
                .filter(|(_, units)| **units > MAX_UNITS_PER_PRODUCT)
                .map(|(product, _)| *product)
                .collect();
            match ReservationRequest::new(Uuid::nil(), &lines, Utc::now()) {
                Ok(request) => {
                    proptest::prop_assert!(over.is_empty());
                    let held: Vec<(Uuid, i64)> = request
                        .lines
                        .iter()
                        .map(|l| (l.product_id, l.quantity.get()))
                        .collect();
                    proptest::prop_assert_eq!(held, wanted.into_iter().collect::<Vec<_>>());
                }
                Err(RequestError::TooManyUnits(named)) => proptest::prop_assert_eq!(named, over),
                Err(RequestError::NoLines) => proptest::prop_assert!(false, "there were lines"),
            }
        }
    }
}
