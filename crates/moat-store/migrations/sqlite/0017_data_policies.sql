-- A team's data policy as the admin API set it: which deployments its traffic may reach and
-- what happens to credentials in its prompts (JSON, moat_core::Policy). A team without a row
-- follows [policy] in the config.
CREATE TABLE team_policies (
    team_id TEXT PRIMARY KEY REFERENCES teams (id) ON DELETE CASCADE,
    policy TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- What the data policy did to each request: where its deployment runs, and the credentials
-- found in it by kind (JSON object of counts; never a value) with what was done about them.
ALTER TABLE usage_records ADD COLUMN deployment_location TEXT;
ALTER TABLE usage_records ADD COLUMN secrets_found TEXT;
ALTER TABLE usage_records ADD COLUMN secrets_action TEXT;
