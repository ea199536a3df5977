//! The payment provider boundary, and the built-in sandbox provider.
//!
//! Every call carries an idempotency key (the order id, plus the operation), so a retried
//! call never charges twice: real providers (Stripe, Adyen, ...) honour such keys, and the
//! sandbox does too.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use platform::money::Money;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    Captured {
        reference: String,
    },
    /// Permanently refused (card declined, insufficient funds).
    Declined {
        reason: String,
    },
    /// The provider has not decided (e.g. 3-D Secure waiting for the customer).
    Pending {
        reference: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// Worth retrying: a timeout, a 5xx, a processing error.
    #[error("payment provider temporarily failed: {0}")]
    Transient(String),
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    async fn charge(
        &self,
        key: &str,
        token: &str,
        amount: Money,
    ) -> Result<ChargeOutcome, ProviderError>;
    async fn refund(&self, key: &str, reference: &str, amount: Money) -> Result<(), ProviderError>;
    async fn void(&self, key: &str, reference: &str) -> Result<(), ProviderError>;
}

/// A provider that behaves by token, for development and tests:
/// `tok_visa` approves; `tok_chargeDeclined` and `tok_insufficientFunds` decline;
/// `tok_processingError` fails transiently twice, then approves; `tok_pending` never decides.
#[derive(Debug, Default)]
pub struct SandboxProvider {
    /// Idempotency: what each key was answered, and how many transient failures it saw.
    charges: Mutex<HashMap<String, (Option<ChargeOutcome>, u32)>>,
}

impl SandboxProvider {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    async fn charge(
        &self,
        key: &str,
        token: &str,
        _amount: Money,
    ) -> Result<ChargeOutcome, ProviderError> {
        let mut charges = self.charges.lock().unwrap_or_else(|p| p.into_inner());
        let entry = charges.entry(key.to_owned()).or_insert((None, 0));
        if let Some(outcome) = &entry.0 {
            return Ok(outcome.clone());
        }
        let reference = format!("sandbox_{key}");
        let outcome = match token {
            "tok_visa" => ChargeOutcome::Captured { reference },
            "tok_chargeDeclined" => ChargeOutcome::Declined {
                reason: "card declined".into(),
            },
            "tok_insufficientFunds" => ChargeOutcome::Declined {
                reason: "insufficient funds".into(),
            },
            "tok_processingError" if entry.1 < 2 => {
                entry.1 += 1;
                return Err(ProviderError::Transient(format!(
                    "processing error (attempt {})",
                    entry.1
                )));
            }
            "tok_processingError" => ChargeOutcome::Captured { reference },
            "tok_pending" => ChargeOutcome::Pending { reference },
            _ => ChargeOutcome::Declined {
                reason: "unknown payment token".into(),
            },
        };
        entry.0 = Some(outcome.clone());
        Ok(outcome)
    }

    async fn refund(
        &self,
        _key: &str,
        _reference: &str,
        _amount: Money,
    ) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn void(&self, _key: &str, _reference: &str) -> Result<(), ProviderError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::money::Currency;

    fn eur(amount: i64) -> Money {
        Money::new(amount, Currency::parse("EUR").unwrap())
    }

    #[tokio::test]
    async fn tokens_behave_as_documented_and_keys_are_idempotent() {
        let sandbox = SandboxProvider::new();
        assert!(matches!(
            sandbox.charge("o1", "tok_visa", eur(100)).await.unwrap(),
            ChargeOutcome::Captured { .. }
        ));
        assert!(matches!(
            sandbox
                .charge("o2", "tok_chargeDeclined", eur(100))
                .await
                .unwrap(),
            ChargeOutcome::Declined { .. }
        ));
        assert!(
            sandbox
                .charge("o3", "tok_processingError", eur(100))
                .await
                .is_err()
        );
        assert!(
            sandbox
                .charge("o3", "tok_processingError", eur(100))
                .await
                .is_err()
        );
        assert!(matches!(
            sandbox
                .charge("o3", "tok_processingError", eur(100))
                .await
                .unwrap(),
            ChargeOutcome::Captured { .. }
        ));
        assert!(matches!(
            sandbox.charge("o4", "tok_pending", eur(100)).await.unwrap(),
            ChargeOutcome::Pending { .. }
        ));
        // Same key again: the same answer, whatever the token says now.
        assert!(matches!(
            sandbox.charge("o2", "tok_visa", eur(100)).await.unwrap(),
            ChargeOutcome::Declined { .. }
        ));
    }
}
