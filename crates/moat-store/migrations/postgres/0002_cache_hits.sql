-- A usage record answered from the response cache: no deployment generated it. Added to the
-- partitioned parent, so every month's partition has it.
ALTER TABLE usage_records ADD COLUMN cache_hit BOOLEAN NOT NULL DEFAULT false;
