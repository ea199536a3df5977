-- The outbox as the in-database bus's log: the sequencer numbers committed rows, and readers
-- follow `position` (seq is handed out at insert, and concurrent transactions commit out of
-- seq order). Rows published before the outbox became the log keep their place.
ALTER TABLE outbox ADD COLUMN position BIGINT;
UPDATE outbox SET position = seq WHERE published_at IS NOT NULL;
CREATE UNIQUE INDEX outbox_position ON outbox (position);
CREATE INDEX outbox_unnumbered ON outbox (seq) WHERE position IS NULL;

-- Where each consumer group is in each partition of its topics, written in the transaction
-- that handled the events before it.
CREATE TABLE consumer_positions (
    consumer_group TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    partition_no   BIGINT NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic, partition_no)
);

-- Events that arrived before one they need (a reservation before its order): kept here,
-- out of the way of the events behind them, and handled once an event about the same
-- subject has been.
CREATE TABLE parked_events (
    consumer_group TEXT   NOT NULL,
    event_id       TEXT   NOT NULL,
    subject        TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    partition_no   BIGINT NOT NULL,
    log_offset     BIGINT NOT NULL,
    envelope       TEXT   NOT NULL,
    reason         TEXT   NOT NULL,
    parked_at      BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, event_id)
);
CREATE INDEX parked_events_subject ON parked_events (consumer_group, subject);
