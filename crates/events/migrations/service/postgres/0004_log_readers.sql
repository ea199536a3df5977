-- With the in-database bus, how far each consumer group has read this database's outbox
-- (its log): written by the readers, wherever they run, so that the log's retention
-- (`events::retention`) never prunes what a group has not read.
CREATE TABLE log_readers (
    consumer_group TEXT   NOT NULL,
    topic          TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (consumer_group, topic)
);
