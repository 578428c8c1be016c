-- People and service accounts. E-mail is unique regardless of case.
CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE COLLATE NOCASE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('person', 'service')),
    org_role       TEXT NOT NULL CHECK (org_role IN ('owner', 'admin', 'member', 'viewer')),
    active         INTEGER NOT NULL DEFAULT 1,
    password_hash  TEXT,              -- argon2id PHC string, for local sign-in; NULL otherwise
    created_at     INTEGER NOT NULL,
    deactivated_at INTEGER
);

CREATE TABLE teams (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at INTEGER NOT NULL
);

CREATE TABLE memberships (
    team_id    TEXT NOT NULL REFERENCES teams (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    role       TEXT NOT NULL CHECK (role IN ('team-admin', 'member')),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- A key belongs to a user or a team (or, for keys made before users existed, to neither).
ALTER TABLE keys ADD COLUMN user_id TEXT REFERENCES users (id);
ALTER TABLE keys ADD COLUMN team_id TEXT REFERENCES teams (id);
CREATE INDEX keys_user ON keys (user_id);
CREATE INDEX keys_team ON keys (team_id);

-- Append-only and hash-chained: each row's hash covers its fields and the previous row's hash.
CREATE TABLE audit_log (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    at            INTEGER NOT NULL,
    actor_user_id TEXT,
    actor_key_id  TEXT,
    source        TEXT,
    action        TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    before        TEXT,
    after         TEXT,
    prev_hash     BLOB NOT NULL,
    hash          BLOB NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, seq);
