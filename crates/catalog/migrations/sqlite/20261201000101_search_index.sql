-- Search through an index: an FTS5 table with the trigram tokenizer over the lower-cased
-- name and description, kept in step with `products` by triggers. It finds the products that
-- hold some of a word's trigrams without reading the others; the exact rules and the
-- relevance are then applied to those alone. Only which products hold a trigram is needed,
-- not where (`detail = none`): a smaller index, and cheaper to query.
--
-- The index refers to products by an integer key, which must never change: a table's implicit
-- rowid may change on VACUUM, so `products` gets an INTEGER PRIMARY KEY (the id stays unique).
CREATE TABLE products_keyed (
    num                INTEGER PRIMARY KEY,
    id                 TEXT   NOT NULL UNIQUE,
    sku                TEXT   NOT NULL UNIQUE,
    name               TEXT   NOT NULL,
    description        TEXT   NOT NULL,
    price_amount       BIGINT NOT NULL,
    currency           TEXT   NOT NULL,
    category           TEXT   NOT NULL,
    attributes         TEXT   NOT NULL,
    search_name        TEXT   NOT NULL,
    search_description TEXT   NOT NULL,
    available          BIGINT NOT NULL DEFAULT 0,
    version            BIGINT NOT NULL,
    archived_at        BIGINT,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
INSERT INTO products_keyed (id, sku, name, description, price_amount, currency, category, attributes,
                            search_name, search_description, available, version, archived_at,
                            created_at, updated_at)
SELECT id, sku, name, description, price_amount, currency, category, attributes, search_name,
       search_description, available, version, archived_at, created_at, updated_at
FROM products ORDER BY created_at, id;
DROP TABLE products;
ALTER TABLE products_keyed RENAME TO products;
CREATE INDEX products_listing ON products (created_at, id);
CREATE INDEX products_price ON products (price_amount, id);
CREATE INDEX products_name ON products (search_name, id);
CREATE INDEX products_category ON products (category);

-- The text is already lower-cased (in Rust, Unicode-aware), so the index keeps case as it is.
CREATE VIRTUAL TABLE product_text USING fts5(
    search_name, search_description,
    content = 'products', content_rowid = 'num',
    tokenize = 'trigram case_sensitive 1', detail = 'none'
);
-- How many products hold each trigram: the rarest ones narrow a typo-tolerant search best.
CREATE VIRTUAL TABLE product_text_terms USING fts5vocab(product_text, 'row');

CREATE TRIGGER product_text_insert AFTER INSERT ON products BEGIN
    INSERT INTO product_text (rowid, search_name, search_description)
    VALUES (new.num, new.search_name, new.search_description);
END;
CREATE TRIGGER product_text_delete AFTER DELETE ON products BEGIN
    INSERT INTO product_text (product_text, rowid, search_name, search_description)
    VALUES ('delete', old.num, old.search_name, old.search_description);
END;
CREATE TRIGGER product_text_update AFTER UPDATE OF search_name, search_description ON products BEGIN
    INSERT INTO product_text (product_text, rowid, search_name, search_description)
    VALUES ('delete', old.num, old.search_name, old.search_description);
    INSERT INTO product_text (rowid, search_name, search_description)
    VALUES (new.num, new.search_name, new.search_description);
END;
INSERT INTO product_text (product_text) VALUES ('rebuild');
