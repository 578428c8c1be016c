-- Hourly sums of usage records by key, user, team, model and deployment: what reports,
-- dashboards and chargeback read. Kept by adding each batch's new records to their rows in the
-- same transaction that stores them, so a row always equals the records it covers. Absent ids
-- are '' so the key is total. latency_bN counts requests per latency bucket (see
-- moat_core::rollup::LATENCY_BOUNDS_MS).
CREATE TABLE usage_rollups (
    hour                     BIGINT NOT NULL,
    key_id                   TEXT COLLATE "C" NOT NULL,
    user_id                  TEXT COLLATE "C" NOT NULL,
    team_id                  TEXT COLLATE "C" NOT NULL,
    model                    TEXT NOT NULL,
    deployment               TEXT NOT NULL,
    requests                 BIGINT NOT NULL,
    errors                   BIGINT NOT NULL,
    cache_hits               BIGINT NOT NULL,
    input_tokens             BIGINT NOT NULL,
    output_tokens            BIGINT NOT NULL,
    cached_tokens            BIGINT NOT NULL,
    cache_write_tokens       BIGINT NOT NULL,
    reasoning_tokens         BIGINT NOT NULL,
    cost_micro_usd           BIGINT NOT NULL,
    reference_cost_micro_usd BIGINT NOT NULL,
    latency_ms_sum           BIGINT NOT NULL,
    latency_b0  BIGINT NOT NULL DEFAULT 0,
    latency_b1  BIGINT NOT NULL DEFAULT 0,
    latency_b2  BIGINT NOT NULL DEFAULT 0,
    latency_b3  BIGINT NOT NULL DEFAULT 0,
    latency_b4  BIGINT NOT NULL DEFAULT 0,
    latency_b5  BIGINT NOT NULL DEFAULT 0,
    latency_b6  BIGINT NOT NULL DEFAULT 0,
    latency_b7  BIGINT NOT NULL DEFAULT 0,
    latency_b8  BIGINT NOT NULL DEFAULT 0,
    latency_b9  BIGINT NOT NULL DEFAULT 0,
    latency_b10 BIGINT NOT NULL DEFAULT 0,
    latency_b11 BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, key_id, user_id, team_id, model, deployment)
);
