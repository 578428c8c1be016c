//! The usage explorer: usage records newest first, filtered by request id, key, model,
//! deployment, status and dates, a page at a time (by cursor, so deep pages stay fast), and
//! the same filter exported as CSV.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, plain, refused};

/// Records per page.
const PAGE: u32 = 50;
/// Most records one CSV export holds (10 pages of the API's largest page).
const CSV_ROWS: usize = 10_000;
/// The export's columns: usage record fields, as the admin API names them.
const CSV_COLUMNS: [&str; 20] = [
    "created_at",
    "id",
    "key_id",
    "key_name",
    "user_id",
    "user_email",
    "team_id",
    "model",
    "deployment",
    "endpoint",
    "status",
    "error_code",
    "input_tokens",
    "cached_tokens",
    "output_tokens",
    "reasoning_tokens",
    "latency_ms",
    "ttft_ms",
    "cost_micro_usd",
    "reference_cost_micro_usd",
];

/// The explorer's filters, as the form sends them (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsageFilters {
    #[serde(default)]
    id: String,
    #[serde(default)]
    key_id: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    deployment: String,
    #[serde(default)]
    status: String,
    /// `YYYY-MM-DD`, midnight UTC.
    #[serde(default)]
    from: String,
    /// `YYYY-MM-DD`, up to the end of that day.
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

impl UsageFilters {
    /// The admin API's query for these filters, or the field that is wrong and why.
    fn api_query(&self, limit: u32) -> Result<Vec<(&'static str, String)>, (&'static str, String)> {
        let mut query = vec![("limit", limit.to_string())];
        for (name, value) in [
            ("id", &self.id),
            ("key_id", &self.key_id),
            ("model", &self.model),
            ("deployment", &self.deployment),
            ("before", &self.before),
        ] {
            if !value.trim().is_empty() {
                query.push((name, value.trim().to_owned()));
            }
        }
        if !self.status.trim().is_empty() {
            let status: u16 =
                self.status.trim().parse().map_err(|_| ("status", "a status is a number, like 429".to_owned()))?;
            query.push(("status", status.to_string()));
        }
        for (name, value, end_of_day) in [("from", &self.from, false), ("to", &self.to, true)] {
            if value.trim().is_empty() {
                continue;
            }
            let date: jiff::civil::Date =
                value.trim().parse().map_err(|_| (name, "a date is written 2026-11-29".to_owned()))?;
            let date = if end_of_day {
                date.tomorrow().map_err(|_| (name, "that date is out of range".to_owned()))?
            } else {
                date
            };
            query.push((name, format!("{date}T00:00:00Z")));
        }
        Ok(query)
    }

