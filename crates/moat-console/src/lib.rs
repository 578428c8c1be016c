//! moat's web console at `/ui`: a dashboard, a usage explorer, "my keys" and "connect your
//! coding agent" pages,
//! server-rendered and embedded in the binary.
//!
//! Pages are HTML from [`maud`] templates compiled into the binary, with one stylesheet and
//! one small script served by moat itself (the script only adds copy buttons: every page works
//! without it). People sign in through `moat-identity`'s session cookies. Every figure and
//! every change goes through the admin API in process, as the signed-in person
//! ([`api`]), so the console shares the API's authorization and audit rather than having its
//! own. Every form carries the session's CSRF token and is refused without it.

mod all_keys;
mod api;
mod assets;
mod audit;
mod budgets;
mod chart;
mod connect;
mod dashboard;
mod invitations;
mod keys;
mod layout;
mod limits;
mod mine;
mod models;
mod prices;
mod settings;
mod team_keys;
mod teams;
mod usage;
mod users;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::Markup;
use moat_identity::web::{SignedIn, WebState};
use serde::de::DeserializeOwned;

/// What the console's pages need: sessions, and the admin API to call.
#[derive(Clone)]
pub struct ConsoleState {
    web: WebState,
    api: api::AdminApi,
}

impl std::fmt::Debug for ConsoleState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleState").finish_non_exhaustive()
    }
}

impl ConsoleState {
    /// The console over sign-in's sessions and the admin routes (with their state applied).
    pub fn new(web: WebState, admin_routes: Router) -> Self {
        ConsoleState { web, api: api::AdminApi { routes: admin_routes } }
    }
}

/// The console's routes, all under `/ui`.
pub fn router(state: ConsoleState) -> Router {
    Router::new()
        .route("/ui", get(dashboard::show))
        .route("/ui/", get(dashboard::show))
        .route("/ui/keys", get(keys::list).post(keys::create))
        .route("/ui/keys/{id}/revoke", post(keys::revoke))
        .route("/ui/all-keys", get(all_keys::list))
        .route("/ui/all-keys/service", post(all_keys::create_service_key))
        .route("/ui/all-keys/{id}/revoke", post(all_keys::revoke))
        .route("/ui/connect", get(connect::show))
        .route("/ui/me", get(mine::show))
        .route("/ui/teams", get(teams::list).post(teams::create))
        .route("/ui/teams/{id}", get(teams::show))
        .route("/ui/teams/{id}/invite", post(teams::invite))
        .route("/ui/teams/{id}/keys", post(team_keys::create))
        .route("/ui/teams/{id}/keys/{key}/revoke", post(team_keys::revoke))
        .route("/ui/teams/{id}/members", post(teams::add_member))
        .route("/ui/teams/{id}/members/{user}", post(teams::change_member))
        .route("/ui/teams/{id}/members/{user}/remove", post(teams::remove_member))
        .route("/ui/budgets", get(budgets::list).post(budgets::create))
        .route("/ui/budgets/{id}", get(budgets::edit).post(budgets::update))
        .route("/ui/budgets/{id}/reset", post(budgets::reset))
        .route("/ui/budgets/{id}/delete", post(budgets::delete))
        .route("/ui/audit", get(audit::show))
        .route("/ui/models", get(models::show))
        .route("/ui/prices", get(prices::show))
        .route("/ui/settings", get(settings::show))
        .route("/ui/users", get(users::list))
        .route("/ui/users/{id}", post(users::update))
        .route("/ui/invitations", get(invitations::list).post(invitations::create))
        .route("/ui/invitations/{id}/revoke", post(invitations::revoke))
        .route("/ui/limits", get(limits::list).post(limits::create))
        .route("/ui/limits/{id}", get(limits::edit).post(limits::update))
        .route("/ui/limits/{id}/delete", post(limits::delete))
        .route("/ui/usage", get(usage::explore))
        .route("/ui/usage.csv", get(usage::export))
        .route("/ui/assets/{file}", get(assets::serve))
        .with_state(Arc::new(state))
}

/// A signed-in person's visit: who, from where (for the audit log), and the host they used.
/// As an extractor it is every page's gate: anyone not signed in is sent to sign in and
/// brought back to the page afterwards.
pub(crate) struct Visit {
    pub(crate) person: SignedIn,
    pub(crate) source: Option<String>,
    /// `Host` and `X-Forwarded-*` as the browser's request had them.
    pub(crate) forwarded: Vec<(axum::http::HeaderName, HeaderValue)>,
}

