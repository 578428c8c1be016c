-- Spend caps per key, user, team or the whole org, each over a calendar period in a time zone.
CREATE TABLE budgets (
    id               TEXT COLLATE "C" PRIMARY KEY,
    scope            TEXT NOT NULL CHECK (scope IN ('key', 'user', 'team', 'org')),
    scope_id         TEXT NOT NULL,             -- '' for the org
    amount_micro_usd BIGINT NOT NULL CHECK (amount_micro_usd >= 0),
    period           TEXT NOT NULL CHECK (period IN ('day', 'week', 'month', 'none')),
    time_zone        TEXT NOT NULL,
    thresholds       TEXT NOT NULL,             -- JSON array of alert percentages
    reset_at         BIGINT,                   -- spend before this instant no longer counts
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (scope, scope_id, period)
);

-- Request, token and concurrency limits per key, user, team or model.
CREATE TABLE limits (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    scope               TEXT NOT NULL CHECK (scope IN ('key', 'user', 'team', 'model')),
    scope_id            TEXT NOT NULL,
    requests_per_minute BIGINT,
    tokens_per_minute   BIGINT,
    concurrent_requests BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    UNIQUE (scope, scope_id)
);

-- One row per alert sent: a threshold fires once per budget period, whichever replica sees it.
CREATE TABLE budget_alerts (
    budget_id    TEXT NOT NULL,
    period_start BIGINT NOT NULL,
    threshold    BIGINT NOT NULL,
    sent_at      BIGINT NOT NULL,
    PRIMARY KEY (budget_id, period_start, threshold)
);

-- Spend of one user or team over a period is summed through their keys.
CREATE INDEX usage_records_key_created ON usage_records (key_id, created_at);
