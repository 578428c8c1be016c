//! Rate limits: requests and tokens per minute and concurrent requests per key, user, team or
//! model, with the last minute's counts; setting, changing and deleting one (admins).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::layout::{Section, manages, page};
use crate::{ConsoleState, FieldError, Visit, checked_form, html, refused, submit};

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
    #[serde(flatten)]
    caps: CapsForm,
}

impl LimitForm {
    /// The admin API's request, or the field that is wrong and why.
    fn request(&self) -> Result<Value, FieldError> {
        let mut request = json!({ "scope": self.scope, "scope_id": self.scope_id.trim() });
        for (name, cap) in self.caps.parsed()? {
            if let Some(cap) = cap {
                request[name] = json!(cap);
            }
        }
        Ok(request)
    }
}

/// A budget's or limit's scope as people read it: `team Platform`, `user ana@example.com`,
/// `model gemma`, or the id when it has no name.
pub(crate) fn scope_label(policy: &Value) -> String {
    let scope = policy["scope"].as_str().unwrap_or("");
    match policy["scope_name"].as_str().or(policy["scope_id"].as_str()) {
        Some(name) if !name.is_empty() => format!("{scope} {name}"),
        _ => scope.to_owned(),
    }
}

/// `GET /ui/limits`.
pub(crate) async fn list(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    limits_page(&state, &visit, &LimitForm { scope: "team".into(), ..LimitForm::default() }, None).await
}

async fn limits_page(state: &ConsoleState, visit: &Visit, form: &LimitForm, error: Option<FieldError>) -> Response {
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
                    @let scope = scope_label(l);
                    tr {
                        td { (scope) } td.num { (shown(&l["requests_per_minute"])) } td.num { (shown(&l["tokens_per_minute"])) }
                        td.num { (shown(&l["concurrent_requests"])) }
                        td { (l["current"].as_object().map(|c| c.iter().map(|(k, v)| format!("{}: {v}", k.replace('_', " "))).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        @if can_change { td {
                            a.button.quiet href=(format!("/ui/limits/{}", l["id"].as_str().unwrap_or(""))) aria-label=(format!("Edit the limit of {scope}")) { "Edit" }
                            " "
                            form.inline method="post" action=(format!("/ui/limits/{}/delete", l["id"].as_str().unwrap_or(""))) {
                                input type="hidden" name="csrf" value=(csrf);
                                button.danger type="submit" aria-label=(format!("Delete the limit of {scope}")) { "Delete" }
                            }
                        } }
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
                            input id=(name) name=(name) inputmode="numeric" value=(form.caps.cap(name)) aria-invalid=[wrong(name).map(|_| "true")];
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
    let call = (Method::POST, "/admin/v1/limits");
    submit(&state, &visit, call, &request, "/ui/limits", |e| limits_page(&state, &visit, &form, Some(e))).await
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

/// The change-a-limit form: every cap, an empty one removed.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CapsForm {
    #[serde(default)]
    requests_per_minute: String,
    #[serde(default)]
    tokens_per_minute: String,
    #[serde(default)]
    concurrent_requests: String,
}

impl CapsForm {
    fn cap(&self, name: &str) -> &str {
        match name {
            "requests_per_minute" => &self.requests_per_minute,
            "tokens_per_minute" => &self.tokens_per_minute,
            _ => &self.concurrent_requests,
        }
    }

    /// Each cap by name: a number, or `None` when left empty; or the wrong field and why.
    fn parsed(&self) -> Result<Vec<(&'static str, Option<u64>)>, FieldError> {
        CAPS.iter()
            .map(|(name, _)| {
                let text = self.cap(name).trim();
                let cap = (!text.is_empty())
                    .then(|| text.parse::<u64>())
                    .transpose()
                    .map_err(|_| ((*name).to_owned(), "a whole number, like 60".to_owned()))?;
                Ok((*name, cap))
            })
            .collect()
    }

    /// The admin API's change (an empty cap is `null`: removed), or the wrong field and why.
    fn request(&self) -> Result<Value, FieldError> {
        Ok(self.parsed()?.into_iter().map(|(name, cap)| (name.to_owned(), json!(cap))).collect())
    }
}

/// `GET /ui/limits/{id}`: one limit's caps and last minute, and a form to change them.
pub(crate) async fn edit(State(state): State<Arc<ConsoleState>>, visit: Visit, Path(id): Path<String>) -> Response {
    edit_page(&state, &visit, &id, None, None).await
}

async fn edit_page(
    state: &ConsoleState,
    visit: &Visit,
    id: &str,
    form: Option<&CapsForm>,
    error: Option<FieldError>,
) -> Response {
    let answer = state.api.get(visit, &format!("/admin/v1/limits/{}", crate::keys::percent_encode(id))).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let l = &answer.body;
    let text = |name: &str| l[name].as_u64().map(|v| v.to_string()).unwrap_or_default();
    let saved = CapsForm {
        requests_per_minute: text("requests_per_minute"),
        tokens_per_minute: text("tokens_per_minute"),
        concurrent_requests: text("concurrent_requests"),
    };
    let form = form.unwrap_or(&saved);
    let wrong = |field: &str| {
        error
            .as_ref()
            .filter(|(f, _)| f == field || (field == "requests_per_minute" && !CAPS.iter().any(|(c, _)| c == f)))
            .map(|(_, m)| m.as_str())
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        p { "Limit for " strong { (scope_label(l)) } ". Leave a cap empty to remove it; a limit keeps at least one." }
        form method="post" action=(format!("/ui/limits/{id}")) novalidate {
            input type="hidden" name="csrf" value=(visit.person.session.csrf);
            @for (name, label) in CAPS { (crate::layout::field(name, label, form.cap(name), "text", "", wrong(name))) }
            p { button type="submit" #save-limit { "Save" } " " a href="/ui/limits" { "Back to limits" } }
        }
    };
    html(status, &page(&visit.person, Section::Limits, "Change a limit", &body))
}

/// `POST /ui/limits/{id}`.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: CapsForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => return edit_page(&state, &visit, &id, Some(&form), Some(error)).await,
    };
    let path = format!("/admin/v1/limits/{}", crate::keys::percent_encode(&id));
    let again = |e| edit_page(&state, &visit, &id, Some(&form), Some(e));
    submit(&state, &visit, (Method::PATCH, &path), &request, "/ui/limits", again).await
}
