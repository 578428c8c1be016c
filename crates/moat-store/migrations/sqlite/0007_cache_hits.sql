-- A usage record answered from the response cache: no deployment generated it.
ALTER TABLE usage_records ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0;
