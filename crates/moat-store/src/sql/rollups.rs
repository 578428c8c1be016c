//! Usage rollups, on every SQL backend: the upsert that adds a batch's row deltas to a tier,
//! and the reads reports make.

use moat_core::rollup::{LATENCY_BUCKETS, RollupKey, Tier, Totals};

use super::statement::{Param, Statement};
use super::to_i64;

/// The columns summed on each row before the latency buckets, in the order [`sums`] gives them.
const SUMMED: [&str; 11] = [
    "requests",
    "errors",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_micro_usd",
    "reference_cost_micro_usd",
    "latency_ms_sum",
];

/// Every summed column's name: [`SUMMED`], the latency buckets, then the time to first
/// token's sum and buckets.
pub(crate) fn summed_columns() -> Vec<String> {
    SUMMED
        .iter()
        .map(|c| (*c).to_owned())
        .chain((0..LATENCY_BUCKETS).map(|i| format!("latency_b{i}")))
        .chain(std::iter::once("ttft_ms_sum".to_owned()))
        .chain((0..LATENCY_BUCKETS).map(|i| format!("ttft_b{i}")))
        .collect()
}

fn sums(t: &Totals) -> Vec<u64> {
    let mut values = vec![
        t.requests,
        t.errors,
        t.cache_hits,
        t.input_tokens,
        t.output_tokens,
        t.cached_tokens,
        t.cache_write_tokens,
        t.reasoning_tokens,
        t.cost_micro_usd,
        t.reference_cost_micro_usd,
        t.latency_ms_sum,
    ];
    values.extend(t.latency_buckets);
    values.push(t.ttft_ms_sum);
    values.extend(t.ttft_buckets);
    values
}

/// Totals from the summed columns, in [`summed_columns`] order.
pub(crate) fn totals_from(values: &[i64]) -> Totals {
    let at = |i: usize| values.get(i).copied().map_or(0, super::to_u64);
    let buckets = |first: usize| std::array::from_fn::<u64, LATENCY_BUCKETS, _>(|i| at(first + i));
    let ttft_at = SUMMED.len() + LATENCY_BUCKETS;
    Totals {
        requests: at(0),
        errors: at(1),
        cache_hits: at(2),
        input_tokens: at(3),
        output_tokens: at(4),
        cached_tokens: at(5),
        cache_write_tokens: at(6),
        reasoning_tokens: at(7),
        cost_micro_usd: at(8),
        reference_cost_micro_usd: at(9),
        latency_ms_sum: at(10),
        latency_buckets: buckets(SUMMED.len()),
        ttft_ms_sum: at(ttft_at),
        ttft_buckets: buckets(ttft_at + 1),
    }
}

/// A tier's table and the column holding its rows' period start.
pub(crate) fn table(tier: Tier) -> (&'static str, &'static str) {
    match tier {
        Tier::Hour => ("usage_rollups", "hour"),
        Tier::Day => ("usage_rollups_daily", "day"),
    }
}

/// One statement adding `rows` to their rollup rows in `tier` (creating the ones that do not
/// exist); each row's key starts at its period in that tier.
pub(crate) fn upsert(tier: Tier, rows: &[(RollupKey, Totals)]) -> Statement {
    let summed = summed_columns();
    let (table, start) = table(tier);
    let mut statement = Statement::new(format!(
        "INSERT INTO {table} ({start}, key_id, user_id, team_id, model, deployment, {}) VALUES ",
        summed.join(", ")
    ));
    for (i, (key, totals)) in rows.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        let mut params: Vec<Param> = vec![
            key.start_ms.into(),
            (&key.key_id).into(),
            (&key.user_id).into(),
            (&key.team_id).into(),
            (&key.model).into(),
            (&key.deployment).into(),
        ];
        params.extend(sums(totals).into_iter().map(|v| Param::from(to_i64(v))));
        statement.row(params);
    }
    let updates: Vec<String> = summed.iter().map(|c| format!("{c} = {table}.{c} + excluded.{c}")).collect();
    statement.push(&format!(
        " ON CONFLICT ({start}, key_id, user_id, team_id, model, deployment) DO UPDATE SET {}",
        updates.join(", ")
    ));
    statement
}

/// What a report groups rollups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// The key.
    Key,
    /// The key's user.
    User,
    /// The team charged.
    Team,
    /// The public model.
    Model,
    /// The deployment.
    Deployment,
    /// The UTC day (its start, Unix milliseconds, as text).
    Day,
    /// The UTC hour (its start, Unix milliseconds, as text).
    Hour,
}

impl Dimension {
    /// The SQL expression of this dimension over a tier's table, whose period start is in
    /// `start`.
    fn expression(self, start: &str) -> String {
        match self {
            Dimension::Key => "key_id".to_owned(),
            Dimension::User => "user_id".to_owned(),
            Dimension::Team => "team_id".to_owned(),
            Dimension::Model => "model".to_owned(),
            Dimension::Deployment => "deployment".to_owned(),
            Dimension::Day => format!("CAST(({start} / 86400000) * 86400000 AS TEXT)"),
            Dimension::Hour => format!("CAST({start} AS TEXT)"),
        }
    }

    /// The name used in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Key => "key",
            Dimension::User => "user",
            Dimension::Team => "team",
            Dimension::Model => "model",
            Dimension::Deployment => "deployment",
            Dimension::Day => "day",
            Dimension::Hour => "hour",
        }
    }

    /// Parses a dimension name.
    pub fn parse(s: &str) -> Option<Dimension> {
        [
            Dimension::Key,
            Dimension::User,
            Dimension::Team,
            Dimension::Model,
            Dimension::Deployment,
            Dimension::Day,
            Dimension::Hour,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The rows of one report over one tier: its rows whose period starts in `[from_ms, to_ms)`,
/// optionally narrowed to one value of a dimension, grouped by `by`.
pub(crate) fn report(
    tier: Tier,
    by: &[Dimension],
    from_ms: i64,
    to_ms: i64,
    only: Option<(Dimension, &str)>,
) -> Statement {
    let (table, start) = table(tier);
    let groups: Vec<String> = by.iter().map(|d| d.expression(start)).collect();
    let sums: Vec<String> = summed_columns().iter().map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)")).collect();
    let select_groups = groups.iter().enumerate().map(|(i, g)| format!("{g} AS g{i}, ")).collect::<String>();
    let mut statement =
        Statement::new(format!("SELECT {select_groups}{} FROM {table} WHERE {start} >= ", sums.join(", ")));
    statement.bind(from_ms).push(&format!(" AND {start} < ")).bind(to_ms);
    if let Some((dimension, value)) = only {
        statement.push(&format!(" AND {} = ", dimension.expression(start))).bind(value);
    }
    if !groups.is_empty() {
        statement.push(&format!(" GROUP BY {}", groups.join(", ")));
    }
    statement
}