    /// The explorer's own URL for these filters (and a cursor).
    fn link(&self, path: &str, before: Option<&str>) -> String {
        let pairs: Vec<(&str, &str)> = [
            ("id", self.id.as_str()),
            ("key_id", self.key_id.as_str()),
            ("model", self.model.as_str()),
            ("deployment", self.deployment.as_str()),
            ("status", self.status.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("before", before.unwrap_or("")),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        let query = serde_urlencoded::to_string(pairs).unwrap_or_default();
        if query.is_empty() { path.to_owned() } else { format!("{path}?{query}") }
    }
}

fn api_uri(query: &[(&str, String)]) -> String {
    format!("/admin/v1/usage?{}", serde_urlencoded::to_string(query).unwrap_or_default())
}

/// `GET /ui/usage`.
pub(crate) async fn explore(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(filters): Query<UsageFilters>,
) -> Response {
    let person = &visit.person;
    let (records, next, error) = match filters.api_query(PAGE) {
        Err(wrong) => (Vec::new(), None, Some(wrong)),
        Ok(query) => {
            let answer = state.api.get(&visit, &api_uri(&query)).await;
            match answer.status {
                StatusCode::OK => (
                    answer.body["data"].as_array().cloned().unwrap_or_default(),
                    answer.body["next_before"].as_str().map(str::to_owned),
                    None,
                ),
                StatusCode::BAD_REQUEST => {
                    let field = match answer.field() {
                        Some("from") => "from",
                        Some("to") => "to",
                        Some("status") => "status",
                        _ => "id",
                    };
                    (Vec::new(), None, Some((field, answer.message())))
                }
                _ => return refused(person, &answer),
            }
        }
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        (filter_form(&filters, error.as_ref()))
        p { a href=(filters.link("/ui/usage.csv", None)) #export { "Export these records as CSV" } " (up to " (CSV_ROWS) ")" }
        @if records.is_empty() { p #no-records { "No usage records match." } } @else {
            div.table-wrap { table #records {
                thead { tr {
                    th scope="col" { "time (UTC)" } th scope="col" { "request" } th scope="col" { "key" } th scope="col" { "person" } th scope="col" { "model" }
                    th scope="col" { "deployment" } th.num scope="col" { "status" } th.num scope="col" { "in" } th.num scope="col" { "out" }
                    th.num scope="col" { "ms" } th.num scope="col" { "TTFT ms" } th.num scope="col" { "cost µ$" } th.num scope="col" { "saved µ$" }
                } }
                tbody { @for r in &records { (record_row(r)) } }
            } }
        }
        @if let Some(next) = &next {
            p { a href=(filters.link("/ui/usage", Some(next))) rel="next" #older { "Older records →" } }
        }
    };
    html(status, &page(person, Section::Usage, "Usage", &body))
}

fn record_row(r: &Value) -> Markup {
    let time = plain(&r["created_at"]).replace('T', " ").trim_end_matches('Z').to_owned();
    let status = r["status"].as_u64().unwrap_or(0);
    html! {
        tr {
            td { (time) } td { code { (plain(&r["id"])) } }
            td title=(plain(&r["key_id"])) { (r["key_name"].as_str().map_or_else(|| plain(&r["key_id"]), str::to_owned)) }
            td { (plain(&r["user_email"])) } td { (plain(&r["model"])) }
            td { (plain(&r["deployment"])) }
            td.num.bad[status >= 400] { (status) @if let Some(code) = r["error_code"].as_str() { " " small { (code) } } }
            td.num { (plain(&r["input_tokens"])) } td.num { (plain(&r["output_tokens"])) } td.num { (plain(&r["latency_ms"])) } td.num { (plain(&r["ttft_ms"])) }
            td.num { (plain(&r["cost_micro_usd"])) } td.num { (plain(&r["savings_micro_usd"])) }
        }
    }
}

fn filter_form(filters: &UsageFilters, error: Option<&(&'static str, String)>) -> Markup {
    let field = |name: &'static str, label: &str, value: &str, kind: &str, hint: &str| {
        let wrong = error.filter(|(f, _)| *f == name).map(|(_, message)| message.as_str());
        crate::layout::field(name, label, value, kind, hint, wrong)
    };
    html! {
        form.filters method="get" action="/ui/usage" role="search" {
            div.grid-filters {
                (field("id", "Request id", &filters.id, "text", "from x-request-id"))
                (field("key_id", "Key id", &filters.key_id, "text", ""))
                (field("model", "Model", &filters.model, "text", ""))
                (field("deployment", "Deployment", &filters.deployment, "text", ""))
                (field("status", "Status", &filters.status, "text", "e.g. 429"))
                (field("from", "From (UTC day)", &filters.from, "date", "2026-11-01"))
                (field("to", "To (UTC day, included)", &filters.to, "date", "2026-11-30"))
            }
            p { button type="submit" #filter { "Filter" } " " a href="/ui/usage" { "Clear" } }
        }
    }
}

/// `GET /ui/usage.csv`: the filtered records, newest first, up to [`CSV_ROWS`].
pub(crate) async fn export(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(mut filters): Query<UsageFilters>,
) -> Response {
    let mut csv = CSV_COLUMNS.join(",");
    csv.push('\n');
    let mut rows = 0;
    while rows < CSV_ROWS {
        let query = match filters.api_query(1000) {
            Ok(query) => query,
            Err((field, message)) => {
                return (StatusCode::BAD_REQUEST, format!("`{field}`: {message}")).into_response();
            }
        };
        let answer = state.api.get(&visit, &api_uri(&query)).await;
        if answer.status != StatusCode::OK {
            return refused(&visit.person, &answer);
        }
        for r in answer.body["data"].as_array().into_iter().flatten().take(CSV_ROWS - rows) {
            let cells: Vec<String> = CSV_COLUMNS.iter().map(|field| csv_field(&plain(&r[*field]))).collect();
            csv.push_str(&cells.join(","));
            csv.push('\n');
            rows += 1;
        }
        match answer.body["next_before"].as_str() {
            Some(next) => filters.before = next.to_owned(),
            None => break,
        }
    }
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"moat-usage.csv\""));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A CSV field, quoted when it must be, and defused against spreadsheet formulas.
fn csv_field(value: &str) -> String {
    let value = if value.starts_with(['=', '+', '-', '@']) { format!("'{value}") } else { value.to_owned() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_become_the_api_query_and_dates_cover_whole_days() {
        let filters = UsageFilters {
            model: " m ".into(),
            status: "429".into(),
            from: "2026-11-01".into(),
            to: "2026-11-30".into(),
            ..UsageFilters::default()
        };
        let query = filters.api_query(50).expect("valid");
        assert!(query.contains(&("model", "m".to_owned())));
        assert!(query.contains(&("from", "2026-11-01T00:00:00Z".to_owned())));
        assert!(query.contains(&("to", "2026-12-01T00:00:00Z".to_owned())), "{query:?}");
        let bad = UsageFilters { status: "teapot".into(), ..UsageFilters::default() };
        assert_eq!(bad.api_query(50).map_err(|e| e.0), Err("status"));
        let bad = UsageFilters { from: "yesterday".into(), ..UsageFilters::default() };
        assert_eq!(bad.api_query(50).map_err(|e| e.0), Err("from"));
        assert_eq!(
            filters.link("/ui/usage", Some("r1")),
            "/ui/usage?model=+m+&status=429&from=2026-11-01&to=2026-11-30&before=r1"
        );
        assert_eq!(csv_field("=cmd"), "'=cmd");
    }
}
