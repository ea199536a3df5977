//! The payments use cases, all driven by saga events and run inside the consumer's
//! transaction: the payment's new state, the attempt and the resulting event commit together.

use std::sync::Arc;

use events::Envelope;
use events::consumer::HandlerError;
use events::contract::payments::{PaymentCapturedV1, PaymentFailedV1, PaymentRefundedV1};
use events::contract::{EventKind, Price};
use events::outbox::Outbox;
use platform::auth::AuthUser;
use platform::db::Tx;
use platform::money::{Currency, Money};
use platform::sealing::SealingKeys;
use secrecy::ExposeSecret;
use uuid::Uuid;

use crate::domain::{PaymentStatus, Transition};
use crate::provider::{ChargeOutcome, PaymentProvider, ProviderError};
use crate::store::{Attempt, Payment, PaymentStore, StoreError};

pub const SOURCE: &str = "commercex/payments";

/// What reading payments over HTTP can end in. The saga's steps answer the consumer instead
/// (`HandlerError`).
#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("no payments for this order")]
    NotFound,
    /// A fault of ours (a database that failed or could not be reached, stored data that does
    /// not parse), with its cause.
    #[error("internal error")]
    Internal(#[source] platform::BoxError),
}

impl From<StoreError> for PaymentsError {
    fn from(error: StoreError) -> Self {
        Self::Internal(error.into())
    }
}

impl From<StoreError> for HandlerError {
    /// A change the payment's status does not allow is a bug: retrying cannot mend it. A
    /// payment that moved meanwhile is read again by the retry.
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotAllowed { .. } => HandlerError::permanent(error),
            _ => HandlerError::transient(error),
        }
    }
}

impl From<ProviderError> for HandlerError {
    fn from(error: ProviderError) -> Self {
        HandlerError::transient(error)
    }
}

pub struct Payments {
    store: PaymentStore,
    provider: Arc<dyn PaymentProvider>,
    /// Open the sealed payment token at the moment of the charge, and not before.
    payment_tokens: Arc<SealingKeys>,
    outbox: Outbox,
}

fn price(money: Money) -> Price {
    Price {
        amount: money.amount(),
        currency: money.currency().code(),
    }
}

impl Payments {
    pub fn new(
        store: PaymentStore,
        provider: Arc<dyn PaymentProvider>,
        payment_tokens: Arc<SealingKeys>,
        outbox: Outbox,
    ) -> Self {
        Self {
            store,
            provider,
            payment_tokens,
            outbox,
        }
    }

    pub fn store(&self) -> &PaymentStore {
        &self.store
    }

    /// An order's payment and every provider answer, for its customer or an administrator;
    /// anyone else finds nothing.
    pub async fn of_order(
        &self,
        order_id: Uuid,
        caller: &AuthUser,
    ) -> Result<(Payment, Vec<Attempt>), PaymentsError> {
        let payment = self.store.find_by_order(order_id).await?;
        let payment = payment
            .filter(|p| caller.is_admin() || p.customer_id == caller.id)
            .ok_or(PaymentsError::NotFound)?;
        let attempts = self.store.attempts(payment.id).await?;
        Ok((payment, attempts))
    }

    /// The payments opened in the last 24 hours, by status: what the provider has been
    /// answering (administrators).
    pub async fn last_day(&self) -> Result<std::collections::BTreeMap<String, i64>, PaymentsError> {
        let since = platform::time::now() - chrono::Duration::days(1);
        Ok(self.store.count_by_status(since).await?)
    }

    /// An order was placed: open its payment, awaiting stock, to be charged once the stock is
    /// held. The payment token stays sealed at rest.
    pub async fn await_stock(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        customer_id: Uuid,
        total: &Price,
        sealed_token: &str,
    ) -> Result<(), HandlerError> {
        let currency = Currency::parse(&total.currency).map_err(HandlerError::permanent)?;
        let amount = Money::price(total.amount, currency).map_err(HandlerError::permanent)?;
        self.store
            .open(tx, order_id, customer_id, amount, sealed_token)
            .await?;
        Ok(())
    }

    async fn payment(&self, tx: &mut Tx, order_id: Uuid) -> Result<Payment, HandlerError> {
        self.store.for_order(tx, order_id).await?.ok_or_else(|| {
            HandlerError::not_yet(format!("no payment recorded yet for order {order_id}"))
        })
    }

