//! `/admin/v1/reports`: spend, tokens, savings and latency from the hourly rollups, grouped by
//! team, user, key, model, deployment, day or hour; and the monthly chargeback export.
//!
//! Reports read rollups, never raw records: a row per hour, key, model and deployment, so they
//! grow with the traffic's spread rather than its volume, and outlive the raw records'
//! retention. Periods are whole UTC hours: an hour counts when it starts in the span. Dates
//! and months are midnights in `tz` (default UTC).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use moat_core::price::allocate;
use moat_core::rollup::{HOUR_MS, Totals};
use moat_core::{Action, ErrorCode};
use moat_store::Dimension;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, store_failed};
use crate::admission::dollars;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms, parse_rfc3339_ms};

/// Query of `GET /admin/v1/reports/usage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportQuery {
    /// Comma-separated dimensions; none gives one total row.
    #[serde(default)]
    by: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD` (midnight in `tz`); default: the start of this month in `tz`.
    #[serde(default)]
    from: Option<String>,
    /// RFC 3339 or `YYYY-MM-DD`; default: now.
    #[serde(default)]
    to: Option<String>,
    /// Only this team's usage.
    #[serde(default)]
    team: Option<String>,
    /// Only this model's usage.
    #[serde(default)]
    model: Option<String>,
    /// Only this user's usage (for those who do not read the organisation: always their own).
    #[serde(default)]
    user: Option<String>,
    /// At most this many rows, largest cost first (default: all).
    #[serde(default)]
    limit: Option<usize>,
    /// The IANA time zone dates and months are in (default UTC).
    #[serde(default)]
    tz: Option<String>,
}

/// The time zone a report's dates are in: `tz`, or UTC.
fn zone(tz: Option<&str>) -> Result<jiff::tz::TimeZone, ApiError> {
    match tz {
        None => Ok(jiff::tz::TimeZone::UTC),
        Some(name) => jiff::tz::TimeZone::get(name)
            .map_err(|_| invalid(format!("`{name}` is not an IANA time zone like Europe/Paris"), "tz")),
    }
}

/// `2026-11-01` (midnight in `tz`) or an RFC 3339 instant, as Unix milliseconds.
fn instant(text: &str, param: &'static str, tz: &jiff::tz::TimeZone) -> Result<i64, ApiError> {
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(tz.clone())
            .map(|z| z.timestamp().as_millisecond())
            .map_err(|_| invalid(format!("`{param}` is out of range"), param));
    }
    parse_rfc3339_ms(text)
        .ok_or_else(|| invalid(format!("`{param}` must be a date (2026-11-01) or an RFC 3339 time"), param))
}

/// The start of the month in `tz` holding `now_ms`.
fn month_start(tz: &jiff::tz::TimeZone, now_ms: i64) -> i64 {
    moat_core::Period::Month.window(tz, now_ms).start_ms
}

/// The first hour starting at or after `at_ms`: the hours starting in `[from, to)` are
/// those from `hour_ceil(from)` up to `hour_ceil(to)`, so consecutive spans tile.
fn hour_ceil(at_ms: i64) -> i64 {
    at_ms.saturating_add(HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS
}

fn dimensions(by: Option<&str>) -> Result<Vec<Dimension>, ApiError> {
    by.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            Dimension::parse(name).ok_or_else(|| {
                invalid(format!("`{name}` is not a dimension: team, user, key, model, deployment, day or hour"), "by")
            })
        })
        .collect()
}

/// The figures of one report row.
fn figures(totals: &Totals) -> Value {
    let savings = totals.savings_micro_usd();
    let percent = if totals.reference_cost_micro_usd == 0 {
        Value::Null
    } else {
        // Display only; the amounts themselves are exact integers.
        #[allow(clippy::cast_precision_loss)]
        let share = savings as f64 * 100.0 / totals.reference_cost_micro_usd as f64;
        json!((share * 10.0).round() / 10.0)
    };
    json!({
        "requests": totals.requests,
        "errors": totals.errors,
        "cache_hits": totals.cache_hits,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cached_tokens": totals.cached_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "cost_micro_usd": totals.cost_micro_usd,
        "cost_usd": dollars(totals.cost_micro_usd),
        "reference_cost_micro_usd": totals.reference_cost_micro_usd,
        "reference_cost_usd": dollars(totals.reference_cost_micro_usd),
        "savings_micro_usd": savings,
        "savings_usd": signed_dollars(savings),
        "savings_percent": percent,
        "latency_p50_ms": totals.latency_quantile_ms(0.5),
        "latency_p95_ms": totals.latency_quantile_ms(0.95),
        "latency_p99_ms": totals.latency_quantile_ms(0.99),
        "ttft_p50_ms": totals.ttft_quantile_ms(0.5),
        "ttft_p95_ms": totals.ttft_quantile_ms(0.95),
    })
}

fn signed_dollars(micro: i64) -> String {
    let text = dollars(micro.unsigned_abs());
    if micro < 0 { format!("-{text}") } else { text }
}

/// Names for the ids a report's `rows` show (grouped `by`): team names, user e-mails, key
/// names. Keys and people are looked up for those rows only.
async fn names(state: &AppState, by: &[Dimension], rows: &[&Vec<String>]) -> Result<HashMap<String, String>, ApiError> {
    let mut names = HashMap::new();
    let shown = |wanted: Dimension| {
        by.iter().position(|d| *d == wanted).map(|i| rows.iter().filter_map(move |groups| groups.get(i)))
    };
    if by.contains(&Dimension::Team) {
        names.extend(super::names::team_names(state).await?);
    }
    if let Some(ids) = shown(Dimension::Key) {
        names.extend(super::names::key_names(state, ids.map(String::as_str)).await?);
    }
    if let Some(ids) = shown(Dimension::User) {
        names.extend(super::names::user_emails(state, ids.map(String::as_str)).await?);
    }
    Ok(names)
}

/// `GET /admin/v1/reports/usage`.
pub(crate) async fn usage_report(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    // Those who do not read the organisation read their own usage, and only that.
    let own = match caller.must(&Action::ReadOrg) {
        Ok(()) => None,
        Err(denied) => {
            let Some(me) = caller.actor.user_id.clone() else { return Err(denied) };
            if query.team.is_some() || query.model.is_some() || query.user.as_deref().is_some_and(|u| u != me) {
                return Err(ApiError::new(ErrorCode::PermissionDenied, "your role reads only your own usage"));
            }
            Some(me)
        }
    };
    let by = dimensions(query.by.as_deref())?;
    let now = now_ms();
    let tz = zone(query.tz.as_deref())?;
    let from =
        query.from.as_deref().map(|t| instant(t, "from", &tz)).transpose()?.unwrap_or_else(|| month_start(&tz, now));
    let to = query.to.as_deref().map(|t| instant(t, "to", &tz)).transpose()?.unwrap_or(now);
    if to <= from {
        return Err(invalid("`to` must be after `from`", "to"));
    }
    // The hours starting in the span (so `to = now` includes this hour).
    let (from_hour, to_hour) = (hour_ceil(from), hour_ceil(to));
    let user = own.as_ref().or(query.user.as_ref());
    let only = match (&query.team, &query.model, user) {
        (Some(team), None, None) => Some((Dimension::Team, team.as_str())),
        (None, Some(model), None) => Some((Dimension::Model, model.as_str())),
        (None, None, Some(user)) => Some((Dimension::User, user.as_str())),
        (None, None, None) => None,
        _ => return Err(invalid("narrow by one of `team`, `model` or `user`", "team")),
    };
    let (grouped, mut pools) = measured_rows(&state, &by, from_hour, to_hour, only, now).await?;
    if own.is_some() {
        // A pool's hours and tokens are the organisation's figures, not one person's.
        pools.clear();
    }
    let mut total = Totals::default();
    grouped.iter().for_each(|(_, totals, _)| total.add(totals));
    let total_measured: u64 = grouped.iter().map(|(_, _, measured)| measured).sum();
    let rows: Vec<(Vec<String>, Totals)> = grouped.iter().map(|(k, t, _)| (k.clone(), *t)).collect();
    let measured_of: Vec<u64> = grouped.iter().map(|(_, _, measured)| *measured).collect();
    let limit = query.limit.unwrap_or(usize::MAX);
    let shown: Vec<&Vec<String>> = rows.iter().take(limit).map(|(groups, _)| groups).collect();
    let names = names(&state, &by, &shown).await?;
    let data: Vec<Value> = rows
        .iter()
        .zip(&measured_of)
        .take(limit)
        .map(|((groups, totals), measured)| {
            let mut row = figures(totals);
            if !pools.is_empty() {
                with_measured(&mut row, totals, *measured);
            }
            with_comparisons(&mut row, &state.references, totals);
            for (dimension, value) in by.iter().zip(groups) {
                let shown = match dimension {
                    Dimension::Day | Dimension::Hour => json!(value.parse::<i64>().map(format_ms).unwrap_or_default()),
                    _ if value.is_empty() => Value::Null,
                    _ => json!(value),
                };
                row[dimension.as_str()] = shown;
                if let Some(name) = names.get(value) {
                    row[format!("{}_name", dimension.as_str())] = json!(name);
                }
            }
            row
        })
        .collect();
    let reference = state.references.first().map(|r| json!({ "model": r.model, "provider": r.provider }));
    let mut total_figures = figures(&total);
    if !pools.is_empty() {
        with_measured(&mut total_figures, &total, total_measured);
    }
    with_comparisons(&mut total_figures, &state.references, &total);
    Ok(Json(json!({
        "from": format_ms(from_hour),
        "to": format_ms(to_hour),
        "tz": tz.iana_name().unwrap_or("UTC"),
        "by": by.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "reference": reference,
        "data": data,
        "total": total_figures,
        "pools": pools.iter().map(Pool::json).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// A report's rows, largest cost first: each group's totals and its cost at measured
/// throughput, with the GPU pools behind them. Rows are read by group and deployment, so each
/// pool's hours are charged to the rows that used it, by tokens.
async fn measured_rows(
    state: &AppState,
    by: &[Dimension],
    from_hour: i64,
    to_hour: i64,
    only: Option<(Dimension, &str)>,
    now: i64,
) -> Result<(Vec<(Vec<String>, Totals, u64)>, Vec<Pool>), ApiError> {
    let mut fine_by = by.to_vec();
    let deployment_at = match by.iter().position(|d| *d == Dimension::Deployment) {
        Some(at) => at,
        None => {
            fine_by.push(Dimension::Deployment);
            fine_by.len() - 1
        }
    };
    let mut fine = state.store.report(&fine_by, from_hour, to_hour, only).await.map_err(store_failed)?;
    // A fixed order, for the cumulative shares below.
    fine.sort_by(|a, b| a.0.cmp(&b.0));
    let pools = pools(state, from_hour, to_hour.min(now.max(from_hour))).await?;
    // Per pool: tokens and cost shared out so far. Each row's share is the rounded cumulative
    // share minus what was already given, so the shares add up to the pool's cost exactly.
    let mut shared: Vec<(u64, u64)> = vec![(0, 0); pools.len()];
    let mut grouped: Vec<(Vec<String>, Totals, u64)> = Vec::new();
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    for (groups, totals) in &fine {
        let key: Vec<String> = groups[..by.len()].to_vec();
        let deployment = &groups[deployment_at];
        let measured = match pools.iter().position(|p| p.name == *deployment) {
            Some(at) => {
                let (tokens, given) = &mut shared[at];
                *tokens += served(totals);
                let due = allocate(pools[at].period_cost, *tokens, pools[at].tokens);
                let share = due.saturating_sub(*given);
                *given = due;
                share
            }
            None => totals.cost_micro_usd,
        };
        match index.get(&key) {
            Some(&at) => {
                grouped[at].1.add(totals);
                grouped[at].2 += measured;
            }
            None => {
                index.insert(key.clone(), grouped.len());
                grouped.push((key, *totals, measured));
            }
        }
    }
    grouped.sort_by(|a, b| b.1.cost_micro_usd.cmp(&a.1.cost_micro_usd).then(b.1.requests.cmp(&a.1.requests)));
    Ok((grouped, pools))
}

/// Tokens a deployment served for a row: what its throughput is measured in.
fn served(totals: &Totals) -> u64 {
    totals.input_tokens.saturating_add(totals.output_tokens)
}

/// A self-hosted GPU pool over a report's period: what its hours cost, and what it served.
#[derive(Debug)]
struct Pool {
    name: String,
    gpus: u32,
    tokens_per_hour: u64,
    period_ms: i64,
    /// Its GPUs' hours over the period, micro-dollars.
    period_cost: u64,
    /// Input plus output tokens it served in the period (within the report's narrowing).
    tokens: u64,
}

impl Pool {
    fn json(&self) -> Value {
        let hours = self.period_ms as f64 / HOUR_MS as f64;
        let capacity = self.tokens_per_hour as f64 * hours;
        let per_mtok = if self.tokens == 0 {
            Value::Null
        } else {
            json!(dollars(allocate(self.period_cost, 1_000_000, self.tokens)))
        };
        json!({
            "deployment": self.name,
            "gpus": self.gpus,
            "gpu_hours": (hours * f64::from(self.gpus) * 100.0).round() / 100.0,
            "period_cost_micro_usd": self.period_cost,
            "period_cost_usd": dollars(self.period_cost),
            "tokens": self.tokens,
            // Display only: served tokens against the rated throughput.
            "utilisation_percent": if capacity > 0.0 { json!((self.tokens as f64 * 1000.0 / capacity).round() / 10.0) } else { Value::Null },
            "measured_cost_per_mtok_usd": per_mtok,
        })
    }
}

/// The GPU pools among the deployments, over `[from_ms, to_ms)` (up to now: hours not yet
/// lived cost nothing yet; from the pool's first served hour at the earliest), with all the
/// tokens each served then, whatever the report narrows to: a team is charged its share of the
/// pool, not the whole pool.
async fn pools(state: &AppState, from_ms: i64, to_ms: i64) -> Result<Vec<Pool>, ApiError> {
    let routing = state.routing.load();
    if !routing.deployments.iter().any(|d| matches!(d.spec().cost_model, Some(moat_core::CostModel::Gpu { .. }))) {
        return Ok(Vec::new());
    }
    let hour_end = to_ms.div_euclid(HOUR_MS) * HOUR_MS + HOUR_MS;
    let served_by =
        state.store.report(&[Dimension::Deployment], from_ms, hour_end, None).await.map_err(store_failed)?;
    let mut pools = Vec::new();
    for deployment in &routing.deployments {
        let spec = deployment.spec();
        let Some(model @ moat_core::CostModel::Gpu { gpus, tokens_per_hour, .. }) = spec.cost_model else { continue };
        // A pool costs from the first hour it served (moat knows nothing of it before), so a
        // pool added mid-month is not charged for the days before it existed.
        let Some(first) = state.store.first_served_hour(&spec.name).await.map_err(store_failed)? else { continue };
        let period_ms = to_ms.saturating_sub(from_ms.max(first));
        let tokens = served_by.iter().filter(|(g, _)| g[0] == spec.name).map(|(_, t)| served(t)).sum();
        pools.push(Pool {
            name: spec.name.clone(),
            gpus,
            tokens_per_hour,
            period_ms,
            period_cost: model.period_cost(period_ms).unwrap_or(0),
            tokens,
        });
    }
    Ok(pools)
}

/// Adds the figures at measured throughput: self-hosted pools charged their GPUs' hours over
/// what they actually served, shared by tokens.
fn with_measured(row: &mut Value, totals: &Totals, measured: u64) {
    let reference = i64::try_from(totals.reference_cost_micro_usd).unwrap_or(i64::MAX);
    let savings = reference.saturating_sub(i64::try_from(measured).unwrap_or(i64::MAX));
    row["measured_cost_micro_usd"] = json!(measured);
    row["measured_cost_usd"] = json!(dollars(measured));
    row["measured_savings_micro_usd"] = json!(savings);
    row["measured_savings_usd"] = json!(signed_dollars(savings));
}

/// With more than one reference, what the row's tokens would have cost at each, priced from
/// its token sums (rounded once per row; the first reference's recorded figure rounds per
/// request, so the two may differ by a few micro-dollars).
fn with_comparisons(row: &mut Value, references: &[crate::price_catalog::Reference], totals: &Totals) {
    if references.len() < 2 {
        return;
    }
    let usage = moat_core::Usage {
        input: totals.input_tokens,
        output: totals.output_tokens,
        cached: totals.cached_tokens,
        cache_write: totals.cache_write_tokens,
        reasoning: totals.reasoning_tokens,
    };
    let comparisons: Vec<Value> = references
        .iter()
        .map(|reference| {
            let cost = reference.price.cost(&usage);
            let savings = i64::try_from(cost)
                .unwrap_or(i64::MAX)
                .saturating_sub(i64::try_from(totals.cost_micro_usd).unwrap_or(i64::MAX));
            json!({
                "model": reference.model,
                "provider": reference.provider,
                "cost_micro_usd": cost,
                "cost_usd": dollars(cost),
                "savings_micro_usd": savings,
                "savings_usd": signed_dollars(savings),
            })
        })
        .collect();
    row["references"] = json!(comparisons);
}

/// Query of `GET /admin/v1/reports/chargeback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChargebackQuery {
    /// `YYYY-MM`; default: last month.
    #[serde(default)]
    month: Option<String>,
    /// The IANA time zone the month is in (default UTC).
    #[serde(default)]
    tz: Option<String>,
}

