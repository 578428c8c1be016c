-- Hourly sums of usage records by key, user, team, model and deployment: what reports,
-- dashboards and chargeback read. Kept by adding each batch's new records to their rows in the
-- same transaction that stores them, so a row always equals the records it covers. Absent ids
-- are '' so the key is total. latency_bN counts requests per latency bucket (see
-- moat_core::rollup::LATENCY_BOUNDS_MS).
CREATE TABLE usage_rollups (
    hour                     INTEGER NOT NULL,
    key_id                   TEXT NOT NULL,
    user_id                  TEXT NOT NULL,
    team_id                  TEXT NOT NULL,
    model                    TEXT NOT NULL,
    deployment               TEXT NOT NULL,
    requests                 INTEGER NOT NULL,
    errors                   INTEGER NOT NULL,
    cache_hits               INTEGER NOT NULL,
    input_tokens             INTEGER NOT NULL,
    output_tokens            INTEGER NOT NULL,
    cached_tokens            INTEGER NOT NULL,
    cache_write_tokens       INTEGER NOT NULL,
    reasoning_tokens         INTEGER NOT NULL,
    cost_micro_usd           INTEGER NOT NULL,
    reference_cost_micro_usd INTEGER NOT NULL,
    latency_ms_sum           INTEGER NOT NULL,
    latency_b0  INTEGER NOT NULL DEFAULT 0,
    latency_b1  INTEGER NOT NULL DEFAULT 0,
    latency_b2  INTEGER NOT NULL DEFAULT 0,
    latency_b3  INTEGER NOT NULL DEFAULT 0,
    latency_b4  INTEGER NOT NULL DEFAULT 0,
    latency_b5  INTEGER NOT NULL DEFAULT 0,
    latency_b6  INTEGER NOT NULL DEFAULT 0,
    latency_b7  INTEGER NOT NULL DEFAULT 0,
    latency_b8  INTEGER NOT NULL DEFAULT 0,
    latency_b9  INTEGER NOT NULL DEFAULT 0,
    latency_b10 INTEGER NOT NULL DEFAULT 0,
    latency_b11 INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, key_id, user_id, team_id, model, deployment)
);
