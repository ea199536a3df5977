-- Stock per product. available = on_hand - reserved; reserved never exceeds on_hand.
CREATE TABLE stock (
    product_id TEXT   PRIMARY KEY,
    on_hand    BIGINT NOT NULL,
    reserved   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    CHECK (on_hand >= 0),
    CHECK (reserved >= 0),
    CHECK (reserved <= on_hand)
);

-- Every change of on_hand or reserved: who, when, why, by how much.
CREATE TABLE stock_ledger (
    id              TEXT   PRIMARY KEY,
    product_id      TEXT   NOT NULL REFERENCES stock (product_id),
    kind            TEXT   NOT NULL,
    on_hand_delta   BIGINT NOT NULL,
    reserved_delta  BIGINT NOT NULL,
    on_hand_after   BIGINT NOT NULL,
    reserved_after  BIGINT NOT NULL,
    reason          TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX stock_ledger_product ON stock_ledger (product_id, created_at, id);

CREATE TABLE reservations (
    id         TEXT   PRIMARY KEY,
    order_id   TEXT   NOT NULL UNIQUE,
    status     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX reservations_expiry ON reservations (status, expires_at);

CREATE TABLE reservation_lines (
    reservation_id TEXT   NOT NULL REFERENCES reservations (id),
    product_id     TEXT   NOT NULL REFERENCES stock (product_id),
    quantity       BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, product_id)
);
