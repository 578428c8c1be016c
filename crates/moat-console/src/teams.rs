//! Teams: the ones the person may see, creating one (admins), and a team's page with its
//! members: adding people already in moat, changing their role in the team or removing them
//! (admins and the team's own team admins), and an invitation form that adds a new person
//! straight into the team; the team's keys come from [`team_keys`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::keys::{Draft, percent_encode};
use crate::layout::{Section, page};
use crate::team_keys;
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

/// Members a team page shows at a time.
const MEMBERS_PAGE: u32 = 100;

/// The members cursor of a team page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct MembersQuery {
    #[serde(default)]
    after: String,
}

/// `GET /ui/teams/{id}?after=`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    Query(query): Query<MembersQuery>,
) -> Response {
    let forms = Forms { after: query.after, ..Forms::default() };
    team_page(&state, &visit, &id, &forms, StatusCode::OK).await
}

/// The invitation form's values and outcome.
#[derive(Debug, Default)]
pub(crate) struct Invite {
    pub(crate) email: String,
    pub(crate) role: String,
    pub(crate) error: Option<String>,
    /// The link to pass on when moat could not e-mail it.
    pub(crate) link: Option<String>,
    pub(crate) emailed: bool,
}

impl Invite {
    /// The outcome of an invitation the admin API made for `email`: e-mailed, or a link to
    /// pass on.
    pub(crate) fn made(email: &str, answer: &Value) -> Self {
        Invite {
            email: email.to_owned(),
            link: answer["url"].as_str().map(str::to_owned),
            emailed: answer["emailed"].as_bool().unwrap_or(false),
            ..Invite::default()
        }
    }
}

/// The "add someone already here" form's values and error.
#[derive(Debug, Default)]
struct Add {
    email: String,
    role: String,
    error: Option<String>,
}

/// What a team page's forms show after a post, and where its member list starts.
#[derive(Debug, Default)]
struct Forms {
    invite: Invite,
    add: Add,
    key: Draft,
    /// Members after this user id.
    after: String,
}

/// The team's page again, its key form showing what was sent and why it was refused.
pub(crate) async fn with_key_draft(state: &ConsoleState, visit: &Visit, id: &str, key: Draft) -> Response {
    team_page(state, visit, id, &Forms { key, ..Forms::default() }, StatusCode::BAD_REQUEST).await
}

/// The team roles, as the admin API names them and as the page shows them.
const TEAM_ROLES: [(&str, &str); 2] = [("member", "member"), ("team-admin", "team admin")];

fn role_options(chosen: &str) -> Markup {
    html! { @for (value, label) in TEAM_ROLES { option value=(value) selected[value == chosen] { (label) } } }
}