    /// The order's stock is held: charge it, once. A transient provider error rolls the
    /// transaction back and the consumer retries with the same idempotency key.
    pub async fn charge(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let payment = self.payment(tx, order_id).await?;
        if !payment.status.chargeable() {
            return Ok(());
        }
        // A token that does not open is the operator's to fix (a key missing from this
        // process): dead-lettered, and replayed once the key is back.
        let token = self
            .payment_tokens
            .open(&payment.sealed_token, order_id.as_bytes())
            .map_err(|error| {
                HandlerError::permanent(format!("the sealed payment token: {error}"))
            })?;
        let key = format!("charge-{order_id}");
        let outcome = self
            .provider
            .charge(&key, token.expose_secret(), payment.amount)
            .await?;
        // What the provider answered decides the move, the attempt recorded and the event.
        let (transition, answer, detail) = match &outcome {
            ChargeOutcome::Captured { reference } => (Transition::Capture, "captured", reference),
            ChargeOutcome::Declined { reason } => (Transition::Decline, "declined", reason),
            ChargeOutcome::Pending { reference } => (Transition::Defer, "pending", reference),
        };
        let (provider_ref, failure) = match &outcome {
            ChargeOutcome::Declined { reason } => (None, Some(reason.as_str())),
            _ => (Some(detail.as_str()), None),
        };
        self.store
            .set_status(tx, &payment, transition, provider_ref, failure)
            .await?;
        self.store
            .record_attempt(tx, payment.id, "charge", answer, detail)
            .await?;
        match outcome {
            ChargeOutcome::Captured { .. } => {
                let captured = PaymentCapturedV1 {
                    order_id,
                    payment_id: payment.id,
                    amount: price(payment.amount),
                };
                self.emit(tx, order_id, &captured, cause).await
            }
            ChargeOutcome::Declined { reason } => {
                let failed = PaymentFailedV1 {
                    order_id,
                    payment_id: payment.id,
                    reason,
                };
                self.emit(tx, order_id, &failed, cause).await
            }
            // The provider decides later; the reservation's expiry voids it if it never does.
            ChargeOutcome::Pending { .. } => Ok(()),
        }
    }

    /// The order will not be paid (its reservation expired, or it was cancelled before
    /// payment): a charge the provider still holds open is voided there, one not started is
    /// never made.
    pub async fn void(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let payment = self.payment(tx, order_id).await?;
        if payment.status.after(Transition::Void).is_none() {
            return Ok(());
        }
        if payment.status == PaymentStatus::Pending {
            let reference = payment.provider_ref.clone().unwrap_or_default();
            self.provider
                .void(&format!("void-{order_id}"), &reference)
                .await?;
            self.store
                .record_attempt(tx, payment.id, "void", "voided", &reference)
                .await?;
        }
        self.store
            .set_status(tx, &payment, Transition::Void, None, Some(reason))
            .await?;
        Ok(())
    }

    /// The order will not go ahead before payment (out of stock): nothing to charge.
    pub async fn abandon(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let payment = self.payment(tx, order_id).await?;
        if payment.status.after(Transition::Abandon).is_some() {
            self.store
                .set_status(tx, &payment, Transition::Abandon, None, Some(reason))
                .await?;
        }
        Ok(())
    }

    /// A captured order was cancelled: give the money back, once.
    pub async fn refund(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let payment = self.payment(tx, order_id).await?;
        if payment.status.after(Transition::Refund).is_none() {
            return Ok(());
        }
        let reference = payment.provider_ref.clone().unwrap_or_default();
        self.provider
            .refund(&format!("refund-{order_id}"), &reference, payment.amount)
            .await?;
        self.store
            .set_status(tx, &payment, Transition::Refund, None, None)
            .await?;
        self.store
            .record_attempt(tx, payment.id, "refund", "refunded", &reference)
            .await?;
        let refunded = PaymentRefundedV1 {
            order_id,
            payment_id: payment.id,
            amount: price(payment.amount),
        };
        self.emit(tx, order_id, &refunded, cause).await
    }

    /// Publishes `event` about the order's payment, caused by `cause`, with the transaction.
    async fn emit<E: EventKind>(
        &self,
        tx: &mut Tx,
        order_id: Uuid,
        event: &E,
        cause: &Envelope,
    ) -> Result<(), HandlerError> {
        let envelope = Envelope::of(SOURCE, order_id.to_string(), event).caused_by(cause);
        self.outbox.enqueue(tx, E::TOPIC, &envelope).await?;
        Ok(())
    }
}
