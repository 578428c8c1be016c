//! "My usage": what the signed-in person spent this month, by model, against the reference,
//! and their own recent requests. Open to every role: the admin API narrows it to them.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::Value;

use crate::keys::percent_encode;
use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, refused, shown};

#[derive(Debug, Default, Deserialize)]
pub(crate) struct MineQuery {
    #[serde(default)]
    before: String,
}

/// `GET /ui/me`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<MineQuery>,
) -> Response {
    let me = percent_encode(&visit.person.user.id);
    let month = state.api.get(&visit, &format!("/admin/v1/reports/usage?by=model&user={me}")).await;
    if !month.status.is_success() {
        return refused(&visit.person, &month);
    }
    let mut records_uri = format!("/admin/v1/usage?limit=50&user_id={me}");
    if !query.before.is_empty() {
        records_uri.push_str(&format!("&before={}", percent_encode(&query.before)));
    }
    let records = state.api.get(&visit, &records_uri).await;
    if !records.status.is_success() {
        return refused(&visit.person, &records);
    }
    let total = &month.body["total"];
    let models: Vec<&Value> = month.body["data"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    let rows: Vec<&Value> = records.body["data"].as_array().map(|r| r.iter().collect()).unwrap_or_default();
    let body = html! {
        div.cards {
            div.card #my-spend { div.label { "Spent this month" } div.value { (shown(&total["cost_usd"])) } }
            div.card #my-savings { div.label { "Saved against the reference" } div.value.good { (shown(&total["savings_usd"])) } }
            div.card #my-requests { div.label { "Requests" } div.value { (shown(&total["requests"])) } }
        }
        h2 { "By model, this month" }
        @if models.is_empty() { p { "No usage this month." } } @else {
            div.table-wrap { table #my-models {
                thead { tr { th scope="col" { "model" } th.num scope="col" { "requests" } th.num scope="col" { "tokens in" } th.num scope="col" { "tokens out" } th.num scope="col" { "spend" } } }
                tbody { @for m in &models {
                    tr { td { (shown(&m["model"])) } td.num { (shown(&m["requests"])) } td.num { (shown(&m["input_tokens"])) }
                         td.num { (shown(&m["output_tokens"])) } td.num { (shown(&m["cost_usd"])) } }
                } }
            } }
        }
        h2 { "My requests" }
        @if rows.is_empty() { p #no-records { "No requests yet." } } @else {
            div.table-wrap { table #my-records {
                thead { tr { th scope="col" { "time (UTC)" } th scope="col" { "request" } th scope="col" { "model" } th.num scope="col" { "status" }
                             th.num scope="col" { "in" } th.num scope="col" { "out" } th.num scope="col" { "ms" } th.num scope="col" { "cost µ$" } } }
                tbody { @for r in &rows {
                    tr { td { (shown(&r["created_at"]).replace('T', " ").trim_end_matches('Z')) } td { code { (shown(&r["id"])) } }
                         td { (shown(&r["model"])) } td.num { (shown(&r["status"])) } td.num { (shown(&r["input_tokens"])) }
                         td.num { (shown(&r["output_tokens"])) } td.num { (shown(&r["latency_ms"])) } td.num { (shown(&r["cost_micro_usd"])) } }
                } }
            } }
        }
        @if let Some(next) = records.body["next_before"].as_str() {
            p { a href=(format!("/ui/me?before={}", percent_encode(next))) rel="next" { "Older requests →" } }
        }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Mine, "My usage", &body))
}
