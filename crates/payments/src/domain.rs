//! A payment's life: where it can be, and the only ways it moves. Pure rules, no I/O; the
//! use cases (`payments`) ask them before they call the provider or write anything.

/// Where a payment is. Stored as its `as_str` name; the database refuses any other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    /// The order is placed and its stock not held yet: nothing is charged.
    AwaitingStock,
    /// Charged, and the provider has not decided.
    Pending,
    Captured,
    /// The provider declined the charge.
    Failed,
    /// Never to be charged, or a pending charge called off.
    Voided,
    /// Captured, then given back.
    Refunded,
}

/// What can happen to a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The provider captured the charge.
    Capture,
    /// The provider declined it.
    Decline,
    /// The provider has not decided yet.
    Defer,
    /// The order will not be paid (its hold expired, or it was cancelled before payment):
    /// a charge not made is never made, a pending one is called off.
    Void,
    /// The order will not go ahead before payment (out of stock): a charge not made is
    /// never made.
    Abandon,
    /// A captured order was cancelled: the money goes back.
    Refund,
}

impl PaymentStatus {
    pub const ALL: [Self; 6] = [
        Self::AwaitingStock,
        Self::Pending,
        Self::Captured,
        Self::Failed,
        Self::Voided,
        Self::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingStock => "awaiting_stock",
            Self::Pending => "pending",
            Self::Captured => "captured",
            Self::Failed => "failed",
            Self::Voided => "voided",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == name)
    }

    /// Where `transition` takes a payment that is here, or `None` when it does not apply
    /// (a redelivered event, or a step the payment is already past): then nothing changes.
    pub fn after(self, transition: Transition) -> Option<Self> {
        use PaymentStatus::*;
        use Transition::*;
        match (self, transition) {
            (AwaitingStock, Capture) => Some(Captured),
            (AwaitingStock, Decline) => Some(Failed),
            (AwaitingStock, Defer) => Some(Pending),
            (AwaitingStock | Pending, Void) | (AwaitingStock, Abandon) => Some(Voided),
            (Captured, Refund) => Some(Refunded),
            _ => None,
        }
    }

    /// Only a payment whose stock is held, and that was never charged, is charged.
    pub fn chargeable(self) -> bool {
        self == Self::AwaitingStock
    }

    /// No transition leaves it.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Failed | Self::Voided | Self::Refunded)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::PaymentStatus::*;
    use super::Transition::*;
    use super::*;

    const TRANSITIONS: [Transition; 6] = [Capture, Decline, Defer, Void, Abandon, Refund];

    fn transition() -> impl Strategy<Value = Transition> {
        proptest::sample::select(TRANSITIONS.to_vec())
    }

    #[test]
    fn names_are_what_the_database_and_the_api_say() {
        for status in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(PaymentStatus::parse("Captured"), None);
        assert_eq!(PaymentStatus::parse(""), None);
    }

    #[test]
    fn a_charge_is_captured_declined_or_deferred_once() {
        assert_eq!(AwaitingStock.after(Capture), Some(Captured));
        assert_eq!(AwaitingStock.after(Decline), Some(Failed));
        assert_eq!(AwaitingStock.after(Defer), Some(Pending));
        for status in [Pending, Captured, Failed, Voided, Refunded] {
            assert!(!status.chargeable());
            assert_eq!(status.after(Capture), None, "{status:?} is charged again");
        }
    }

    #[test]
    fn voids_and_refunds_apply_only_where_they_mean_something() {
        assert_eq!(Pending.after(Void), Some(Voided));
        assert_eq!(
            Pending.after(Abandon),
            None,
            "a pending charge is voided, not abandoned"
        );
        assert_eq!(
            Captured.after(Void),
            None,
            "captured money is refunded, not voided"
        );
        assert_eq!(Captured.after(Refund), Some(Refunded));
        assert_eq!(AwaitingStock.after(Refund), None);
    }

    proptest! {
        /// Whatever events arrive, in whatever order and however often: a final status is
        /// never left, a refunded payment never becomes captured again, and a payment is
        /// captured at most once.
        #[test]
        fn no_sequence_of_events_undoes_an_ending(
            start in proptest::sample::select(PaymentStatus::ALL.to_vec()),
            events in proptest::collection::vec(transition(), 0..24),
        ) {
            let mut status = start;
            let mut captures = u32::from(start == Captured || start == Refunded);
            for event in events {
                let Some(next) = status.after(event) else { continue };
                prop_assert!(!status.is_final(), "{status:?} left for {next:?}");
                if next == Captured {
                    captures += 1;
                }
                status = next;
            }
            prop_assert!(captures <= 1, "captured {captures} times");
            if start == Refunded {
                prop_assert_eq!(status, Refunded);
            }
        }
    }
}
