//! The dashboard: spend, savings, requests and latency over a period, spend by day against the
//! frontier reference, the top teams, models and users, budget burn-down and deployment health.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::chart::{Pair, meter, paired_bars};
use crate::layout::{Section, page, reads_org};
use crate::{ConsoleState, Visit, html, redirect, refused, shown};

/// The periods the dashboard offers, in days.
const PERIODS: [u32; 3] = [7, 30, 90];

#[derive(Debug, Deserialize)]
pub(crate) struct DashboardQuery {
    days: Option<u32>,
}

/// The dashboard for `days` days up to today.
async fn render(state: &ConsoleState, visit: Visit, days: u32) -> Response {
    let person = &visit.person;
    // Members read no organisation figures: their start page is their keys.
    if !reads_org(person) {
        return redirect("/ui/keys");
    }
    let days = if PERIODS.contains(&days) { days } else { 30 };
    let today = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    let first = today.checked_sub(jiff::Span::new().days(i64::from(days) - 1)).unwrap_or(today);
    let from = first.to_string();
    let api = &state.api;
    let visiting = &visit;
    let top = |by: &'static str| {
        let uri = format!("/admin/v1/reports/usage?by={by}&from={from}&limit=5");
        async move { api.get(visiting, &uri).await }
    };
    // The reports read the rollups independently: at once, so the page takes as long as the
    // slowest rather than the sum.
    let daily = format!("/admin/v1/reports/usage?by=day&from={from}");
    let (by_day, teams, models, users, budgets, deployments) = tokio::join!(
        api.get(&visit, &daily),
        top("team"),
        top("model"),
        top("user"),
        api.get(&visit, "/admin/v1/budgets"),
        api.get(&visit, "/admin/v1/deployments"),
    );
    if !by_day.status.is_success() {
        return refused(person, &by_day);
    }

    let series = daily_series(&by_day.body, first, today);
    let total = &by_day.body["total"];
    let body = html! {
        p.periods {
            "Period: "
            @for period in PERIODS {
                a href=(format!("/ui?days={period}")) aria-current=[(period == days).then_some("true")] { "last " (period) " days" }
            }
        }
        (cards(total, &by_day.body["reference"]))
        h2 { "Spend by day" }
        figure {
            (paired_bars(&series, "Spend by day, against the frontier reference"))
            figcaption.legend {
                span { span.swatch.bar-spend style="background:var(--spend)" {} "spend" }
                span { span.swatch style="background:var(--reference)" {} "at the reference's prices" }
            }
        }
        div.grid2 {
            (top_table("Top teams", "team", &teams.body))
            (top_table("Top models", "model", &models.body))
            (top_table("Top users", "user", &users.body))
            (budget_table(&budgets.body))
        }
        (pools(&by_day.body["pools"]))
        (deployment_table(&deployments.body))
    };
    html(StatusCode::OK, &page(person, Section::Dashboard, "Dashboard", &body))
}

/// `GET /ui?days=`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<DashboardQuery>,
) -> Response {
    render(&state, visit, query.days.unwrap_or(30)).await
}

