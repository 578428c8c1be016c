//! Hourly usage rollups, on every SQL backend: the upsert that adds a batch's row deltas, and
//! the reads reports make.

use moat_core::rollup::{LATENCY_BUCKETS, RollupKey, Totals};

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

/// Every summed column's name, latency buckets included.
pub(crate) fn summed_columns() -> Vec<String> {
    SUMMED.iter().map(|c| (*c).to_owned()).chain((0..LATENCY_BUCKETS).map(|i| format!("latency_b{i}"))).collect()
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
    values
}

/// Totals from the summed columns, in [`summed_columns`] order.
pub(crate) fn totals_from(values: &[i64]) -> Totals {
    let at = |i: usize| values.get(i).copied().map_or(0, super::to_u64);
    let mut latency_buckets = [0; LATENCY_BUCKETS];
    for (i, bucket) in latency_buckets.iter_mut().enumerate() {
        *bucket = at(11 + i);
    }
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
        latency_buckets,
    }
}

/// One statement adding `rows` to their rollup rows (creating the ones that do not exist).
pub(crate) fn upsert(rows: &[(RollupKey, Totals)]) -> Statement {
    let summed = summed_columns();
    let mut statement = Statement::new(format!(
        "INSERT INTO usage_rollups (hour, key_id, user_id, team_id, model, deployment, {}) VALUES ",
        summed.join(", ")
    ));
    for (i, (key, totals)) in rows.iter().enumerate() {
        if i > 0 {
            statement.push(", ");
        }
        let mut params: Vec<Param> = vec![
            key.hour_ms.into(),
            (&key.key_id).into(),
            (&key.user_id).into(),
            (&key.team_id).into(),
            (&key.model).into(),
            (&key.deployment).into(),
        ];
        params.extend(sums(totals).into_iter().map(|v| Param::from(to_i64(v))));
        statement.row(params);
    }
    let updates: Vec<String> = summed.iter().map(|c| format!("{c} = usage_rollups.{c} + excluded.{c}")).collect();
    statement.push(&format!(
        " ON CONFLICT (hour, key_id, user_id, team_id, model, deployment) DO UPDATE SET {}",
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
    /// The SQL expression of this dimension over `usage_rollups`.
    fn expression(self) -> &'static str {
        match self {
            Dimension::Key => "key_id",
            Dimension::User => "user_id",
            Dimension::Team => "team_id",
            Dimension::Model => "model",
            Dimension::Deployment => "deployment",
            Dimension::Day => "CAST((hour / 86400000) * 86400000 AS TEXT)",
            Dimension::Hour => "CAST(hour AS TEXT)",
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

/// The rows of one report: rollups from `from_ms` to `to_ms` (hours starting in that span),
/// optionally narrowed to one value of a dimension, grouped by `by`.
pub(crate) fn report(by: &[Dimension], from_ms: i64, to_ms: i64, only: Option<(Dimension, &str)>) -> Statement {
    let groups: Vec<&str> = by.iter().map(|d| d.expression()).collect();
    let sums: Vec<String> = summed_columns().iter().map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)")).collect();
    let select_groups = groups.iter().enumerate().map(|(i, g)| format!("{g} AS g{i}, ")).collect::<String>();
    let mut statement =
        Statement::new(format!("SELECT {select_groups}{} FROM usage_rollups WHERE hour >= ", sums.join(", ")));
    statement.bind(from_ms).push(" AND hour < ").bind(to_ms);
    if let Some((dimension, value)) = only {
        statement.push(&format!(" AND {} = ", dimension.expression())).bind(value);
    }
    if !groups.is_empty() {
        statement.push(&format!(" GROUP BY {}", groups.join(", ")));
    }
    statement
}
