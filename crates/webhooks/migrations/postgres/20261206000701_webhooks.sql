-- Endpoints integrators registered. `enabled` is the operator's choice; the breaker turns it
-- off with a reason (`disabled_reason`) after `failing_since` has lasted too long, and events
-- keep being recorded for an endpoint it disabled, to go out once it is enabled again.
-- `lease_until`: the instance sending to it holds it until then (one sender per endpoint).
CREATE TABLE webhook_endpoints (
    id              TEXT   PRIMARY KEY,
    url             TEXT   NOT NULL,
    description     TEXT   NOT NULL,
    event_types     TEXT   NOT NULL,
    enabled         BIGINT NOT NULL,
    disabled_reason TEXT,
    failing_since   BIGINT,
    lease_until     BIGINT NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Signing secrets: the current one has no expiry; a rotated-out one signs too until it expires.
CREATE TABLE webhook_secrets (
    id          TEXT   PRIMARY KEY,
    endpoint_id TEXT   NOT NULL REFERENCES webhook_endpoints (id),
    secret      TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

-- Each event some endpoint wanted, once, as delivered (CloudEvents structured JSON). Its id is
-- the deliveries' `webhook-id`.
CREATE TABLE webhook_messages (
    event_id   TEXT   PRIMARY KEY,
    event_type TEXT   NOT NULL,
    event_time BIGINT NOT NULL,
    body       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhook_messages_time ON webhook_messages (event_time);

-- One message to one endpoint: `pending` until a 2xx answer, then `delivered`.
CREATE TABLE webhook_deliveries (
    id               TEXT   PRIMARY KEY,
    endpoint_id      TEXT   NOT NULL REFERENCES webhook_endpoints (id),
    event_id         TEXT   NOT NULL REFERENCES webhook_messages (event_id),
    event_type       TEXT   NOT NULL,
    event_time       BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    last_status_code BIGINT,
    last_error       TEXT,
    last_latency_ms  BIGINT,
    delivered_at     BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint_id, status, event_time, id);

-- Every try of a delivery and how the endpoint answered.
CREATE TABLE webhook_attempts (
    id           TEXT   PRIMARY KEY,
    delivery_id  TEXT   NOT NULL REFERENCES webhook_deliveries (id),
    status_code  BIGINT,
    error        TEXT,
    latency_ms   BIGINT NOT NULL,
    attempted_at BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);