/// `GET /admin/v1/reports/chargeback?month=2026-11`: one CSV row per team for a UTC month,
/// with what finance books: requests, tokens, cost, and the frontier reference and savings.
/// Usage no team is charged with is the row `unassigned`.
pub(crate) async fn chargeback(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<ChargebackQuery>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    let now = now_ms();
    let tz = zone(query.tz.as_deref())?;
    let start = match &query.month {
        Some(month) => {
            let first = format!("{month}-01");
            let date = first
                .parse::<jiff::civil::Date>()
                .map_err(|_| invalid(format!("`{month}` is not a month like 2026-11"), "month"))?;
            instant(&date.to_string(), "month", &tz)?
        }
        None => month_start(&tz, month_start(&tz, now) - 1),
    };
    let window = moat_core::Period::Month.window(&tz, start);
    let end = window.end_ms.unwrap_or(now);
    // Hours starting in the month: consecutive months tile, whatever the zone's offset.
    let (from_hour, end_hour) = (hour_ceil(window.start_ms), hour_ceil(end));
    let (rows, _) = measured_rows(&state, &[Dimension::Team], from_hour, end_hour.max(from_hour), None, now).await?;
    let names = names(&state, &[Dimension::Team], &[]).await?;
    let month = jiff::Timestamp::from_millisecond(window.start_ms)
        .map(|t| t.to_zoned(tz.clone()).strftime("%Y-%m").to_string())
        .unwrap_or_default();
    let mut csv = String::from(
        "month,team_id,team_name,requests,errors,input_tokens,cached_tokens,output_tokens,cost_usd,\
         measured_cost_usd,reference_cost_usd,savings_usd,measured_savings_usd\n",
    );
    let plain = |micro: u64| dollars(micro).trim_start_matches('$').to_owned();
    for (groups, t, measured) in &rows {
        let team = groups.first().cloned().unwrap_or_default();
        let (id, name) = if team.is_empty() {
            ("unassigned".to_owned(), String::new())
        } else {
            (team.clone(), names.get(&team).cloned().unwrap_or_default())
        };
        let reference = i64::try_from(t.reference_cost_micro_usd).unwrap_or(i64::MAX);
        let measured_savings = reference.saturating_sub(i64::try_from(*measured).unwrap_or(i64::MAX));
        csv.push_str(&format!(
            "{month},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            csv_field(&id),
            csv_field(&name),
            t.requests,
            t.errors,
            t.input_tokens,
            t.cached_tokens,
            t.output_tokens,
            plain(t.cost_micro_usd),
            plain(*measured),
            plain(t.reference_cost_micro_usd),
            signed_dollars(t.savings_micro_usd()).replace('$', ""),
            signed_dollars(measured_savings).replace('$', ""),
        ));
    }
    let disposition = format!("attachment; filename=\"moat-chargeback-{month}.csv\"");
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, disposition)],
        csv,
    )
        .into_response())
}

