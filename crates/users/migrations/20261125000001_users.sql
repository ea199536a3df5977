CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    -- Normalised to lower case, so uniqueness ignores case.
    email         TEXT   NOT NULL UNIQUE,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    -- Comma-separated role names.
    roles         TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- A family is one login session: every refresh token rotated from one login shares it, so
-- reuse of a rotated token can revoke the whole session.
CREATE TABLE refresh_token_families (
    id             TEXT   PRIMARY KEY,
    user_id        TEXT   NOT NULL REFERENCES users (id),
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    revoked_reason TEXT
);
CREATE INDEX refresh_token_families_user ON refresh_token_families (user_id);

-- Only the SHA-256 of a refresh token is stored.
CREATE TABLE refresh_tokens (
    token_hash TEXT   PRIMARY KEY,
    family_id  TEXT   NOT NULL REFERENCES refresh_token_families (id),
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    rotated_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
