use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockLevels {
    pub product_id: Uuid,
    pub on_hand: i64,
    pub reserved: i64,
}

impl StockLevels {
    pub fn available(&self) -> i64 {
        self.on_hand - self.reserved
    }
}

/// A manual stock correction: a non-zero delta and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    delta: i64,
    reason: String,
}

impl Adjustment {
    pub const MAX_DELTA: i64 = 1_000_000_000;

    pub fn parse(delta: i64, reason: &str) -> Result<Self, (&'static str, &'static str)> {
        if delta == 0 {
            return Err(("/delta", "delta must not be zero"));
        }
        // unsigned_abs: i64::MIN has no positive counterpart (abs overflows).
        if delta.unsigned_abs() > Self::MAX_DELTA.unsigned_abs() {
            return Err(("/delta", "delta must be within ±1,000,000,000"));
        }
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 || reason.chars().any(char::is_control)
        {
            return Err(("/reason", "reason must be 1 to 200 characters"));
        }
        Ok(Self {
            delta,
            reason: reason.to_owned(),
        })
    }

    pub fn delta(&self) -> i64 {
        self.delta
    }

    pub fn reason(&self) -> &str {
        &self.reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustments_need_a_delta_and_a_reason() {
        assert!(Adjustment::parse(0, "count").is_err());
        assert!(Adjustment::parse(5, " ").is_err());
        assert!(Adjustment::parse(i64::MIN, "count").is_err());
        assert!(Adjustment::parse(i64::MAX, "count").is_err());
        assert!(Adjustment::parse(-1_000_000_000, "count").is_ok());
        assert!(Adjustment::parse(Adjustment::MAX_DELTA + 1, "x").is_err());
        assert_eq!(
            Adjustment::parse(-3, " damaged ").unwrap().reason(),
            "damaged"
        );
    }

    #[test]
    fn available_is_what_is_not_reserved() {
        let levels = StockLevels {
            product_id: Uuid::nil(),
            on_hand: 10,
            reserved: 4,
        };
        assert_eq!(levels.available(), 6);
    }
}