/// One bar pair per day from `first` to `last`, days without traffic included.
fn daily_series(report: &Value, first: jiff::civil::Date, last: jiff::civil::Date) -> Vec<Pair> {
    let mut by_day: HashMap<String, (u64, u64)> = HashMap::new();
    for row in report["data"].as_array().into_iter().flatten() {
        let day = row["day"].as_str().and_then(|d| d.get(..10)).unwrap_or_default().to_owned();
        let figures =
            (row["cost_micro_usd"].as_u64().unwrap_or(0), row["reference_cost_micro_usd"].as_u64().unwrap_or(0));
        by_day.insert(day, figures);
    }
    let mut series = Vec::new();
    let mut day = first;
    while day <= last {
        let (spend, reference) = by_day.get(&day.to_string()).copied().unwrap_or((0, 0));
        series.push(Pair { label: day.strftime("%b %-d").to_string(), first: spend, second: reference });
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    series
}

fn cards(total: &Value, reference: &Value) -> Markup {
    let requests = total["requests"].as_u64().unwrap_or(0);
    let errors = total["errors"].as_u64().unwrap_or(0);
    #[allow(clippy::cast_precision_loss, reason = "a displayed percentage")]
    let error_rate = if requests == 0 { 0.0 } else { errors as f64 * 100.0 / requests as f64 };
    let savings = shown(&total["savings_usd"]);
    let saved = !savings.starts_with('-');
    let tokens = total["input_tokens"].as_u64().unwrap_or(0) + total["output_tokens"].as_u64().unwrap_or(0);
    html! {
        div.cards {
            div.card #card-spend { div.label { "Spend" } div.value { (shown(&total["cost_usd"])) }
                @if total.get("measured_cost_usd").is_some() { div.note { "measured: " (shown(&total["measured_cost_usd"])) } } }
            div.card #card-savings { div.label { "Saved against the reference" }
                div.value.good[saved].bad[!saved] { (savings) }
                div.note { @if let Some(p) = total["savings_percent"].as_f64() { (p) " % · " }
                    @if reference.is_null() { "no reference set" } @else { "vs " (shown(&reference["model"])) } } }
            div.card #card-requests { div.label { "Requests" } div.value { (requests) }
                div.note { (format!("{error_rate:.1}")) " % errors" } }
            div.card #card-tokens { div.label { "Tokens" } div.value { (tokens) }
                div.note { (total["input_tokens"].as_u64().unwrap_or(0)) " in · " (total["output_tokens"].as_u64().unwrap_or(0)) " out" } }
            div.card #card-latency { div.label { "Latency p50 / p95" }
                div.value { (shown(&total["latency_p50_ms"])) " / " (shown(&total["latency_p95_ms"])) " ms" }
                div.note { "upper bounds of histogram buckets" } }
            div.card #card-ttft { div.label { "Time to first token p50 / p95" }
                div.value { (shown(&total["ttft_p50_ms"])) " / " (shown(&total["ttft_p95_ms"])) " ms" }
                div.note { "streams and calls that reached a model" } }
        }
    }
}

fn top_table(title: &str, dimension: &str, report: &Value) -> Markup {
    let rows: Vec<&Value> = report["data"].as_array().map(|rows| rows.iter().collect()).unwrap_or_default();
    html! {
        section {
            h2 { (title) }
            @if rows.is_empty() { p { "No usage in this period." } } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { (dimension) } th.num scope="col" { "requests" } th.num scope="col" { "spend" } th.num scope="col" { "saved" } } }
                    tbody { @for row in rows {
                        @let id = row[dimension].as_str().unwrap_or("");
                        @let label = row[format!("{dimension}_name")].as_str()
                            .unwrap_or(if id.is_empty() { "(none)" } else { id });
                        tr { td { (label) } td.num { (shown(&row["requests"])) } td.num { (shown(&row["cost_usd"])) } td.num { (shown(&row["savings_usd"])) } }
                    } }
                } }
            }
        }
    }
}

fn budget_table(budgets: &Value) -> Markup {
    let rows: Vec<&Value> = budgets["data"].as_array().map(|rows| rows.iter().collect()).unwrap_or_default();
    html! {
        section {
            h2 { "Budgets" }
            @if rows.is_empty() { p { "No budgets set." } } @else {
                div.table-wrap { table {
                    thead { tr { th scope="col" { "scope" } th scope="col" { "period" } th.num scope="col" { "spent" } th.num scope="col" { "of" } th scope="col" { "used" }
                                 th.num scope="col" { "on pace for" } } }
                    tbody { @for budget in rows {
                        @let used = budget["current"]["percent_used"].as_f64().unwrap_or(0.0);
                        @let scope = crate::limits::scope_label(budget);
                        @let pace = on_pace(&budget["current"], jiff::Timestamp::now());
                        tr { td { (scope) } td { (shown(&budget["period"])) }
                             td.num { (shown(&budget["current"]["spent_usd"])) } td.num { (shown(&budget["amount_usd"])) }
                             td { (meter(used, &format!("{scope}: {used:.0} % used"))) }
                             td.num.bad[pace.is_some_and(|p| p > 100.0)] { @match pace { Some(p) => { (format!("{p:.0} %")) }, None => { "–" } } } }
                    } }
                } }
            }
        }
    }
}

