//! Invitations: the open ones (or all, with their state), a page at a time, revoking an open one, and
//! inviting someone to the organisation (optionally straight into a team).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::html;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::percent_encode;
use crate::layout::{Section, page};
use crate::teams::{Invite, invite_outcome};
use crate::{ConsoleState, Visit, checked_form, html, refused};

/// The organisation roles an invitation can give, lowest first.
const ORG_ROLES: [&str; 4] = ["member", "viewer", "admin", "owner"];

/// Invitations a page shows.
const PAGE: u32 = 50;

/// Which invitations the list shows.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// `all`, or open ones only (the default).
    #[serde(default)]
    show: String,
    /// The cursor: invitations older than this id.
    #[serde(default)]
    before: String,
}

/// `GET /ui/invitations?show=all&before=`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<ListQuery>,
) -> Response {
    invitations_page(&state, &visit, &query, &InviteForm::default(), &Invite::default(), StatusCode::OK).await
}

async fn invitations_page(
    state: &ConsoleState,
    visit: &Visit,
    query: &ListQuery,
    form: &InviteForm,
    outcome: &Invite,
    status: StatusCode,
) -> Response {
    let all = query.show == "all";
    let mut uri = format!("/admin/v1/invitations?limit={PAGE}");
    if !all {
        uri.push_str("&status=open");
    }
    if !query.before.is_empty() {
        uri.push_str(&format!("&before={}", percent_encode(&query.before)));
    }
    let answer = state.api.get(visit, &uri).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let teams = state.api.get(visit, "/admin/v1/teams").await;
    let team_names: HashMap<&str, &str> = teams.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["id"].as_str()?, t["name"].as_str()?)))
        .collect();
    let invitations: Vec<&Value> = answer.body["data"].as_array().map(|i| i.iter().collect()).unwrap_or_default();
    let show = if all { "all" } else { "open" };
    let csrf = &visit.person.session.csrf;
    let error = outcome.error.as_deref();
    let body = html! {
        p.periods {
            a href="/ui/invitations" aria-current=[(!all).then_some("true")] { "Open" }
            a href="/ui/invitations?show=all" aria-current=[all.then_some("true")] { "All, with accepted, revoked and expired" }
        }
        @if invitations.is_empty() { p #no-invitations { @if all { "No invitations yet." } @else { "No open invitations." } } } @else {
            div.table-wrap { table #invitations {
                thead { tr { th scope="col" { "e-mail" } th scope="col" { "role" } th scope="col" { "team" } th scope="col" { "state" }
                             th scope="col" { "expires" } th scope="col" { span.skip { "actions" } } } }
                tbody { @for i in &invitations {
                    @let id = i["id"].as_str().unwrap_or("");
                    @let state = i["status"].as_str().unwrap_or("");
                    @let email = i["email"].as_str().unwrap_or("");
                    @let team = i["team_id"].as_str().map(|t| team_names.get(t).copied().unwrap_or(t));
                    tr {
                        td { (email) } td { (i["org_role"].as_str().unwrap_or("")) }
                        td { @if let Some(team) = team { (team) " (" (i["team_role"].as_str().unwrap_or("member")) ")" } @else { "–" } }
                        td.good[state == "accepted"].bad[state == "revoked" || state == "expired"] { (state) }
                        td { (i["expires_at"].as_str().and_then(|d| d.get(..10)).unwrap_or("")) }
                        td { @if state == "open" {
                            form.inline method="post" action=(format!("/ui/invitations/{id}/revoke")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button.danger type="submit" aria-label=(format!("Revoke the invitation of {email}")) { "Revoke" }
                            }
                        } }
                    }
                } }
            } }
        }
        @if let Some(next) = answer.body["next_before"].as_str() {
            p { a href=(format!("/ui/invitations?show={show}&before={}", percent_encode(next))) rel="next" #older { "Older invitations →" } }
        }
        h2 #invite { "Invite someone" }
        (invite_outcome(outcome))
        form method="post" action="/ui/invitations" novalidate {
            input type="hidden" name="csrf" value=(csrf);
            div.grid-filters {
                div { label for="email" { "E-mail" }
                    input #email name="email" type="email" value=(form.email) required autocomplete="off"
                        aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "email-error")];
                    @if let Some(message) = error { p.field-error #email-error role="alert" { (message) } } }
                div { label for="org_role" { "Role in the organisation" }
                    select #org_role name="org_role" { @for r in ORG_ROLES { option value=(r) selected[form.org_role == r] { (r) } } } }
                div { label for="team_id" { "Team (optional)" }
                    select #team_id name="team_id" {
                        option value="" { "no team" }
                        @for (id, name) in sorted(&team_names) { option value=(id) selected[form.team_id == id] { (name) } }
                    } }
                div { label for="team_role" { "Role in the team" }
                    select #team_role name="team_role" {
                        option value="member" selected[form.team_role != "team-admin"] { "member" }
                        option value="team-admin" selected[form.team_role == "team-admin"] { "team admin" }
                    } }
            }
            p { button type="submit" #send-invite { "Invite" } }
        }
    };
    html(status, &page(&visit.person, Section::Invitations, "Invitations", &body))
}

fn sorted<'a>(names: &HashMap<&'a str, &'a str>) -> Vec<(&'a str, &'a str)> {
    let mut teams: Vec<(&str, &str)> = names.iter().map(|(id, name)| (*id, *name)).collect();
    teams.sort_by_key(|(id, name)| (name.to_lowercase(), *id));
    teams
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    org_role: String,
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    team_role: String,
}

/// `POST /ui/invitations`.
pub(crate) async fn create(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: InviteForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let mut request = json!({ "email": form.email.trim(), "org_role": form.org_role });
    if !form.team_id.is_empty() {
        request["team_id"] = json!(form.team_id);
        request["team_role"] = json!(form.team_role);
    }
    let answer = state.api.call(&visit, Method::POST, "/admin/v1/invitations", Some(&request)).await;
    match answer.status {
        StatusCode::CREATED => {
            let outcome = Invite::made(form.email.trim(), &answer.body);
            invitations_page(
                &state,
                &visit,
                &ListQuery::default(),
                &InviteForm::default(),
                &outcome,
                StatusCode::CREATED,
            )
            .await
        }
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            let outcome = Invite { error: Some(answer.message()), ..Invite::default() };
            invitations_page(&state, &visit, &ListQuery::default(), &form, &outcome, StatusCode::BAD_REQUEST).await
        }
        _ => refused(&visit.person, &answer),
    }
}

/// `POST /ui/invitations/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/invitations/{}", percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, "/ui/invitations").await
}
