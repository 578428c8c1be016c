-- The identity provider's own ids, for SCIM provisioning (Okta, Entra ID).
ALTER TABLE users ADD COLUMN external_id TEXT;
ALTER TABLE teams ADD COLUMN external_id TEXT;
CREATE INDEX users_external_id ON users (external_id);
CREATE INDEX teams_external_id ON teams (external_id);
