CREATE TABLE products (
    id                 TEXT   PRIMARY KEY,
    sku                TEXT   NOT NULL UNIQUE,
    name               TEXT   NOT NULL,
    description        TEXT   NOT NULL,
    price_amount       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    category           TEXT   NOT NULL,
    attributes         TEXT   NOT NULL,
    -- Lower-cased copies (Unicode-aware, done in Rust) that search and name ordering use.
    search_name        TEXT   NOT NULL,
    search_description TEXT   NOT NULL,
    -- Read model fed by inventory events: units that can be ordered now.
    available          BIGINT NOT NULL DEFAULT 0,
    version            BIGINT NOT NULL,
    archived_at        BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX products_listing ON products (created_at, id);
CREATE INDEX products_price ON products (price_amount, id);
CREATE INDEX products_name ON products (search_name, id);
CREATE INDEX products_category ON products (category);
