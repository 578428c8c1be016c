//! Models: each deployment with its live health, load and first-token latency, what it is
//! priced or costed at; and the frontier price list reports compare against.

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
    let frontier = state.api.get(&visit, "/admin/v1/prices?kind=frontier").await;
    let rows: Vec<&Value> = deployments.body["data"].as_array().map(|d| d.iter().collect()).unwrap_or_default();
    let prices: Vec<&Value> = frontier.body["data"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
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
        h2 { "Frontier prices" }
        p { "What reports compare your traffic with. Pick references with " code { "[savings] references" } " in the configuration." }
        @if prices.is_empty() { p { "No frontier prices in the catalog." } } @else {
            div.table-wrap { table #frontier {
                thead { tr { th scope="col" { "model" } th scope="col" { "provider" } th scope="col" { "tier" } th.num scope="col" { "input $/M" } th.num scope="col" { "output $/M" }
                             th.num scope="col" { "cache read $/M" } th scope="col" { "as of" } } }
                tbody { @for p in &prices {
                    tr { td { (shown(&p["model"])) } td { (shown(&p["provider"])) } td { (shown(&p["tier"])) } td.num { (shown(&p["per_mtok"]["input"])) }
                         td.num { (shown(&p["per_mtok"]["output"])) } td.num { (shown(&p["per_mtok"]["cache_read"])) } td { (shown(&p["as_of"])) } }
                } }
            } }
        }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Models, "Models", &body))
}
