-- Invitations: a link with a random token (only its hash is kept) that lets one person join
-- with a given role and team, once, before it expires.
CREATE TABLE invitations (
    id          TEXT PRIMARY KEY,
    token_hash  BLOB NOT NULL UNIQUE,
    email       TEXT NOT NULL COLLATE NOCASE,
    org_role    TEXT NOT NULL CHECK (org_role IN ('owner', 'admin', 'member', 'viewer')),
    team_id     TEXT REFERENCES teams (id),
    team_role   TEXT CHECK (team_role IN ('team-admin', 'member')),
    invited_by  TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    accepted_at INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX invitations_email ON invitations (email);
