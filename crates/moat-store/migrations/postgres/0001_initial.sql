-- moat's schema on PostgreSQL: the same tables as on SQLite, in one first migration.
-- Times are Unix milliseconds (BIGINT); ids compare byte-wise (COLLATE "C") so that
-- UUIDv7 ids sort by time whatever the database's locale. E-mails and team names are
-- unique regardless of case through indexes on lower(...).

CREATE TABLE users (
    id             TEXT COLLATE "C" PRIMARY KEY,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('person', 'service')),
    org_role       TEXT NOT NULL CHECK (org_role IN ('owner', 'admin', 'member', 'viewer')),
    active         BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash  TEXT,
    created_at     BIGINT NOT NULL,
    deactivated_at BIGINT,
    external_id    TEXT
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_external_id ON users (external_id);

CREATE TABLE teams (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    external_id TEXT
);
CREATE UNIQUE INDEX teams_name ON teams (lower(name));
CREATE INDEX teams_external_id ON teams (external_id);

CREATE TABLE memberships (
    team_id    TEXT COLLATE "C" NOT NULL REFERENCES teams (id),
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('team-admin', 'member')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Virtual keys: only a SHA-256 of the secret is stored; the secret is shown once at creation.
CREATE TABLE keys (
    id          TEXT COLLATE "C" PRIMARY KEY,
    name        TEXT NOT NULL,
    owner       TEXT,
    role        TEXT NOT NULL CHECK (role IN ('admin', 'client')),
    secret_hash BYTEA NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    models      TEXT,             -- JSON array of public model names; NULL means every model
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT,
    user_id     TEXT COLLATE "C" REFERENCES users (id),
    team_id     TEXT COLLATE "C" REFERENCES teams (id)
);
CREATE INDEX keys_user ON keys (user_id);
CREATE INDEX keys_team ON keys (team_id);

-- One row per request, partitioned by month of created_at: retention drops whole months.
-- moat creates each month's partition before the first record that needs it; the default
-- partition only catches instants outside the years 1 to 9999.
CREATE TABLE usage_records (
    id                 TEXT COLLATE "C" NOT NULL,
    created_at         BIGINT NOT NULL,
    key_id             TEXT COLLATE "C",
    model              TEXT NOT NULL,
    deployment         TEXT,
    endpoint           TEXT NOT NULL,
    status             BIGINT NOT NULL,
    error_code         TEXT,
    input_tokens       BIGINT NOT NULL,
    output_tokens      BIGINT NOT NULL,
    cached_tokens      BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    reasoning_tokens   BIGINT NOT NULL,
    estimated          BOOLEAN NOT NULL,
    streamed           BOOLEAN NOT NULL,
    latency_ms         BIGINT NOT NULL,
    ttft_ms            BIGINT,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE usage_records_default PARTITION OF usage_records DEFAULT;
CREATE INDEX usage_records_created_at ON usage_records (created_at);
CREATE INDEX usage_records_key_id ON usage_records (key_id, id);
CREATE INDEX usage_records_model ON usage_records (model, id);

-- Append-only and hash-chained: each row's hash covers its fields and the previous row's hash.
CREATE TABLE audit_log (
    seq           BIGINT PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    at            BIGINT NOT NULL,
    actor_user_id TEXT,
    actor_key_id  TEXT,
    source        TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    before        TEXT,
    after         TEXT,
    prev_hash     BYTEA NOT NULL,
    hash          BYTEA NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, seq);

-- Browser sessions: only a hash of the cookie's secret is stored.
CREATE TABLE sessions (
    id_hash      BYTEA PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    csrf         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

-- OAuth 2.0 device authorization grants (RFC 8628) for `moat login`.
CREATE TABLE device_grants (
    device_code_hash BYTEA PRIMARY KEY,
    user_code        TEXT NOT NULL UNIQUE,
    client_name      TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    interval_secs    BIGINT NOT NULL,
    last_polled_at   BIGINT,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'issued')),
    user_id          TEXT COLLATE "C" REFERENCES users (id)
);

-- SSO sign-ins in progress: the state (hashed), the nonce and the PKCE verifier. Single use.
CREATE TABLE sso_logins (
    state_hash BYTEA PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    next       TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Invitations: a link with a random token (only its hash is kept) that lets one person join
-- with a given role and team, once, before it expires.
CREATE TABLE invitations (
    id          TEXT COLLATE "C" PRIMARY KEY,
    token_hash  BYTEA NOT NULL UNIQUE,
    email       TEXT NOT NULL,
    org_role    TEXT NOT NULL CHECK (org_role IN ('owner', 'admin', 'member', 'viewer')),
    team_id     TEXT COLLATE "C" REFERENCES teams (id),
    team_role   TEXT CHECK (team_role IN ('team-admin', 'member')),
    invited_by  TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    accepted_at BIGINT,
    revoked_at  BIGINT
);
CREATE INDEX invitations_email ON invitations (lower(email));
