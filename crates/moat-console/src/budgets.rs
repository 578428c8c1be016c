//! Budgets: each with its current period's spend against the amount; setting, changing,
//! resetting and deleting one (admins).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::chart::meter;
use crate::layout::{Section, page};
use crate::{ConsoleState, FieldError, Visit, checked_form, html, refused, submit};

const SCOPES: [&str; 4] = ["team", "user", "key", "org"];
const PERIODS: [&str; 4] = ["month", "week", "day", "none"];

/// The set-a-budget form's values.
#[derive(Debug, Deserialize)]
pub(crate) struct BudgetForm {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    scope_id: String,
    #[serde(default)]
    amount_usd: String,
    #[serde(default)]
    period: String,
    #[serde(default)]
    time_zone: String,
}

impl Default for BudgetForm {
    fn default() -> Self {
        BudgetForm {
            scope: "team".to_owned(),
            scope_id: String::new(),
            amount_usd: String::new(),
            period: "month".to_owned(),
            time_zone: "UTC".to_owned(),
        }
    }
}

/// `GET /ui/budgets`.
pub(crate) async fn list(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    budgets_page(&state, &visit, &BudgetForm::default(), None).await
}

async fn budgets_page(state: &ConsoleState, visit: &Visit, form: &BudgetForm, error: Option<FieldError>) -> Response {
    let answer = state.api.get(visit, "/admin/v1/budgets").await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let budgets: Vec<&Value> = answer.body["data"].as_array().map(|b| b.iter().collect()).unwrap_or_default();
    let manages = crate::layout::manages(&visit.person);
    let csrf = &visit.person.session.csrf;
    let wrong = |field: &str| {
        error.as_ref().filter(|(f, _)| f == field || (field == "amount_usd" && f.is_empty())).map(|(_, m)| m.clone())
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        @if budgets.is_empty() { p #no-budgets { "No budgets set." } } @else {
            div.table-wrap { table #budgets {
                thead { tr { th scope="col" { "scope" } th scope="col" { "period" } th.num scope="col" { "spent" } th.num scope="col" { "amount" }
                             th scope="col" { "used" } th scope="col" { "alerts at" } @if manages { th scope="col" { span.skip { "actions" } } } } }
                tbody { @for b in &budgets {
                    @let used = b["current"]["percent_used"].as_f64().unwrap_or(0.0);
                    @let scope = crate::limits::scope_label(b);
                    tr {
                        td { (scope) } td { (b["period"].as_str().unwrap_or("")) " (" (b["time_zone"].as_str().unwrap_or("UTC")) ")" }
                        td.num { (b["current"]["spent_usd"].as_str().unwrap_or("–")) } td.num { (b["amount_usd"].as_str().unwrap_or("")) }
                        td { (meter(used, &format!("{scope}: {used:.0} % used"))) " " (format!("{used:.0} %")) }
                        td { (b["thresholds"].as_array().map(|t| t.iter().map(|v| format!("{v} %")).collect::<Vec<_>>().join(", ")).unwrap_or_default()) }
                        @if manages { td {
                            a.button.quiet href=(format!("/ui/budgets/{}", b["id"].as_str().unwrap_or(""))) aria-label=(format!("Edit the budget of {scope}")) { "Edit" }
                            " "
                            form.inline method="post" action=(format!("/ui/budgets/{}/delete", b["id"].as_str().unwrap_or(""))) {
                                input type="hidden" name="csrf" value=(csrf);
                                button.danger type="submit" aria-label=(format!("Delete the budget of {scope}")) { "Delete" }
                            }
                        } }
                    }
                } }
            } }
        }
        @if manages {
            h2 #set { "Set a budget" }
            p { "Requests that would pass a budget are refused (402) before they reach a model; alerts go to the configured webhooks at 50, 80 and 100 %." }
            form method="post" action="/ui/budgets" novalidate {
                input type="hidden" name="csrf" value=(csrf);
                div.grid-filters {
                    div { label for="scope" { "For" }
                        select #scope name="scope" { @for s in SCOPES { option value=(s) selected[form.scope == s] { (s) } } } }
                    div { label for="scope_id" { "Id (team, user or key id; empty for the org)" }
                        input #scope_id name="scope_id" value=(form.scope_id) aria-invalid=[wrong("scope_id").map(|_| "true")];
                        @if let Some(m) = wrong("scope_id") { p.field-error role="alert" #scope_id-error { (m) } } }
                    div { label for="amount_usd" { "Amount (US$)" }
                        input #amount_usd name="amount_usd" inputmode="decimal" value=(form.amount_usd) aria-invalid=[wrong("amount_usd").map(|_| "true")];
                        @if let Some(m) = wrong("amount_usd") { p.field-error role="alert" #amount_usd-error { (m) } } }
                    div { label for="period" { "Period" }
                        select #period name="period" { @for p in PERIODS { option value=(p) selected[form.period == p] { (p) } } } }
                    div { label for="time_zone" { "Time zone" }
                        input #time_zone name="time_zone" value=(form.time_zone) aria-invalid=[wrong("time_zone").map(|_| "true")];
                        @if let Some(m) = wrong("time_zone") { p.field-error role="alert" #time_zone-error { (m) } } }
                }
                p { button type="submit" #set-budget { "Set budget" } }
            }
        }
    };
    html(status, &page(&visit.person, Section::Budgets, "Budgets", &body))
}

/// `POST /ui/budgets`.
pub(crate) async fn create(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: BudgetForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let mut request = json!({
        "scope": form.scope,
        "amount_usd": form.amount_usd.trim(),
        "period": form.period,
        "time_zone": if form.time_zone.trim().is_empty() { "UTC" } else { form.time_zone.trim() },
    });
    if !form.scope_id.trim().is_empty() {
        request["scope_id"] = json!(form.scope_id.trim());
    }
    let call = (Method::POST, "/admin/v1/budgets");
    submit(&state, &visit, call, &request, "/ui/budgets", |e| budgets_page(&state, &visit, &form, Some(e))).await
}

/// `POST /ui/budgets/{id}/delete`.
pub(crate) async fn delete(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/budgets/{}", crate::keys::percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, "/ui/budgets").await
}

/// The change-a-budget form's values.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ChangeForm {
    #[serde(default)]
    amount_usd: String,
    #[serde(default)]
    time_zone: String,
    /// Percentages, separated by commas or spaces.
    #[serde(default)]
    thresholds: String,
}

impl ChangeForm {
    /// The admin API's change, or the field that is wrong and why.
    fn request(&self) -> Result<Value, FieldError> {
        let thresholds = self
            .thresholds
            .split([',', ' '])
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().trim_end_matches('%').parse::<u32>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ("thresholds".to_owned(), "percentages separated by commas, like 50, 80, 100".to_owned()))?;
        Ok(
            json!({ "amount_usd": self.amount_usd.trim(), "time_zone": self.time_zone.trim(), "thresholds": thresholds }),
        )
    }
}

/// `GET /ui/budgets/{id}`: one budget's figures and a form to change it.
pub(crate) async fn edit(State(state): State<Arc<ConsoleState>>, visit: Visit, Path(id): Path<String>) -> Response {
    edit_page(&state, &visit, &id, None, None).await
}

async fn edit_page(
    state: &ConsoleState,
    visit: &Visit,
    id: &str,
    form: Option<&ChangeForm>,
    error: Option<FieldError>,
) -> Response {
    let answer = state.api.get(visit, &format!("/admin/v1/budgets/{}", crate::keys::percent_encode(id))).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let b = &answer.body;
    let saved = ChangeForm {
        amount_usd: b["amount_usd"].as_str().unwrap_or("").trim_start_matches('$').to_owned(),
        time_zone: b["time_zone"].as_str().unwrap_or("UTC").to_owned(),
        thresholds: b["thresholds"]
            .as_array()
            .map(|t| t.iter().map(crate::plain).collect::<Vec<_>>().join(", "))
            .unwrap_or_default(),
    };
    let form = form.unwrap_or(&saved);
    let scope = crate::limits::scope_label(b);
    let used = b["current"]["percent_used"].as_f64().unwrap_or(0.0);
    let csrf = &visit.person.session.csrf;
    let wrong = |field: &str| {
        error.as_ref().filter(|(f, _)| f == field || (field == "amount_usd" && f.is_empty())).map(|(_, m)| m.as_str())
    };
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        p { "Budget for " strong { (scope) } ", per " (crate::shown(&b["period"])) "." }
        p { "This period: " (crate::shown(&b["current"]["spent_usd"])) " spent of " (crate::shown(&b["amount_usd"]))
            " " (meter(used, &format!("{used:.0} % used"))) " " (format!("{used:.0} %")) }
        form method="post" action=(format!("/ui/budgets/{id}")) novalidate {
            input type="hidden" name="csrf" value=(csrf);
            (crate::layout::field("amount_usd", "Amount (US$)", &form.amount_usd, "text", "", wrong("amount_usd")))
            (crate::layout::field("time_zone", "Time zone", &form.time_zone, "text", "UTC", wrong("time_zone")))
            (crate::layout::field("thresholds", "Alert at (percent used)", &form.thresholds, "text", "50, 80, 100", wrong("thresholds")))
            p { button type="submit" #save-budget { "Save" } " " a href="/ui/budgets" { "Back to budgets" } }
        }
        h2 { "Start this period again" }
        p { "Forgets what this period has spent so far (requests in flight still settle). The audit log records who did it." }
        form method="post" action=(format!("/ui/budgets/{id}/reset")) {
            input type="hidden" name="csrf" value=(csrf);
            button.danger type="submit" #reset-budget { "Reset spend" }
        }
    };
    html(status, &page(&visit.person, Section::Budgets, "Change a budget", &body))
}

/// `POST /ui/budgets/{id}`.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: ChangeForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let request = match form.request() {
        Ok(request) => request,
        Err(error) => return edit_page(&state, &visit, &id, Some(&form), Some(error)).await,
    };
    let path = format!("/admin/v1/budgets/{}", crate::keys::percent_encode(&id));
    let again = |e| edit_page(&state, &visit, &id, Some(&form), Some(e));
    submit(&state, &visit, (Method::PATCH, &path), &request, "/ui/budgets", again).await
}

/// `POST /ui/budgets/{id}/reset`.
pub(crate) async fn reset(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/budgets/{}/reset", crate::keys::percent_encode(&id));
    let back = format!("/ui/budgets/{}", crate::keys::percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::POST, &path, &back).await
}
