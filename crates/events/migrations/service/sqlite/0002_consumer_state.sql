-- The outbox is the in-database bus's log as it is: SQLite has one writer, so rows commit
-- in seq order and readers follow seq.

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
