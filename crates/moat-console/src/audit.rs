//! The audit log viewer: every change, newest first, filtered by actor, action (or a family
//! like `key.`), target and UTC days, a page at a time; and the hash chain checked on request.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, plain, refused};

const PAGE: u32 = 50;

/// The viewer's filters, as the form sends them (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditFilters {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target_type: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
    /// Set to check the whole chain.
    #[serde(default)]
    verify: String,
}

impl AuditFilters {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target_type", &self.target_type),
            ("target_id", &self.target_id),
            ("from", &self.from),
            ("to", &self.to),
        ]
        .into_iter()
        .filter(|(_, v)| !v.trim().is_empty())
        .map(|(k, v)| (k, v.trim().to_owned()))
        .collect()
    }

    /// The admin API's query, or the field that is wrong and why.
    fn api_query(&self) -> Result<Vec<(&'static str, String)>, (&'static str, String)> {
        let mut query = vec![("limit", PAGE.to_string())];
        for (name, value) in self.pairs() {
            match name {
                "from" | "to" => {
                    let date: jiff::civil::Date =
                        value.parse().map_err(|_| (name, "a date is written 2026-11-29".to_owned()))?;
                    let date = if name == "to" { date.tomorrow().unwrap_or(date) } else { date };
                    query.push((name, format!("{date}T00:00:00Z")));
                }
                _ => query.push((name, value)),
            }
        }
        if !self.before.trim().is_empty() {
            query.push(("before", self.before.trim().to_owned()));
        }
        Ok(query)
    }

    fn link(&self, before: &str) -> String {
        let mut pairs = self.pairs();
        pairs.push(("before", before.to_owned()));
        format!("/ui/audit?{}", serde_urlencoded::to_string(pairs).unwrap_or_default())
    }
}

/// `GET /ui/audit`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(filters): Query<AuditFilters>,
) -> Response {
    let (records, next, error) = match filters.api_query() {
        Err(wrong) => (Vec::new(), None, Some(wrong)),
        Ok(query) => {
            let uri = format!("/admin/v1/audit?{}", serde_urlencoded::to_string(&query).unwrap_or_default());
            let answer = state.api.get(&visit, &uri).await;
            match answer.status {
                StatusCode::OK => (
                    answer.body["data"].as_array().cloned().unwrap_or_default(),
                    answer.body["next_before"].as_i64(),
                    None,
                ),
                StatusCode::BAD_REQUEST => (Vec::new(), None, Some(("action", answer.message()))),
                _ => return refused(&visit.person, &answer),
            }
        }
    };
    let chain =
        if filters.verify.is_empty() { None } else { Some(state.api.get(&visit, "/admin/v1/audit/verify").await.body) };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        (filter_form(&filters, error.as_ref()))
        @if let Some(chain) = &chain {
            @if chain["ok"] == true {
                div.notice role="status" #chain { "The chain verifies: " (chain["records"]) " records, head " code { (chain["head"].as_str().unwrap_or("")) } "." }
            } @else {
                div.notice.bad role="alert" #chain { "The chain is broken at record " (chain["broken"]["seq"]) ": " (chain["broken"]["reason"].as_str().unwrap_or("")) }
            }
        } @else {
            p { a href="/ui/audit?verify=1" #verify { "Verify the whole chain" } }
        }
        @if records.is_empty() { p #no-records { "No audit records match." } } @else {
            div.table-wrap { table #audit {
                thead { tr { th scope="col" { "time (UTC)" } th scope="col" { "actor" } th scope="col" { "action" } th scope="col" { "target" } th scope="col" { "from" } th scope="col" { "change" } } }
                tbody { @for r in &records { (row(r)) } }
            } }
        }
        @if let Some(next) = next { p { a href=(filters.link(&next.to_string())) rel="next" #older { "Older records →" } } }
    };
    html(status, &page(&visit.person, Section::Audit, "Audit log", &body))
}

fn row(r: &Value) -> Markup {
    let actor = r["actor_user_id"].as_str().or_else(|| r["actor_key_id"].as_str()).unwrap_or("break-glass key");
    html! {
        tr {
            td { (plain(&r["at"]).replace('T', " ").trim_end_matches('Z')) }
            td { (actor) }
            td { code { (plain(&r["action"])) } }
            td { (plain(&r["target_type"])) " " code { (plain(&r["target_id"])) } }
            td { (plain(&r["source"])) }
            td { @if !r["before"].is_null() { div { small { "before " } code { (r["before"].to_string()) } } }
                 @if !r["after"].is_null() { div { small { "after " } code { (r["after"].to_string()) } } } }
        }
    }
}

fn filter_form(filters: &AuditFilters, error: Option<&(&'static str, String)>) -> Markup {
    let field = |name: &'static str, label: &str, value: &str, kind: &str, hint: &str| {
        let wrong = error.filter(|(f, _)| *f == name).map(|(_, message)| message.as_str());
        crate::layout::field(name, label, value, kind, hint, wrong)
    };
    html! {
        form method="get" action="/ui/audit" role="search" {
            div.grid-filters {
                (field("actor", "Actor (user or key id)", &filters.actor, "text", ""))
                (field("action", "Action", &filters.action, "text", "key. or user.update"))
                (field("target_type", "Target type", &filters.target_type, "text", "key, user, team…"))
                (field("target_id", "Target id", &filters.target_id, "text", ""))
                (field("from", "From (UTC day)", &filters.from, "date", ""))
                (field("to", "To (UTC day, included)", &filters.to, "date", ""))
            }
            p { button type="submit" #filter { "Filter" } " " a href="/ui/audit" { "Clear" } }
        }
    }
}
