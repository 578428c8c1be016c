//! "My keys": the signed-in person's own keys; create one (its secret shown once, with a copy
//! button and the settings to paste), or revoke one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::all_keys::day;
use crate::connect::{base_url, snippets};
use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, checked_form, html, refused};

/// What the create form may ask for a key's lifetime.
const LIFETIMES: [(&str, &str); 4] = [("30d", "30 days"), ("90d", "90 days"), ("365d", "a year"), ("", "no expiry")];

/// What a create form sent back, and what went wrong with it.
#[derive(Debug)]
pub(crate) struct Draft {
    pub(crate) name: String,
    pub(crate) expires_in: String,
    pub(crate) error: Option<(Option<String>, String)>,
}

impl Default for Draft {
    /// An empty form, offering a 90-day lifetime.
    fn default() -> Self {
        Draft { name: String::new(), expires_in: "90d".to_owned(), error: None }
    }
}

/// `GET /ui/keys`.
pub(crate) async fn list(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    keys_page(&state, &visit, &Draft::default()).await
}

async fn keys_page(state: &ConsoleState, visit: &Visit, draft: &Draft) -> Response {
    let person = &visit.person;
    let uri = format!("/admin/v1/keys?limit=1000&user_id={}", percent_encode(&person.user.id));
    let answer = state.api.get(visit, &uri).await;
    if !answer.status.is_success() {
        return refused(person, &answer);
    }
    // The API's `user_id` filter keeps the person's own keys only (not their teams').
    let mine: Vec<&Value> = answer.body["data"].as_array().map(|k| k.iter().collect()).unwrap_or_default();
    let status = if draft.error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK };
    let body = html! {
        p { "Keys you use with coding agents and apps. A key is shown once, when it is made; moat keeps only its hash." }
        @if mine.is_empty() { p #no-keys { "You have no keys yet." } } @else {
            div.table-wrap { table #keys {
                thead { tr { th scope="col" { "name" } th scope="col" { "starts with" } th scope="col" { "created" } th scope="col" { "expires" } th scope="col" { span.skip { "actions" } } } }
                tbody { @for key in &mine {
                    @let id = key["id"].as_str().unwrap_or("");
                    tr { td { (key["name"].as_str().unwrap_or("")) } td { code { (key["prefix"].as_str().unwrap_or("")) "…" } }
                         td { (day(&key["created_at"])) } td { @if key["expires_at"].is_null() { "never" } @else { (day(&key["expires_at"])) } }
                         td { form.inline method="post" action=(format!("/ui/keys/{id}/revoke")) {
                             input type="hidden" name="csrf" value=(person.session.csrf);
                             button.danger type="submit" aria-label=(format!("Revoke {}", key["name"].as_str().unwrap_or(""))) { "Revoke" }
                         } } }
                } }
            } }
        }
        h2 #create { "Create a key" }
        (create_form(&person.session.csrf, draft, "/ui/keys", "", &html! {}))
    };
    html(status, &page(person, Section::Keys, "My keys", &body))
}

/// The form that makes a key, posting to `action`; `prefix` keeps its element ids apart from
/// other forms on the same page, and `first` holds any fields that come before the key's own.
pub(crate) fn create_form(csrf: &str, draft: &Draft, action: &str, prefix: &str, first: &Markup) -> Markup {
    let (field, message) = match &draft.error {
        Some((field, message)) => (field.as_deref(), Some(message.as_str())),
        None => (None, None),
    };
    // An error about no field in particular shows beside the name.
    let name_error = message.filter(|_| field.is_none_or(|f| f == "name"));
    let lifetime_error = message.filter(|_| field.is_some_and(|f| f.starts_with("expires")));
    let (name_id, lifetime_id) = (format!("{prefix}name"), format!("{prefix}expires_in"));
    let (name_error_id, lifetime_error_id) = (format!("{name_id}-error"), format!("{lifetime_id}-error"));
    html! {
        form method="post" action=(action) novalidate {
            input type="hidden" name="csrf" value=(csrf);
            (first)
            label for=(name_id) { "Key name" }
            input id=(name_id) name="name" value=(draft.name) required maxlength="200" autocomplete="off"
                aria-invalid=[name_error.map(|_| "true")] aria-describedby=[name_error.map(|_| &name_error_id)];
            @if let Some(message) = name_error { p.field-error id=(name_error_id) role="alert" { (message) } }
            label for=(lifetime_id) { "Expires after" }
            select id=(lifetime_id) name="expires_in" aria-invalid=[lifetime_error.map(|_| "true")]
                aria-describedby=[lifetime_error.map(|_| &lifetime_error_id)] {
                @for (value, label) in LIFETIMES {
                    option value=(value) selected[draft.expires_in == value] { (label) }
                }
            }
            @if let Some(message) = lifetime_error { p.field-error id=(lifetime_error_id) role="alert" { (message) } }
            p { button type="submit" id=(format!("{prefix}create-key")) { "Create key" } }
        }
    }
}

