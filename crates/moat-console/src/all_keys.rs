//! Every key in the organisation (people's, teams' and service accounts'), a page at a time,
//! filtered by team, person and state, each named by its owner; admins revoke one here, and make
//! keys for service accounts (workloads that never sign in). Anyone
//! may open the page: it shows what the admin API shows them, so a member sees their own keys
//! and their teams'.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::keys::{CreateForm, Draft, create_form, created, percent_encode};
use crate::layout::{Section, manages, page, reads_org};
use crate::{ConsoleState, Visit, checked_form, html, refused};

/// Keys a page shows.
const PAGE: u32 = 50;

/// The list's filters and where it starts.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub(crate) struct KeysQuery {
    /// Only this team's keys.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    team_id: String,
    /// Only the keys of the person (or service account) with this e-mail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    email: String,
    /// `all` to list revoked keys too; active ones otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    show: String,
    /// The cursor: keys older than this id.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    before: String,
}

impl KeysQuery {
    /// This list's query string: its filters, and `before` when `with_cursor`.
    fn query_string(&self, with_cursor: bool) -> String {
        let mut query = self.clone();
        query.email = query.email.trim().to_owned();
        if !with_cursor {
            query.before.clear();
        }
        serde_urlencoded::to_string(&query).unwrap_or_default()
    }
}

/// The service-account key form: the account's e-mail, and the key's name and lifetime.
#[derive(Debug, Default)]
struct ServiceDraft {
    email: String,
    key: Draft,
}

/// `GET /ui/all-keys?team_id=&email=&show=&before=`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Query(query): Query<KeysQuery>,
) -> Response {
    keys_page(&state, &visit, &query, &ServiceDraft::default(), StatusCode::OK).await
}