/// A CSV field, quoted when it must be (RFC 4180), and defused against spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("platform"), "platform");
        assert_eq!(csv_field("R&D, Paris"), "\"R&D, Paris\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=SUM(A1)"), "'=SUM(A1)");
        assert_eq!(signed_dollars(-1_500_000), "-$1.50");
    }

    #[test]
    fn dates_and_instants_both_parse() {
        let utc = jiff::tz::TimeZone::UTC;
        assert_eq!(instant("2026-11-01", "from", &utc).ok(), Some(1_793_491_200_000));
        assert_eq!(instant("2026-11-01T01:00:00+01:00", "from", &utc).ok(), Some(1_793_491_200_000));
        assert!(instant("November", "from", &utc).is_err());
        assert_eq!(month_start(&utc, 1_795_872_140_123), 1_793_491_200_000);
        let paris = zone(Some("Europe/Paris")).expect("zone");
        assert_eq!(instant("2026-11-01", "from", &paris).ok(), Some(1_793_491_200_000 - HOUR_MS));
        assert_eq!(month_start(&paris, 1_795_872_140_123), 1_793_491_200_000 - HOUR_MS);
        assert!(zone(Some("Mars/Olympus")).is_err());
        // Kolkata's months start at 18:30 UTC: each month takes the hours starting in it.
        let kolkata = zone(Some("Asia/Kolkata")).expect("zone");
        let november = instant("2026-11-01", "from", &kolkata).expect("november");
        assert_eq!(november % HOUR_MS, HOUR_MS / 2);
        assert_eq!(hour_ceil(november), november + HOUR_MS / 2);
        assert_eq!(hour_ceil(1_793_491_200_000), 1_793_491_200_000);
    }
}
