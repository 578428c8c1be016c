-- What each request cost at its deployment's price, in micro-dollars (0 where no price is set,
-- for cache hits, and for records written before costs were kept).
ALTER TABLE usage_records ADD COLUMN cost_micro_usd INTEGER NOT NULL DEFAULT 0;
