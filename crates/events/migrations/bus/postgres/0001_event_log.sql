-- The in-database event bus: an append-only log read by consumer groups at their own offsets.
CREATE TABLE event_log (
    position    BIGSERIAL PRIMARY KEY,
    topic       TEXT    NOT NULL,
    event_key   TEXT    NOT NULL,
    event_id    TEXT    NOT NULL,
    envelope    TEXT    NOT NULL,
    appended_at BIGINT  NOT NULL
);
CREATE INDEX event_log_topic ON event_log (topic, position);

CREATE TABLE consumer_offsets (
    consumer_group TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic)
);
