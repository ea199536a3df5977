-- A payment's status is one of `payments::domain::PaymentStatus`'s names, and nothing else.
-- SQLite adds no CHECK to an existing table (it would have to be rebuilt, and
-- payment_attempts refers to it), so triggers refuse any other value.
CREATE TRIGGER payments_status_insert BEFORE INSERT ON payments
WHEN NEW.status NOT IN ('awaiting_stock', 'pending', 'captured', 'failed', 'voided', 'refunded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: payments_status');
END;
CREATE TRIGGER payments_status_update BEFORE UPDATE OF status ON payments
WHEN NEW.status NOT IN ('awaiting_stock', 'pending', 'captured', 'failed', 'voided', 'refunded')
BEGIN
    SELECT RAISE(ABORT, 'CHECK constraint failed: payments_status');
END;
