//! Models: each deployment with its live health, load and first-token latency and what it is
//! priced or costed at; and each model's routing policy (deployments, strategy, fallbacks,
//! response cache, aliases).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde_json::Value;

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, refused, shown};

/// `GET /ui/models`.
pub(crate) async fn show(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    let deployments = state.api.get(&visit, "/admin/v1/deployments").await;
    if !deployments.status.is_success() {
        return refused(&visit.person, &deployments);
    }
    let settings = state.api.get(&visit, "/admin/v1/settings").await;
    let rows: Vec<&Value> = deployments.body["data"].as_array().map(|d| d.iter().collect()).unwrap_or_default();
    let models: Vec<&Value> = settings.body["models"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    let body = html! {
        p { "Deployments come from moat's configuration; health, load and latency are this replica's live view." }
        div.table-wrap { table #deployments {
            thead { tr { th scope="col" { "deployment" } th scope="col" { "serves" } th scope="col" { "health" } th.num scope="col" { "in flight" }
                         th.num scope="col" { "TTFT ms" } th.num scope="col" { "times down" } th scope="col" { "cost" } } }
            tbody { @for d in &rows {
                @let health = shown(&d["health"]);
                tr {
                    td { (shown(&d["name"])) br; small { (shown(&d["upstream_model"])) } }
                    td { (d["models"].as_array().map(|m| m.iter().map(shown).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                    td.good[health == "up"].bad[health == "down"] { (health) }
                    td.num { (shown(&d["in_flight"])) } td.num { (shown(&d["ttft_ms"])) } td.num { (shown(&d["times_down"])) }
                    td { @match d["cost_model"]["kind"].as_str() {
                        Some("gpu") => { (shown(&d["cost_model"]["gpus"])) " GPU × $" (shown(&d["cost_model"]["gpu_hour_usd"])) "/h at "
                                         (shown(&d["cost_model"]["tokens_per_hour"])) " tokens/h" }
                        Some("per_mtok") => { "$" (shown(&d["cost_model"]["per_mtok_usd"])) " per million tokens" }
                        _ => { "$" (shown(&d["price_per_mtok"]["input"])) " in / $" (shown(&d["price_per_mtok"]["output"])) " out per million" }
                    } }
                }
            } }
        } }
        h2 #policies { "Routing policy per model" }
        p { "Which deployments serve each model, in what order, what follows when they are down, and what is cached. "
            "Tier 0 serves first; a higher tier only when the one above has nothing available." }
        @if models.is_empty() { p { "No models." } } @else {
            div.table-wrap { table #models {
                thead { tr { th scope="col" { "model" } th scope="col" { "deployments (weight, tier)" } th scope="col" { "strategy" }
                             th scope="col" { "then" } th scope="col" { "response cache" } th scope="col" { "also answers to" } } }
                tbody { @for m in &models {
                    tr {
                        td { (shown(&m["name"])) }
                        td { (m["deployments"].as_array().into_iter().flatten()
                                .map(|d| format!("{} ({}, {})", shown(&d["deployment"]), shown(&d["weight"]), shown(&d["tier"])))
                                .collect::<Vec<_>>().join(", ")) }
                        td { (shown(&m["strategy"]).replace('_', " ")) }
                        td { (joined(&m["fallbacks"], "–")) }
                        td { @if m["cache"].is_null() { "off" } @else { (shown(&m["cache"]["ttl"])) ", shared by " (shown(&m["cache"]["scope"])) } }
                        td { (joined(&m["aliases"], "–")) }
                    }
                } }
            } }
        }
        p { "Prices: " a href="/ui/prices" #price-catalog { "the price catalog" } " (frontier, open-weight and GPU rates). Retries and health: " a href="/ui/settings#routing" { "settings" } "." }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Models, "Models", &body))
}

/// A JSON list of text as `a, b`, or `empty` when there is none.
fn joined(list: &Value, empty: &str) -> String {
    let items: Vec<String> = list.as_array().into_iter().flatten().map(shown).collect();
    if items.is_empty() { empty.to_owned() } else { items.join(", ") }
}
