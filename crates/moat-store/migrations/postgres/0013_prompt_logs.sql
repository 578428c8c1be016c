-- Data keys for encryption at rest, each stored only wrapped (AES-256-GCM) by a master key
-- that never reaches the database; master_key_id is its fingerprint. The newest key not
-- retired seals new values; `moat secrets rotate` retires the rest.
CREATE TABLE data_keys (
    id TEXT PRIMARY KEY,
    master_key_id TEXT NOT NULL,
    wrapped BYTEA NOT NULL,
    created_at_ms BIGINT NOT NULL,
    retired_at_ms BIGINT
);

-- Prompts and completions of teams whose data policy logs them in full, sealed under a data
-- key, kept until expires_at_ms.
CREATE TABLE prompt_logs (
    request_id TEXT PRIMARY KEY,
    team_id TEXT,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    data_key_id TEXT NOT NULL REFERENCES data_keys (id),
    sealed BYTEA NOT NULL
);
CREATE INDEX prompt_logs_by_expiry ON prompt_logs (expires_at_ms);
CREATE INDEX prompt_logs_by_data_key ON prompt_logs (data_key_id);