impl axum::extract::FromRequestParts<Arc<ConsoleState>> for Visit {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ConsoleState>,
    ) -> Result<Self, Response> {
        match moat_identity::web::signed_in(&state.web, &parts.headers).await {
            Ok(Some(person)) => {
                let forwarded = parts
                    .headers
                    .iter()
                    .filter(|(name, _)| *name == axum::http::header::HOST || name.as_str().starts_with("x-forwarded-"))
                    .map(|(name, value)| (name.clone(), value.clone()))
                    .collect();
                let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string());
                Ok(Visit { person, source, forwarded })
            }
            Ok(None) => {
                let next = parts.uri.path_and_query().map_or("/ui", |p| p.as_str());
                let query = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
                Err(redirect(&format!("/login?{query}")))
            }
            Err(error) => {
                tracing::error!(%error, "console cannot read the session");
                Err(html(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &layout::message(None, "Something went wrong", "Try again in a moment."),
                ))
            }
        }
    }
}

/// A JSON value as a page shows it: text as is, numbers as written, nothing as a dash.
pub(crate) fn shown(value: &serde_json::Value) -> String {
    if value.is_null() { "–".to_owned() } else { plain(value) }
}

/// A JSON value as plain text (a table cell, a CSV field): nothing is empty.
pub(crate) fn plain(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A change made by a one-button form (revoke, delete): the CSRF token checked, `method path`
/// called as the person, then back to `back`.
pub(crate) async fn button_action(
    state: &ConsoleState,
    visit: &Visit,
    body: &Bytes,
    method: axum::http::Method,
    path: &str,
    back: &str,
) -> Response {
    #[derive(serde::Deserialize)]
    struct Button {}
    if let Err(response) = checked_form::<Button>(&visit.person, body) {
        return response;
    }
    let answer = state.api.call(visit, method, path, None).await;
    if answer.status.is_success() { redirect(back) } else { refused(&visit.person, &answer) }
}

/// A form field and why its value was refused, shown beside it.
pub(crate) type FieldError = (String, String);

/// A form's change sent to the admin API as the person: on success, back to `back`; refused as
/// invalid or conflicting, the form `again` with the API's `(field, message)` beside its
/// field; anything else, the refusal's own page.
pub(crate) async fn submit<Page: std::future::Future<Output = Response>>(
    state: &ConsoleState,
    visit: &Visit,
    (method, path): (axum::http::Method, &str),
    request: &serde_json::Value,
    back: &str,
    again: impl FnOnce(FieldError) -> Page,
) -> Response {
    let answer = state.api.call(visit, method, path, Some(request)).await;
    match answer.status {
        status if status.is_success() => redirect(back),
        StatusCode::BAD_REQUEST | StatusCode::CONFLICT => {
            again((answer.field().unwrap_or("").to_owned(), answer.message())).await
        }
        _ => refused(&visit.person, &answer),
    }
}

/// A form body from `person`, refused unless it carries their session's CSRF token.
#[allow(clippy::result_large_err, reason = "the error is the page to answer with, returned at once")]
pub(crate) fn checked_form<T: DeserializeOwned>(person: &SignedIn, body: &Bytes) -> Result<T, Response> {
    #[derive(serde::Deserialize)]
    struct Csrf {
        #[serde(default)]
        csrf: String,
    }
    let token = serde_urlencoded::from_bytes::<Csrf>(body).map(|c| c.csrf).unwrap_or_default();
    if !person.csrf_matches(&token) {
        return Err(html(
            StatusCode::FORBIDDEN,
            &layout::message(
                Some(person),
                "Not done",
                "The form expired or did not come from this console; reload the page and try again.",
            ),
        ));
    }
    serde_urlencoded::from_bytes(body).map_err(|_| {
        html(
            StatusCode::BAD_REQUEST,
            &layout::message(Some(person), "Not done", "The form was incomplete; reload the page and try again."),
        )
    })
}

/// An HTML page with the console's headers: no caching (pages can hold a new key), no
/// framing, and scripts and styles only from moat itself.
pub(crate) fn html(status: StatusCode, markup: &Markup) -> Response {
    let mut response = (status, markup.clone().into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// What a page shows when the admin API refused or failed the call it needed.
pub(crate) fn refused(person: &SignedIn, answer: &api::Answer) -> Response {
    let (status, title) = match answer.status {
        StatusCode::FORBIDDEN => (StatusCode::FORBIDDEN, "Not allowed"),
        StatusCode::NOT_FOUND => (StatusCode::NOT_FOUND, "Not found"),
        status if status.is_server_error() => (StatusCode::BAD_GATEWAY, "Something went wrong"),
        status => (status, "Not done"),
    };
    html(status, &layout::message(Some(person), title, &answer.message()))
}

pub(crate) fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
