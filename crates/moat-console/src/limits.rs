//! Rate limits: requests and tokens per minute and concurrent requests per key, user, team or
//! model, with the last minute's counts; setting one (admins) and deleting one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::layout::{Section, manages, page};
use crate::{ConsoleState, Visit, checked_form, html, redirect, refused};

const SCOPES: [&str; 4] = ["team", "user", "key", "model"];
const CAPS: [(&str, &str); 3] = [
    ("requests_per_minute", "Requests a minute"),
    ("tokens_per_minute", "Tokens a minute"),
    ("concurrent_requests", "Concurrent requests"),
];

/// The set-a-limit form's values (empty caps are none).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LimitForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    scope_id: String,
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    tokens_per_minute: String,
    #[serde(default)]
    concurrent_requests: String,
}

impl LimitForm {
    fn cap(&self, name: &str) -> &str {
        match name {
            "requests_per_minute" => &self.requests_per_minute,
            "tokens_per_minute" => &self.tokens_per_minute,
            _ => &self.concurrent_requests,
        }
    }

    /// The admin API's request, or the field that is wrong and why.
    fn request(&self) -> Result<Value, (String, String)> {
        let mut request = json!({ "scope": self.scope, "scope_id": self.scope_id.trim() });
        for (name, _) in CAPS {
            let text = self.cap(name).trim();
            if !text.is_empty() {
                let value: u64 = text.parse().map_err(|_| (name.to_owned(), "a whole number, like 60".to_owned()))?;
                request[name] = json!(value);
            }
        }
        Ok(request)
    }
}

/// `GET /ui/limits`.
pub(crate) async fn list(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    limits_page(&state, &visit, &LimitForm { scope: "team".into(), ..LimitForm::default() }, None).await
}

async fn limits_page(
    state: &ConsoleState,
    visit: &Visit,
    form: &LimitForm,
    error: Option<(String, String)>,
) -> Response {
    let answer = state.api.get(visit, "/admin/v1/limits").await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let limits: Vec<&Value> = answer.body["data"].as_array().map(|l| l.iter().collect()).unwrap_or_default();
    let can_change = manages(&visit.person);
    let csrf = &visit.person.session.csrf;
    let wrong = |field: &str| {
        error
            .as_ref()
            .filter(|(f, _)| f == field || (field == "scope_id" && !CAPS.iter().any(|(c, _)| c == f)))
            .map(|(_, m)| m.clone())
    };
    let shown = |value: &Value| value.as_u64().map_or_else(|| "–".to_owned(), |v| v.to_string());
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        @if limits.is_empty() { p #no-limits { "No limits set." } } @else {
            div.table-wrap { table #limits {
                thead { tr { th scope="col" { "scope" } th.num scope="col" { "requests/min" } th.num scope="col" { "tokens/min" }
                             th.num scope="col" { "concurrent" } th scope="col" { "last minute" } @if can_change { th scope="col" { span.skip { "actions" } } } } }
                tbody { @for l in &limits {
                    @let scope = format!("{} {}", l["scope"].as_str().unwrap_or(""), l["scope_id"].as_str().unwrap_or(""));
                    tr {
                        td { (scope) } td.num { (shown(&l["requests_per_minute"])) } td.num { (shown(&l["tokens_per_minute"])) }
                        td.num { (shown(&l["concurrent_requests"])) }
                        td { (l["current"].as_object().map(|c| c.iter().map(|(k, v)| format!("{}: {v}", k.replace('_', " "))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        @if can_change { td { form.inline method="post" action=(format!("/ui/limits/{}/delete", l["id"].as_str().unwrap_or(""))) {
                            input type="hidden" name="csrf" value=(csrf);
                            button.danger type="submit" aria-label=(format!("Delete the limit of {scope}")) { "Delete" }
                        } } }
                    }
                } }
            } }
        }
        @if can_change {
            h2 #set { "Set a limit" }
            p { "Requests past a limit are refused with 429 and a " code { "retry-after" } "; leave a cap empty for none." }
            form method="post" action="/ui/limits" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                div.grid-filters {
                    div { label for="scope" { "For" } select #scope name="scope" { @for s in SCOPES { option value=(s) selected[form.scope == s] { (s) } } } }
                    div { label for="scope_id" { "Id (or model name)" }
                        input #scope_id name="scope_id" value=(form.scope_id) aria-invalid=[wrong("scope_id").map(|_| "true")];
                        @if let Some(m) = wrong("scope_id") { p.field-error role="alert" #scope_id-error { (m) } } }
                    @for (name, label) in CAPS {
                        div { label for=(name) { (label) }
                            input id=(name) name=(name) inputmode="numeric" value=(form.cap(name)) aria-invalid=[wrong(name).map(|_| "true")];
                            @if let Some(m) = wrong(name) { p.field-error role="alert" id=(format!("{name}-error")) { (m) } } }
                    }
                }
                p { button type="submit" #set-limit { "Set limit" } }
            }
        }
    };
    html(status, &page(&visit.person, Section::Limits, "Rate limits", &body))
}

/// `POST /ui/limits`.
pub(crate) async fn create(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: LimitForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => return limits_page(&state, &visit, &form, Some(error)).await,
    };
    let answer = state.api.call(&visit, Method::POST, "/admin/v1/limits", Some(&request)).await;
    match answer.status {
        StatusCode::CREATED | StatusCode::OK => redirect("/ui/limits"),
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            let error = (answer.field().unwrap_or("").to_owned(), answer.message());
            limits_page(&state, &visit, &form, Some(error)).await
        }
        _ => refused(&visit.person, &answer),
    }
}

/// `POST /ui/limits/{id}/delete`.
pub(crate) async fn delete(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/limits/{}", crate::keys::percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, "/ui/limits").await
}