async fn keys_page(
    state: &ConsoleState,
    visit: &Visit,
    query: &KeysQuery,
    service: &ServiceDraft,
    status: StatusCode,
) -> Response {
    let person = &visit.person;
    let all = query.show == "all";
    let mut api = format!("/admin/v1/keys?limit={PAGE}&include_revoked={all}");
    if !query.team_id.is_empty() {
        api.push_str(&format!("&team_id={}", percent_encode(&query.team_id)));
    }
    if !query.before.is_empty() {
        api.push_str(&format!("&before={}", percent_encode(&query.before)));
    }
    let email = query.email.trim();
    let mut unknown_email = false;
    if !email.is_empty() {
        let found = state.api.get(visit, &format!("/admin/v1/users?email={}", percent_encode(email))).await;
        match found.body["data"][0]["id"].as_str() {
            Some(id) if found.status.is_success() => api.push_str(&format!("&user_id={}", percent_encode(id))),
            _ => unknown_email = true,
        }
    }
    let answer = if unknown_email { None } else { Some(state.api.get(visit, &api).await) };
    if let Some(answer) = answer.as_ref().filter(|a| !a.status.is_success()) {
        return refused(person, answer);
    }
    let keys: Vec<&Value> =
        answer.as_ref().and_then(|a| a.body["data"].as_array()).map(|k| k.iter().collect()).unwrap_or_default();
    let teams = state.api.get(visit, "/admin/v1/teams").await;
    let teams: Vec<(&str, &str)> = teams.body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| Some((t["id"].as_str()?, t["name"].as_str()?)))
        .collect();
    let revoke_query = query.query_string(true);
    let can_revoke = manages(person);
    let body = html! {
        p { @if reads_org(person) {
            "Every key in the organisation: people's, teams' and service accounts'. moat keeps only a hash of each; a key's secret was shown once, to whoever made it."
        } @else {
            "Your keys and your teams' keys. moat keeps only a hash of each; a key's secret was shown once, to whoever made it."
        } }
        form.filters method="get" action="/ui/all-keys" role="search" {
            div.grid-filters {
                div { label for="team_id" { "Team" }
                    select #team_id name="team_id" {
                        option value="" { "any team, or none" }
                        @for (id, name) in &teams { option value=(id) selected[query.team_id == *id] { (name) } }
                    } }
                @if reads_org(person) {
                    div { label for="email" { "Person or service account (e-mail)" }
                        input #email name="email" type="email" value=(email) autocomplete="off"
                            aria-invalid=[unknown_email.then_some("true")] aria-describedby=[unknown_email.then_some("email-error")];
                        @if unknown_email { p.field-error #email-error role="alert" { "No one has the e-mail " (email) "." } } }
                }
                div { label for="show" { "State" }
                    select #show name="show" {
                        option value="" selected[!all] { "active" }
                        option value="all" selected[all] { "all, with revoked" }
                    } }
            }
            p { button.quiet type="submit" #filter { "Show keys" } " " a href="/ui/all-keys" { "Clear filters" } }
        }
        @if keys.is_empty() {
            @if !unknown_email { p #no-keys { "No keys match." } }
        } @else {
            div.table-wrap { table #all-keys {
                thead { tr {
                    th scope="col" { "name" } th scope="col" { "owner" } th scope="col" { "role" } th scope="col" { "starts with" }
                    th scope="col" { "created" } th scope="col" { "expires" } th scope="col" { "state" }
                    @if can_revoke { th scope="col" { span.skip { "actions" } } }
                } }
                tbody { @for key in &keys {
                    @let id = key["id"].as_str().unwrap_or("");
                    @let name = key["name"].as_str().unwrap_or("");
                    @let status = key["status"].as_str().unwrap_or("");
                    tr {
                        td { (name) } td { (owner(key)) } td { (key["role"].as_str().unwrap_or("")) }
                        td { code { (key["prefix"].as_str().unwrap_or("")) "…" } }
                        td { (day(&key["created_at"])) }
                        td { @if key["expires_at"].is_null() { "never" } @else { (day(&key["expires_at"])) } }
                        td class=(if status == "active" { "good" } else { "bad" }) { (status) }
                        @if can_revoke { td { @if status != "revoked" {
                            form.inline method="post" action=(format!("/ui/all-keys/{}/revoke?{revoke_query}", percent_encode(id))) {
                                input type="hidden" name="csrf" value=(person.session.csrf);
                                button.danger type="submit" aria-label=(format!("Revoke {name}")) { "Revoke" }
                            }
                        } } }
                    }
                } }
            } }
        }
        @if let Some(next) = answer.as_ref().and_then(|a| a.body["next_before"].as_str()) {
            @let filters = query.query_string(false);
            p { a href=(format!("/ui/all-keys?{filters}{}before={}", if filters.is_empty() { "" } else { "&" }, percent_encode(next))) rel="next" #older-keys { "Older keys →" } }
        }
        p { "Team keys are made on their team's page, personal keys under " a href="/ui/keys" { "My keys" } "." }
        @if can_revoke {
            h2 #service { "Create a key for a service account" }
            p { "For a workload rather than a person: a CI job, a batch pipeline, an internal app. The account is made the first time its e-mail is used; it can never sign in." }
            (create_form(&person.session.csrf, &service.key, "/ui/all-keys/service", "service-", &service_email(service)))
        }
    };
    html(status, &page(person, Section::AllKeys, "Keys", &body))
}

/// The service account's e-mail field, with why it was refused.
fn service_email(service: &ServiceDraft) -> Markup {
    let error = match &service.key.error {
        Some((Some(field), message)) if field == "email" => Some(message.as_str()),
        _ => None,
    };
    html! {
        label for="service-email" { "Service account (e-mail)" }
        input #service-email name="email" type="email" value=(service.email) required autocomplete="off" placeholder="ci-bot@example.com"
            aria-invalid=[error.map(|_| "true")] aria-describedby=[error.map(|_| "service-email-error")];
        @if let Some(message) = error { p.field-error #service-email-error role="alert" { (message) } }
    }
}

/// What the service-account key form posts.
#[derive(Debug, Deserialize)]
pub(crate) struct ServiceForm {
    #[serde(default)]
    email: String,
    #[serde(flatten)]
    key: CreateForm,
}

/// `POST /ui/all-keys/service`: a key for the service account with this e-mail (made first if
/// there is none), its secret shown once. An e-mail that belongs to a person is refused:
/// people make their own keys, so only they ever see their secrets.
pub(crate) async fn create_service_key(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: ServiceForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let email = form.email.trim().to_owned();
    let again = |field: &str, message: String| {
        let key = Draft {
            name: form.key.name.clone(),
            expires_in: form.key.expires_in.clone(),
            error: Some((Some(field.to_owned()), message)),
        };
        let service = ServiceDraft { email: email.clone(), key };
        let state = Arc::clone(&state);
        let visit = &visit;
        async move { keys_page(&state, visit, &KeysQuery::default(), &service, StatusCode::BAD_REQUEST).await }
    };
    if email.is_empty() {
        return again("email", "Enter the service account's e-mail.".to_owned()).await;
    }
    let found = state.api.get(&visit, &format!("/admin/v1/users?email={}", percent_encode(&email))).await;
    if !found.status.is_success() {
        return refused(&visit.person, &found);
    }
    let user_id = match found.body["data"].get(0) {
        Some(user) if user["kind"] != "service" => {
            let message = format!("{email} is a person's e-mail; people make their own keys under My keys.");
            return again("email", message).await;
        }
        Some(user) => user["id"].as_str().unwrap_or_default().to_owned(),
        None => {
            let account = json!({ "email": email, "kind": "service", "org_role": "member" });
            let made = state.api.call(&visit, Method::POST, "/admin/v1/users", Some(&account)).await;
            match made.status {
                StatusCode::CREATED => made.body["id"].as_str().unwrap_or_default().to_owned(),
                StatusCode::BAD_REQUEST | StatusCode::CONFLICT => return again("email", made.message()).await,
                _ => return refused(&visit.person, &made),
            }
        }
    };
    let answer = form.key.send(&state, &visit, ("user_id", &user_id)).await;
    match answer.status {
        StatusCode::CREATED => created(&visit, &answer, Section::AllKeys, ("/ui/all-keys", "Back to all keys")),
        StatusCode::BAD_REQUEST => {
            // A refused owner (a deactivated account) is the e-mail's fault.
            let field = match answer.field() {
                Some("user_id") => "email",
                Some(expiry) if expiry.starts_with("expires") => expiry,
                _ => "name",
            };
            again(field, answer.message()).await
        }
        _ => refused(&visit.person, &answer),
    }
}

/// Who a key belongs to, as a person reads it: a team (linked), a person's e-mail, or a
/// service account's.
pub(crate) fn owner(key: &Value) -> Markup {
    html! {
        @if let Some(team) = key["team_id"].as_str() {
            "team " a href=(format!("/ui/teams/{}", percent_encode(team))) { (key["team_name"].as_str().unwrap_or(team)) }
        } @else if let Some(user) = key["user_id"].as_str() {
            (key["user_email"].as_str().unwrap_or(user))
            @if key["user_kind"] == "service" { " " span.badge { "service account" } }
        } @else {
            "nobody (made with the bootstrap key)"
        }
    }
}

/// The date part of an RFC 3339 time.
pub(crate) fn day(value: &Value) -> &str {
    value.as_str().and_then(|d| d.get(..10)).unwrap_or("")
}

/// `POST /ui/all-keys/{id}/revoke?<the list's filters>`: revokes, then back to the same list.
pub(crate) async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    Query(query): Query<KeysQuery>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/keys/{}", percent_encode(&id));
    let back = format!("/ui/all-keys?{}", query.query_string(true));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, &back).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keeps_its_filters_and_drops_empty_ones() {
        let query = KeysQuery {
            team_id: "team_1".into(),
            email: " a+b@x.test ".into(),
            before: "key_9".into(),
            ..KeysQuery::default()
        };
        assert_eq!(query.query_string(true), "team_id=team_1&email=a%2Bb%40x.test&before=key_9");
        assert_eq!(query.query_string(false), "team_id=team_1&email=a%2Bb%40x.test");
        assert_eq!(KeysQuery::default().query_string(true), "");
    }

    #[test]
    fn owners_are_named_and_escaped() {
        let team = serde_json::json!({ "team_id": "t1", "team_name": "<Red>" });
        assert_eq!(owner(&team).into_string(), "team <a href=\"/ui/teams/t1\">&lt;Red&gt;</a>");
        let service = serde_json::json!({ "user_id": "u1", "user_email": "ci@x.test", "user_kind": "service" });
        assert!(owner(&service).into_string().contains("ci@x.test <span class=\"badge\">service account</span>"));
        assert!(owner(&serde_json::json!({})).into_string().starts_with("nobody"));
    }
}
