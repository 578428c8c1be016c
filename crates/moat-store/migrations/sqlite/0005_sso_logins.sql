-- SSO sign-ins in progress: the state (hashed), the nonce and the PKCE verifier, for the
-- minutes between the redirect to the identity provider and its callback. Single use.
CREATE TABLE sso_logins (
    state_hash BLOB PRIMARY KEY,
    nonce      TEXT NOT NULL,
    verifier   TEXT NOT NULL,
    next       TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
