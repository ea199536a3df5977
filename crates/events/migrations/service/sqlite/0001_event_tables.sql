-- Transactional outbox: rows are written in the same transaction as the state change.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    topic        TEXT    NOT NULL,
    event_key    TEXT    NOT NULL,
    envelope     TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    published_at BIGINT
);
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;

-- Inbox: one row per event a consumer group has handled, written with the handler's effects.
CREATE TABLE inbox (
    consumer_group TEXT   NOT NULL,
    event_id       TEXT   NOT NULL,
    handled_at     BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);

-- Dead letters: events a consumer group gave up on, kept with why, until replayed or discarded.
CREATE TABLE dead_letters (
    id             TEXT    PRIMARY KEY,
    consumer_group TEXT    NOT NULL,
    event_id       TEXT    NOT NULL,
    event_type     TEXT    NOT NULL,
    topic          TEXT    NOT NULL,
    partition_no   BIGINT  NOT NULL,
    log_offset     BIGINT  NOT NULL,
    envelope       TEXT    NOT NULL,
    error          TEXT    NOT NULL,
    attempts       BIGINT  NOT NULL,
    status         TEXT    NOT NULL,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);
CREATE INDEX dead_letters_status ON dead_letters (consumer_group, status);
