-- Who a request is charged to, frozen when it was made (memberships change; chargeback must
-- not), and what it would have cost at the reference (frontier) model's list price.
ALTER TABLE usage_records ADD COLUMN user_id TEXT;
ALTER TABLE usage_records ADD COLUMN team_id TEXT;
ALTER TABLE usage_records ADD COLUMN reference_cost_micro_usd INTEGER NOT NULL DEFAULT 0;
