-- What orders knows of the catalog, from its events: enough to price and validate lines.
CREATE TABLE catalog_products (
    product_id TEXT    PRIMARY KEY,
    sku        TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    price      BIGINT  NOT NULL,
    currency   TEXT    NOT NULL,
    archived   BIGINT  NOT NULL DEFAULT 0,
    version    BIGINT  NOT NULL
);

CREATE TABLE orders (
    id               TEXT   PRIMARY KEY,
    customer_id      TEXT   NOT NULL,
    status           TEXT   NOT NULL,
    cancel_reason    TEXT,
    total            BIGINT NOT NULL,
    currency         TEXT   NOT NULL,
    shipping_address TEXT   NOT NULL,
    idempotency_key  TEXT   NOT NULL,
    request_hash     TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (customer_id, idempotency_key)
);
CREATE INDEX orders_customer ON orders (customer_id, id);

CREATE TABLE order_lines (
    order_id   TEXT   NOT NULL REFERENCES orders (id),
    line_no    BIGINT NOT NULL,
    product_id TEXT   NOT NULL,
    sku        TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    unit_price BIGINT NOT NULL,
    quantity   BIGINT NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

-- Every step of the saga for an order, with the event that carried it.
CREATE TABLE order_timeline (
    id       TEXT   PRIMARY KEY,
    order_id TEXT   NOT NULL REFERENCES orders (id),
    step     TEXT   NOT NULL,
    detail   TEXT   NOT NULL,
    event_id TEXT,
    at       BIGINT NOT NULL
);
CREATE INDEX order_timeline_order ON order_timeline (order_id, id);
