//! A team's keys on its page: the newest of them, and, for admins and that team's own team
//! admins, making one (its secret shown once) and revoking one. Keys a team owns keep working
//! when the person who made them leaves, which is what CI jobs and shared tools need.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::all_keys::day;
use crate::keys::{CreateForm, Draft, create_form, created, percent_encode};
use crate::layout::Section;
use crate::{ConsoleState, Visit, checked_form, refused};

/// Keys a team's page shows; the rest are on the keys page, filtered to the team.
pub(crate) const SHOWN: u32 = 20;

/// The team's keys (the admin API's answer to `GET /admin/v1/keys?team_id=`), with the forms
/// to change them when `manages`.
pub(crate) fn section(csrf: &str, team: &str, answer: &Value, draft: &Draft, manages: bool) -> Markup {
    let keys: Vec<&Value> = answer["data"].as_array().map(|k| k.iter().collect()).unwrap_or_default();
    let team_path = percent_encode(team);
    html! {
        h2 #team-keys { "Team keys" }
        p { "Keys the team owns, for CI jobs and shared tools: they keep working when the person who made them leaves." }
        @if keys.is_empty() { p #no-team-keys { "The team has no active keys." } } @else {
            div.table-wrap { table #team-key-list {
                thead { tr { th scope="col" { "name" } th scope="col" { "starts with" } th scope="col" { "created" } th scope="col" { "expires" }
                             th scope="col" { "state" } @if manages { th scope="col" { span.skip { "actions" } } } } }
                tbody { @for key in &keys {
                    @let id = key["id"].as_str().unwrap_or("");
                    @let name = key["name"].as_str().unwrap_or("");
                    @let status = key["status"].as_str().unwrap_or("");
                    tr {
                        td { (name) } td { code { (key["prefix"].as_str().unwrap_or("")) "…" } } td { (day(&key["created_at"])) }
                        td { @if key["expires_at"].is_null() { "never" } @else { (day(&key["expires_at"])) } }
                        td class=(if status == "active" { "good" } else { "bad" }) { (status) }
                        @if manages { td {
                            form.inline method="post" action=(format!("/ui/teams/{team_path}/keys/{}/revoke", percent_encode(id))) {
                                input type="hidden" name="csrf" value=(csrf);
                                button.danger type="submit" aria-label=(format!("Revoke the team key {name}")) { "Revoke" }
                            }
                        } }
                    }
                } }
            } }
        }
        p {
            @if answer["next_before"].is_string() { "Showing the newest " (SHOWN) ". " }
            a href=(format!("/ui/all-keys?team_id={team_path}&show=all")) #all-team-keys { "All of this team's keys, with revoked ones →" }
        }
        @if manages {
            h3 { "Create a team key" }
            (create_form(csrf, draft, &format!("/ui/teams/{team_path}/keys"), "team-key-", &html! {}))
        }
    }
}

/// `POST /ui/teams/{id}/keys`: makes a key the team owns and shows its secret, once.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let form: CreateForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let answer = form.send(&state, &visit, ("team_id", &id)).await;
    match answer.status {
        StatusCode::CREATED => {
            let back = format!("/ui/teams/{}#team-keys", percent_encode(&id));
            created(&visit, &answer, Section::Teams, (&back, "Back to the team"))
        }
        StatusCode::BAD_REQUEST => crate::teams::with_key_draft(&state, &visit, &id, form.refused(&answer)).await,
        _ => refused(&visit.person, &answer),
    }
}

/// `POST /ui/teams/{id}/keys/{key}/revoke`.
pub(crate) async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path((id, key)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/keys/{}", percent_encode(&key));
    let back = format!("/ui/teams/{}#team-keys", percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, &back).await
}
