-- A payment's status is one of `payments::domain::PaymentStatus`'s names, and nothing else.
ALTER TABLE payments ADD CONSTRAINT payments_status CHECK (
    status IN ('awaiting_stock', 'pending', 'captured', 'failed', 'voided', 'refunded')
);
