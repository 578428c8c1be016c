//! Users: everyone in the organisation, a page at a time (by cursor, so 100,000 people list as
//! fast as ten), with each person's role and state; admins change a role or deactivate (which
//! revokes the person's keys at once) and reactivate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::percent_encode;
use crate::layout::{Section, manages, page};
use crate::{ConsoleState, Visit, checked_form, html, redirect, refused};

const PAGE: u32 = 100;
const ROLES: [&str; 4] = ["viewer", "member", "admin", "owner"];

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UsersQuery {
    #[serde(default)]
    after: String,
    /// Find one person by e-mail instead of paging through everyone.
    #[serde(default)]
    email: String,
}

/// `GET /ui/users`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<UsersQuery>,
) -> Response {
    let email = query.email.trim();
    let mut api = format!("/admin/v1/users?limit={PAGE}");
    if !email.is_empty() {
        api.push_str(&format!("&email={}", percent_encode(email)));
    } else if !query.after.is_empty() {
        api.push_str(&format!("&after={}", percent_encode(&query.after)));
    }
    let answer = state.api.get(&visit, &api).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let users: Vec<&Value> = answer.body["data"].as_array().map(|u| u.iter().collect()).unwrap_or_default();
    let can_change = manages(&visit.person);
    let csrf = &visit.person.session.csrf;
    let body = html! {
        p { "People are added by invitation (from a team's page), by single sign-on, or by SCIM from your identity provider." }
        form.find method="get" action="/ui/users" role="search" {
            label for="find-email" { "Find by e-mail" }
            input #find-email name="email" type="email" value=(email) autocomplete="off";
            " " button.quiet type="submit" { "Find" }
            @if !email.is_empty() { " " a href="/ui/users" { "Everyone" } }
        }
        @if !email.is_empty() && users.is_empty() { p #no-users { "No one has the e-mail " (email) "." } }
        div.table-wrap { table #users {
            thead { tr { th scope="col" { "e-mail" } th scope="col" { "name" } th scope="col" { "role" } th scope="col" { "state" } th scope="col" { "since" }
                         @if can_change { th scope="col" { span.skip { "actions" } } } } }
            tbody { @for u in &users {
                @let id = u["id"].as_str().unwrap_or("");
                @let active = u["active"].as_bool().unwrap_or(false);
                @let role = u["org_role"].as_str().unwrap_or("");
                @let email = u["email"].as_str().unwrap_or("");
                tr {
                    td { (email) } td { (u["name"].as_str().unwrap_or("")) }
                    td { @if can_change && id != visit.person.user.id {
                        form.inline method="post" action=(format!("/ui/users/{id}")) {
                            input type="hidden" name="csrf" value=(csrf);
                            label.skip for=(format!("role-{id}")) { "Role of " (email) }
                            select id=(format!("role-{id}")) name="org_role" { @for r in ROLES { option value=(r) selected[r == role] { (r) } } }
                            " " button.quiet type="submit" { "Change" }
                        }
                    } @else { (role) } }
                    td.good[active].bad[!active] { @if active { "active" } @else { "deactivated" } }
                    td { (u["created_at"].as_str().and_then(|d| d.get(..10)).unwrap_or("")) }
                    @if can_change { td { @if id != visit.person.user.id {
                        form.inline method="post" action=(format!("/ui/users/{id}")) {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="active" value=(if active { "false" } else { "true" });
                            @if active { button.danger type="submit" aria-label=(format!("Deactivate {email}")) { "Deactivate" } }
                            @else { button.quiet type="submit" aria-label=(format!("Reactivate {email}")) { "Reactivate" } }
                        }
                    } } }
                }
            } }
        } }
        @if let Some(next) = answer.body["next_after"].as_str() {
            p { a href=(format!("/ui/users?after={}", percent_encode(next))) rel="next" #more { "More people →" } }
        }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Users, "Users", &body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserForm {
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    active: Option<String>,
}

/// `POST /ui/users/{id}`: a role change, or (de)activation.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: UserForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let mut change = json!({});
    if let Some(role) = form.org_role {
        change["org_role"] = json!(role);
    }
    if let Some(active) = form.active {
        change["active"] = json!(active == "true");
    }
    let answer =
        state.api.call(&visit, Method::PATCH, &format!("/admin/v1/users/{}", percent_encode(&id)), Some(&change)).await;
    if answer.status.is_success() { redirect("/ui/users") } else { refused(&visit.person, &answer) }
}
