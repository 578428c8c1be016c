//! Teams: the ones the person may see, creating one (admins), and a team's page with its
//! members and an invitation form that adds a new person straight into the team.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, checked_form, html, redirect, refused};

/// `GET /ui/teams`.
pub(crate) async fn list(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    teams_page(&state, &visit, "", None).await
}

async fn teams_page(state: &ConsoleState, visit: &Visit, name: &str, error: Option<String>) -> Response {
    let answer = state.api.get(visit, "/admin/v1/teams").await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let teams: Vec<&Value> = answer.body["data"].as_array().map(|t| t.iter().collect()).unwrap_or_default();
    let manages = crate::layout::manages(&visit.person);
    let status = if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        @if teams.is_empty() { p #no-teams { "No teams yet." } } @else {
            div.table-wrap { table #teams {
                thead { tr { th scope="col" { "team" } th scope="col" { "id" } th scope="col" { "created" } } }
                tbody { @for team in &teams {
                    @let id = team["id"].as_str().unwrap_or("");
                    tr { td { a href=(format!("/ui/teams/{id}")) { (team["name"].as_str().unwrap_or("")) } }
                         td { code { (id) } } td { (team["created_at"].as_str().and_then(|d| d.get(..10)).unwrap_or("")) } }
                } }
            } }
        }
        @if manages {
            h2 { "Create a team" }
            form method="post" action="/ui/teams" novalidate {
                input type="hidden" name="csrf" value=(visit.person.session.csrf);
                label for="team-name" { "Name" }
                input #team-name name="name" value=(name) required maxlength="254"
                    aria-invalid=[error.as_ref().map(|_| "true")] aria-describedby=[error.as_ref().map(|_| "team-name-error")];
                @if let Some(message) = &error { p.field-error #team-name-error role="alert" { (message) } }
                p { button type="submit" #create-team { "Create team" } }
            }
        }
    };
    html(status, &page(&visit.person, Section::Teams, "Teams", &body))
}

#[derive(Debug, Deserialize)]
pub(crate) struct TeamForm {
    #[serde(default)]
    name: String,
}

/// `POST /ui/teams`.
pub(crate) async fn create(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: TeamForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let answer = state.api.call(&visit, Method::POST, "/admin/v1/teams", Some(&json!({ "name": form.name }))).await;
    match answer.status {
        StatusCode::CREATED => redirect(&format!("/ui/teams/{}", answer.body["id"].as_str().unwrap_or(""))),
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            teams_page(&state, &visit, &form.name, Some(answer.message())).await
        }
        _ => refused(&visit.person, &answer),
    }
}

/// `GET /ui/teams/{id}`.
pub(crate) async fn show(State(state): State<Arc<ConsoleState>>, visit: Visit, Path(id): Path<String>) -> Response {
    team_page(&state, &visit, &id, &Invite::default(), StatusCode::OK).await
}

/// The invitation form's values and outcome.
#[derive(Debug, Default)]
struct Invite {
    email: String,
    role: String,
    error: Option<String>,
    /// The link to pass on when moat could not e-mail it.
    link: Option<String>,
    emailed: bool,
}

async fn team_page(state: &ConsoleState, visit: &Visit, id: &str, invite: &Invite, status: StatusCode) -> Response {
    let answer = state.api.get(visit, &format!("/admin/v1/teams/{}", crate::keys::percent_encode(id))).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let team = &answer.body;
    let emails = state.api.user_emails(visit).await;
    let members: Vec<&Value> = team["members"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    let name = team["name"].as_str().unwrap_or("");
    let body = html! {
        p { "Team id " code { (id) } }
        h2 { "Members" }
        @if members.is_empty() { p #no-members { "No members yet." } } @else {
            div.table-wrap { table #members {
                thead { tr { th scope="col" { "person" } th scope="col" { "role in the team" } } }
                tbody { @for m in &members {
                    @let user = m["user_id"].as_str().unwrap_or("");
                    tr { td { (emails.get(user).map_or(user, String::as_str)) } td { (m["role"].as_str().unwrap_or("")) } }
                } }
            } }
        }
        h2 #invite { "Invite someone to this team" }
        (invite_outcome(invite))
        form method="post" action=(format!("/ui/teams/{id}/invite")) novalidate {
            input type="hidden" name="csrf" value=(visit.person.session.csrf);
            label for="email" { "E-mail" }
            input #email name="email" type="email" value=(invite.email) required autocomplete="off"
                aria-invalid=[invite.error.as_ref().map(|_| "true")] aria-describedby=[invite.error.as_ref().map(|_| "email-error")];
            @if let Some(message) = &invite.error { p.field-error #email-error role="alert" { (message) } }
            label for="team_role" { "Role in the team" }
            select #team_role name="team_role" {
                option value="member" selected[invite.role != "admin"] { "member" }
                option value="admin" selected[invite.role == "admin"] { "team admin" }
            }
            p { button type="submit" #send-invite { "Invite" } }
        }
    };
    html(status, &page(&visit.person, Section::Teams, name, &body))
}

fn invite_outcome(invite: &Invite) -> Markup {
    html! {
        @if invite.emailed { div.notice role="status" #invited { "Invitation e-mailed to " (invite.email) "." } }
        @if let Some(link) = &invite.link {
            div.notice role="status" #invited {
                p { "Invitation made. moat does not send e-mail here, so pass this link to " (invite.email) " (it works once):" }
                p { code #invite-link { (link) } " " button.quiet type="button" data-copy="invite-link" { "Copy" } }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct InviteForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    team_role: String,
}

/// `POST /ui/teams/{id}/invite`.
pub(crate) async fn invite(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: InviteForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let request =
        json!({ "email": form.email.trim(), "team_id": id, "team_role": form.team_role, "org_role": "member" });
    let answer = state.api.call(&visit, Method::POST, "/admin/v1/invitations", Some(&request)).await;
    match answer.status {
        StatusCode::CREATED => {
            let invite = Invite {
                email: form.email.trim().to_owned(),
                role: form.team_role,
                error: None,
                link: answer.body["url"].as_str().map(str::to_owned),
                emailed: answer.body["emailed"].as_bool().unwrap_or(false),
            };
            team_page(&state, &visit, &id, &invite, StatusCode::CREATED).await
        }
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            let invite =
                Invite { email: form.email, role: form.team_role, error: Some(answer.message()), ..Invite::default() };
            team_page(&state, &visit, &id, &invite, StatusCode::BAD_REQUEST).await
        }
        _ => refused(&visit.person, &answer),
    }
}