/// What a key's create form posts.
#[derive(Debug, Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) expires_in: String,
}

impl CreateForm {
    /// Makes the key, owned by `owner` (`("user_id", id)` or `("team_id", id)`), through the
    /// admin API as the person.
    pub(crate) async fn send(&self, state: &ConsoleState, visit: &Visit, owner: (&str, &str)) -> crate::api::Answer {
        let mut request = json!({ "name": self.name.trim(), owner.0: owner.1 });
        if !self.expires_in.is_empty() {
            request["expires_in"] = json!(self.expires_in);
        }
        state.api.call(visit, Method::POST, "/admin/v1/keys", Some(&request)).await
    }

    /// The form again, with why the admin API refused it.
    pub(crate) fn refused(self, answer: &crate::api::Answer) -> Draft {
        let field = answer.field().map(str::to_owned);
        Draft { name: self.name, expires_in: self.expires_in, error: Some((field, answer.message())) }
    }
}

/// `POST /ui/keys`: creates a key for the person and shows its secret, once.
pub(crate) async fn create(State(state): State<Arc<ConsoleState>>, visit: Visit, body: Bytes) -> Response {
    let form: CreateForm = match checked_form(&visit.person, &body) {
        Ok(form) => form,
        Err(response) => return response,
    };
    let answer = form.send(&state, &visit, ("user_id", &visit.person.user.id)).await;
    if answer.status == StatusCode::BAD_REQUEST {
        return keys_page(&state, &visit, &form.refused(&answer)).await;
    }
    if answer.status != StatusCode::CREATED {
        return refused(&visit.person, &answer);
    }
    created(&visit, &answer, Section::Keys, ("/ui/keys", "Back to my keys"))
}

/// The page that shows a new key's secret, once, with a copy button and the settings to
/// paste, under `section` of the navigation; `back` is where to go next (its address and its
/// words).
pub(crate) fn created(visit: &Visit, answer: &crate::api::Answer, section: Section, back: (&str, &str)) -> Response {
    let secret = answer.body["key"].as_str().unwrap_or("");
    let server = base_url(visit);
    let body = html! {
        div.notice role="status" {
            p { strong { "Copy this key now." } " moat shows it only once; if you lose it, revoke it and make another." }
        }
        p { label for="secret" { "Key “" (answer.body["name"].as_str().unwrap_or("")) "”" } }
        p { code.secret #secret { (secret) } " " button.quiet type="button" data-copy="secret" { "Copy" } }
        h2 { "Use it" }
        (snippets(&server, Some(secret)))
        p { a href=(back.0) { (back.1) } }
    };
    html(StatusCode::CREATED, &page(&visit.person, section, "Your new key", &body))
}

/// `POST /ui/keys/{id}/revoke`.
pub(crate) async fn revoke(
    State(state): State<Arc<ConsoleState>>,
    visit: Visit,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/admin/v1/keys/{}", percent_encode(&id));
    crate::button_action(&state, &visit, &body, Method::DELETE, &path, "/ui/keys").await
}

/// A path segment with everything but unreserved characters percent-encoded.
pub(crate) fn percent_encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_escape_their_route() {
        assert_eq!(percent_encode("key_01ab"), "key_01ab");
        assert_eq!(percent_encode("../users?x=1"), "..%2Fusers%3Fx%3D1");
    }

    #[test]
    fn a_refused_name_is_shown_beside_the_field_and_kept() {
        let draft = Draft {
            name: "<b>".into(),
            expires_in: "30d".into(),
            error: Some((Some("name".into()), "too long".into())),
        };
        let form = create_form("t", &draft, "/ui/keys", "", &html! {}).into_string();
        assert!(form.contains("aria-invalid=\"true\"") && form.contains("too long"), "{form}");
        assert!(form.contains("value=\"&lt;b&gt;\""), "{form}");
        assert!(form.contains("<option value=\"30d\" selected>"), "{form}");
    }
}
