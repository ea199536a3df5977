-- One payment per order. Status: awaiting_stock (order placed, stock not yet held),
-- pending (provider has not decided), captured, failed, voided, refunded.
CREATE TABLE payments (
    id             TEXT   PRIMARY KEY,
    order_id       TEXT   NOT NULL UNIQUE,
    customer_id    TEXT   NOT NULL,
    amount         BIGINT NOT NULL,
    currency       TEXT   NOT NULL,
    payment_token  TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    provider_ref   TEXT,
    failure_reason TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

-- Every call to the provider and what it answered.
CREATE TABLE payment_attempts (
    id         TEXT   PRIMARY KEY,
    payment_id TEXT   NOT NULL REFERENCES payments (id),
    operation  TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    detail     TEXT   NOT NULL,
    at         BIGINT NOT NULL
);
CREATE INDEX payment_attempts_payment ON payment_attempts (payment_id, at);