/// Where a budget's spend ends its period at the pace it has kept so far, as a percentage of
/// the budget: the burn-down's projection. `None` for a budget without a period end, or before
/// a tenth of the period has passed (too early to say).
fn on_pace(current: &Value, now: jiff::Timestamp) -> Option<f64> {
    let at = |field: &str| current[field].as_str().and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let (start, end) = (at("period_start")?, at("period_end")?);
    let length = end.as_millisecond().checked_sub(start.as_millisecond())?;
    let elapsed = now.as_millisecond().checked_sub(start.as_millisecond())?.min(length);
    if length <= 0 || elapsed * 10 < length {
        return None;
    }
    #[allow(clippy::cast_precision_loss, reason = "a displayed projection")]
    let share = elapsed as f64 / length as f64;
    Some(current["percent_used"].as_f64()? / share)
}

fn pools(pools: &Value) -> Markup {
    let rows: Vec<&Value> = pools.as_array().map(|rows| rows.iter().collect()).unwrap_or_default();
    html! {
        @if !rows.is_empty() {
            h2 { "Self-hosted GPU pools" }
            div.table-wrap { table {
                thead { tr { th scope="col" { "deployment" } th.num scope="col" { "GPU-hours" } th.num scope="col" { "cost" } th.num scope="col" { "tokens" } th scope="col" { "utilisation" } th.num scope="col" { "measured $/Mtok" } } }
                tbody { @for pool in rows {
                    @let utilisation = pool["utilisation_percent"].as_f64().unwrap_or(0.0);
                    tr { td { (shown(&pool["deployment"])) } td.num { (shown(&pool["gpu_hours"])) } td.num { (shown(&pool["period_cost_usd"])) }
                         td.num { (shown(&pool["tokens"])) } td { (meter(utilisation, &format!("{utilisation} % of rated throughput"))) }
                         td.num { (shown(&pool["measured_cost_per_mtok_usd"])) } }
                } }
            } }
        }
    }
}

fn deployment_table(deployments: &Value) -> Markup {
    let rows: Vec<&Value> = deployments["data"].as_array().map(|rows| rows.iter().collect()).unwrap_or_default();
    html! {
        h2 { "Deployments" }
        @if rows.is_empty() { p { "No deployments." } } @else {
            div.table-wrap { table {
                thead { tr { th scope="col" { "deployment" } th scope="col" { "models" } th scope="col" { "health" } th.num scope="col" { "in flight" } th.num scope="col" { "TTFT ms" } } }
                tbody { @for d in rows {
                    @let health = shown(&d["health"]);
                    tr { td { (shown(&d["name"])) }
                         td { (d["models"].as_array().map(|m| m.iter().map(shown).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                         td.good[health == "up"].bad[health == "down"] { (health) }
                         td.num { (shown(&d["in_flight"])) } td.num { (shown(&d["ttft_ms"])) } }
                } }
            } }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::on_pace;

    #[test]
    fn a_budget_on_pace_is_its_spend_over_the_share_of_the_period_gone() {
        let current = |used: f64| json!({ "period_start": "2026-11-01T00:00:00Z", "period_end": "2026-12-01T00:00:00Z", "percent_used": used });
        let at = |t: &str| t.parse::<jiff::Timestamp>().expect("time");
        // A third of November gone, a quarter of the budget spent: three quarters by the end.
        assert_eq!(on_pace(&current(25.0), at("2026-11-11T00:00:00Z")).map(f64::round), Some(75.0));
        assert_eq!(on_pace(&current(50.0), at("2026-11-16T00:00:00Z")).map(f64::round), Some(100.0));
        assert_eq!(on_pace(&current(10.0), at("2026-11-02T00:00:00Z")), None, "too early to say");
        assert_eq!(on_pace(&current(80.0), at("2026-12-05T00:00:00Z")).map(f64::round), Some(80.0), "period over");
        assert_eq!(
            on_pace(
                &json!({ "percent_used": 5.0, "period_start": "2026-11-01T00:00:00Z" }),
                at("2026-11-20T00:00:00Z")
            ),
            None
        );
    }
}