async fn team_page(state: &ConsoleState, visit: &Visit, id: &str, forms: &Forms, status: StatusCode) -> Response {
    let mut uri = format!("/admin/v1/teams/{}/members?limit={MEMBERS_PAGE}", percent_encode(id));
    if !forms.after.is_empty() {
        uri.push_str(&format!("&after={}", percent_encode(&forms.after)));
    }
    let answer = state.api.get(visit, &uri).await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let members: Vec<&Value> = answer.body["data"].as_array().map(|m| m.iter().collect()).unwrap_or_default();
    let keys_uri = format!("/admin/v1/keys?limit={}&team_id={}", team_keys::SHOWN, percent_encode(id));
    let (keys, teams) = tokio::join!(state.api.get(visit, &keys_uri), state.api.get(visit, "/admin/v1/teams"));
    if !keys.status.is_success() {
        return refused(&visit.person, &keys);
    }
    let name = teams.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["id"] == id)
        .and_then(|t| t["name"].as_str())
        .unwrap_or(id)
        .to_owned();
    // Admins, and this team's own team admins, manage its members; the API decides again.
    let me = state.api.get(visit, &format!("/admin/v1/users/{}", percent_encode(&visit.person.user.id))).await;
    let leads =
        me.body["teams"].as_array().into_iter().flatten().any(|t| t["team_id"] == id && t["role"] == "team-admin");
    let manages = crate::layout::manages(&visit.person) || leads;
    let csrf = &visit.person.session.csrf;
    let (invite, add) = (&forms.invite, &forms.add);
    let body = html! {
        p { "Team id " code { (id) } }
        h2 { "Members" }
        @if members.is_empty() { p #no-members { "No members yet." } } @else {
            div.table-wrap { table #members {
                thead { tr { th scope="col" { "person" } th scope="col" { "role in the team" }
                             @if manages { th scope="col" { span.skip { "actions" } } } } }
                tbody { @for m in &members {
                    @let user = m["user_id"].as_str().unwrap_or("");
                    @let email = m["email"].as_str().unwrap_or(user);
                    @let role = m["role"].as_str().unwrap_or("");
                    @let action = format!("/ui/teams/{id}/members/{user}");
                    tr {
                        td { (email) @if m["active"] == false { " " span.bad { "(deactivated)" } } }
                        td { @if manages {
                            form.inline method="post" action=(action) {
                                input type="hidden" name="csrf" value=(csrf);
                                label.skip for=(format!("team-role-{user}")) { "Role of " (email) " in the team" }
                                select id=(format!("team-role-{user}")) name="role" { (role_options(role)) }
                                " " button.quiet type="submit" { "Change" }
                            }
                        } @else { (role) } }
                        @if manages { td {
                            form.inline method="post" action=(format!("{action}/remove")) {
                                input type="hidden" name="csrf" value=(csrf);
                                button.danger type="submit" aria-label=(format!("Remove {email} from the team")) { "Remove" }
                            }
                        } }
                    }
                } }
            } }
        }
        @if let Some(next) = answer.body["next_after"].as_str() {
            p { a href=(format!("/ui/teams/{id}?after={}", percent_encode(next))) rel="next" #more-members { "More members →" } }
        }
        @if manages {
            h2 #add { "Add someone already in moat" }
            form method="post" action=(format!("/ui/teams/{id}/members")) novalidate {
                input type="hidden" name="csrf" value=(csrf);
                label for="member-email" { "E-mail" }
                input #member-email name="email" type="email" value=(add.email) required autocomplete="off"
                    aria-invalid=[add.error.as_ref().map(|_| "true")] aria-describedby=[add.error.as_ref().map(|_| "member-email-error")];
                @if let Some(message) = &add.error { p.field-error #member-email-error role="alert" { (message) } }
                label for="member-role" { "Role in the team" }
                select #member-role name="role" { (role_options(&add.role)) }
                p { button type="submit" #add-member { "Add to team" } }
            }
        }
        (team_keys::section(csrf, id, &keys.body, &forms.key, manages))
        // Inviting makes a new account, which only organisation admins do.
        @if crate::layout::manages(&visit.person) {
        h2 #invite { "Invite someone to this team" }
        (invite_outcome(invite))
        form method="post" action=(format!("/ui/teams/{id}/invite")) novalidate {
            input type="hidden" name="csrf" value=(csrf);
            label for="email" { "E-mail" }
            input #email name="email" type="email" value=(invite.email) required autocomplete="off"
                aria-invalid=[invite.error.as_ref().map(|_| "true")] aria-describedby=[invite.error.as_ref().map(|_| "email-error")];
            @if let Some(message) = &invite.error { p.field-error #email-error role="alert" { (message) } }
            label for="team_role" { "Role in the team" }
            select #team_role name="team_role" { (role_options(&invite.role)) }
            p { button type="submit" #send-invite { "Invite" } }
        }
        }
    };
    html(status, &page(&visit.person, Section::Teams, &name, &body))
}

pub(crate) fn invite_outcome(invite: &Invite) -> Markup {
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
            let invite = Invite { role: form.team_role, ..Invite::made(form.email.trim(), &answer.body) };
            team_page(&state, &visit, &id, &Forms { invite, ..Forms::default() }, StatusCode::CREATED).await
        }
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            let invite =
                Invite { email: form.email, role: form.team_role, error: Some(answer.message()), ..Invite::default() };
            team_page(&state, &visit, &id, &Forms { invite, ..Forms::default() }, StatusCode::BAD_REQUEST).await
        }
        _ => refused(&visit.person, &answer),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
}

/// `POST /ui/teams/{id}/members`: adds a person who already has an account, found by e-mail.
pub(crate) async fn add_member(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: AddForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let email = form.email.trim();
    let failed = |error: String| Forms {
        add: Add { email: email.to_owned(), role: form.role.clone(), error: Some(error) },
        ..Forms::default()
    };
    if email.is_empty() {
        return team_page(&state, &visit, &id, &failed("Enter the person's e-mail.".into()), StatusCode::BAD_REQUEST)
            .await;
    }
    let found = state.api.get(&visit, &format!("/admin/v1/users?email={}", percent_encode(email))).await;
    if !found.status.is_success() {
        return refused(&visit.person, &found);
    }
    let Some(user) = found.body["data"].get(0).and_then(|u| u["id"].as_str()) else {
        let error = format!("No one with the e-mail {email} is in moat yet; invite them below instead.");
        return team_page(&state, &visit, &id, &failed(error), StatusCode::BAD_REQUEST).await;
    };
    let path = format!("/admin/v1/teams/{}/members/{}", percent_encode(&id), percent_encode(user));
    let answer = state.api.call(&visit, Method::PUT, &path, Some(&json!({ "role": form.role }))).await;
    match answer.status {
        status if status.is_success() => redirect(&format!("/ui/teams/{}", percent_encode(&id))),
        StatusCode::BAD_REQUEST => {
            team_page(&state, &visit, &id, &failed(answer.message()), StatusCode::BAD_REQUEST).await
        }
        _ => refused(&visit.person, &answer),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RoleForm {
    #[serde(default)]
    role: String,
}

/// `POST /ui/teams/{id}/members/{user}`: changes a member's role in the team.
pub(crate) async fn change_member(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path((id, user)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let form: RoleForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let path = format!("/admin/v1/teams/{}/members/{}", percent_encode(&id), percent_encode(&user));
    let answer = state.api.call(&visit, Method::PUT, &path, Some(&json!({ "role": form.role }))).await;
    if answer.status.is_success() {
        redirect(&format!("/ui/teams/{}", percent_encode(&id)))
    } else {
        refused(&visit.person, &answer)
    }
}

/// `POST /ui/teams/{id}/members/{user}/remove`.
pub(crate) async fn remove_member(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path((id, user)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/teams/{}/members/{}", percent_encode(&id), percent_encode(&user));
    let back = format!("/ui/teams/{}", percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, &back).await
}
