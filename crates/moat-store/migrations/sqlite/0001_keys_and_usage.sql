-- Virtual keys: only a SHA-256 of the secret is stored; the secret is shown once at creation.
CREATE TABLE keys (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT,
    role         TEXT NOT NULL CHECK (role IN ('admin', 'client')),
    secret_hash  BLOB NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    models       TEXT,            -- JSON array of public model names; NULL means every model
    created_at   INTEGER NOT NULL, -- Unix milliseconds
    expires_at   INTEGER,
    revoked_at   INTEGER
);

-- One row per request; ids are UUIDv7 so they sort by time.
CREATE TABLE usage_records (
    id                TEXT PRIMARY KEY,
    created_at        INTEGER NOT NULL,
    key_id            TEXT,
    model             TEXT NOT NULL,
    deployment        TEXT,
    endpoint          TEXT NOT NULL,
    status            INTEGER NOT NULL,
    error_code        TEXT,
    input_tokens      INTEGER NOT NULL,
    output_tokens     INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens  INTEGER NOT NULL,
    estimated         INTEGER NOT NULL,
    streamed          INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER
);

CREATE INDEX usage_records_created_at ON usage_records (created_at);
CREATE INDEX usage_records_key_id ON usage_records (key_id, id);
CREATE INDEX usage_records_model ON usage_records (model, id);
