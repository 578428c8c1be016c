//! The price catalog: frontier and open-weight list prices and GPU rental rates, as moat
//! ships them with the configuration's `[[prices]]` applied, and which rows savings are
//! measured against.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, refused, shown};

/// The catalog's kinds of model, as the admin API names them.
const KINDS: [(&str, &str); 2] = [("frontier", "Frontier models"), ("open-weight", "Open-weight models, hosted")];

#[derive(Debug, Deserialize)]
pub(crate) struct PricesQuery {
    #[serde(default)]
    kind: Option<String>,
}

/// `GET /ui/prices?kind=frontier|open-weight|gpu`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<PricesQuery>,
) -> Response {
    let kind = query.kind.filter(|k| KINDS.iter().any(|(v, _)| v == k) || k == "gpu");
    let kind = kind.as_deref().unwrap_or("frontier");
    let model_kind = if kind == "gpu" { "frontier" } else { kind };
    let answer = state.api.get(&visit, &format!("/admin/v1/prices?kind={model_kind}")).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let settings = state.api.get(&visit, "/admin/v1/settings").await;
    let references: Vec<(String, String)> = settings.body["savings"]["references"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| (shown(&r["model"]), shown(&r["provider"])))
        .collect();
    let prices: Vec<&Value> = answer.body["data"].as_array().map(|p| p.iter().collect()).unwrap_or_default();
    let gpus: Vec<&Value> = answer.body["gpus"].as_array().map(|g| g.iter().collect()).unwrap_or_default();
    let body = html! {
        p { "moat ships a sourced catalog; " code { "[[prices]]" } " in the configuration adds rows or replaces them (a negotiated rate). "
            "Frontier rows are what " a href="/ui/settings#savings" { "savings references" } " are picked from; GPU rates cost self-hosted deployments." }
        p.periods {
            @for (value, label) in KINDS.iter().copied().chain([("gpu", "GPU rental rates")]) {
                a href=(format!("/ui/prices?kind={value}")) aria-current=[(value == kind).then_some("true")] { (label) }
            }
        }
        @if kind == "gpu" {
            div.table-wrap { table #gpus {
                thead { tr { th scope="col" { "GPU" } th scope="col" { "provider" } th.num scope="col" { "$ per GPU-hour" } th scope="col" { "as of" } } }
                tbody { @for g in &gpus { tr { td { (shown(&g["gpu"])) } td { (shown(&g["provider"])) } td.num { (shown(&g["per_hour"])) } td { (shown(&g["as_of"])) } } } }
            } }
        } @else if prices.is_empty() { p #no-prices { "No prices of this kind in the catalog." } } @else {
            div.table-wrap { table #prices {
                thead { tr { th scope="col" { "model" } th scope="col" { "provider" } th scope="col" { "tier" } th.num scope="col" { "input $/M" } th.num scope="col" { "output $/M" }
                             th.num scope="col" { "cache read $/M" } th.num scope="col" { "cache write $/M" } th scope="col" { "as of" } } }
                tbody { @for p in &prices {
                    @let model = shown(&p["model"]);
                    @let provider = shown(&p["provider"]);
                    @let reference = references.iter().any(|(m, v)| *m == model && *v == provider);
                    tr {
                        td { (model) @if reference { " " span.badge { "reference" } } } td { (provider) } td { (shown(&p["tier"])) }
                        td.num { (shown(&p["per_mtok"]["input"])) } td.num { (shown(&p["per_mtok"]["output"])) }
                        td.num { (shown(&p["per_mtok"]["cache_read"])) } td.num { (shown(&p["per_mtok"]["cache_write"])) }
                        td { @if let Some(source) = p["source"].as_str().filter(|s| s.starts_with("https://")) { a href=(source) rel="noreferrer" { (shown(&p["as_of"])) } } @else { (shown(&p["as_of"])) } }
                    }
                } }
            } }
        }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Models, "Price catalog", &body))
}
