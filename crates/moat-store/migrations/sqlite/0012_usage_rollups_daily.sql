-- The daily tier of the usage rollups: the same sums as usage_rollups, by UTC day (its start,
-- Unix milliseconds), kept in the same transaction as the hourly rows. Reports read whole days
-- here and only their edge hours from usage_rollups, so a month is ~30 rows per series.
CREATE TABLE usage_rollups_daily (
    day                      INTEGER NOT NULL,
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
    PRIMARY KEY (day, key_id, user_id, team_id, model, deployment)
);

-- Existing hours, summed into their days.
INSERT INTO usage_rollups_daily
SELECT (hour / 86400000) * 86400000, key_id, user_id, team_id, model, deployment,
       SUM(requests), SUM(errors), SUM(cache_hits), SUM(input_tokens), SUM(output_tokens),
       SUM(cached_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens), SUM(cost_micro_usd),
       SUM(reference_cost_micro_usd), SUM(latency_ms_sum),
       SUM(latency_b0), SUM(latency_b1), SUM(latency_b2), SUM(latency_b3), SUM(latency_b4),
       SUM(latency_b5), SUM(latency_b6), SUM(latency_b7), SUM(latency_b8), SUM(latency_b9),
       SUM(latency_b10), SUM(latency_b11)
FROM usage_rollups
GROUP BY (hour / 86400000) * 86400000, key_id, user_id, team_id, model, deployment;
