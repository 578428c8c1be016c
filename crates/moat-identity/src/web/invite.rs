//! `/invite/{token}`: an invited person joins, choosing a password (or signing in through SSO,
//! which applies the invitation too).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use moat_store::{Invitation, Store, StoreError, UserRecord};
use serde::Deserialize;

use super::{
    CSRF_COOKIE, WebState, audit_event, cookie, equal, failed, form, now_ms, pages, set_cookie, start_session,
};
use crate::secrets::{hash_secret, random_token};

async fn open_invitation(state: &WebState, token: &str) -> Result<Option<Invitation>, StoreError> {
    Ok(state.store.invitation_by_token(&hash_secret(token)).await?.filter(|i| i.is_open(now_ms())))
}

fn gone() -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(pages::message(
            "Invitation not valid",
            "This invitation expired, was withdrawn or was already used. Ask for a new one.",
        )),
    )
        .into_response()
}

/// `GET /invite/{token}`.
pub(super) async fn page(State(state): State<WebState>, Path(token): Path<String>) -> Response {
    let invitation = match open_invitation(&state, &token).await {
        Ok(Some(invitation)) => invitation,
        Ok(None) => return gone(),
        Err(error) => return failed(error),
    };
    let csrf = random_token();
    let html = pages::accept_invitation(&invitation.email, &token, &csrf, state.sso.is_some());
    let mut response = Html(html).into_response();
    response.headers_mut().append(SET_COOKIE, set_cookie(&state.config, CSRF_COOKIE, &csrf, None, "Strict"));
    response
}

#[derive(Debug, Deserialize)]
struct AcceptForm {
    password: String,
    csrf: String,
}

/// `POST /invite/{token}`: creates the account with the invited role and team, sets the
/// password, and signs the person in.
pub(super) async fn accept(
    State(state): State<WebState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let Some(request) = form::<AcceptForm>(&body) else { return gone() };
    if !cookie(&headers, CSRF_COOKIE).is_some_and(|c| equal(&c, &request.csrf)) {
        return (StatusCode::FORBIDDEN, Html(pages::message("Not joined", "The form expired; open the link again.")))
            .into_response();
    }
    let invitation = match open_invitation(&state, &token).await {
        Ok(Some(invitation)) => invitation,
        Ok(None) => return gone(),
        Err(error) => return failed(error),
    };
    let hash = match crate::password::hash(&request.password) {
        Ok(hash) => hash,
        Err(weak) => {
            let csrf = random_token();
            let html =
                pages::accept_invitation_with_error(&invitation.email, &token, &csrf, state.sso.is_some(), weak.0);
            let mut response = (StatusCode::BAD_REQUEST, Html(html)).into_response();
            response.headers_mut().append(SET_COOKIE, set_cookie(&state.config, CSRF_COOKIE, &csrf, None, "Strict"));
            return response;
        }
    };
    let user = match join(&state.store, &invitation).await {
        Ok(Ok(user)) => user,
        Ok(Err(text)) => return (StatusCode::CONFLICT, Html(pages::message("Not joined", &text))).into_response(),
        Err(error) => return failed(error),
    };
    if let Err(error) = state.store.set_password_hash(&user.id, Some(&hash)).await {
        return failed(error);
    }
    start_session(&state, &user, "invitation", super::LANDING).await
}

/// Applies an open invitation: the account (made if new, with the invited role), the team, and
/// the invitation closed; once. `Ok(Err(text))` when the person cannot join this way.
pub(crate) async fn join(store: &Store, invitation: &Invitation) -> Result<Result<UserRecord, String>, StoreError> {
    if !store.close_invitation(&invitation.id, now_ms(), false).await? {
        return Ok(Err("This invitation was already used.".into()));
    }
    let user = match store.user_for_sign_in(&invitation.email).await? {
        Some((user, _)) if !user.active => return Ok(Err("This account is deactivated; ask an admin.".into())),
        Some((user, Some(_))) => return Ok(Err(format!("{} already has an account: sign in instead.", user.email))),
        Some((user, None)) => user,
        None => {
            let name = invitation.email.split('@').next().unwrap_or_default();
            super::provision_person(store, &invitation.email, name, invitation.org_role, "invitation").await?
        }
    };
    if let Some((team, role)) = &invitation.team {
        super::join_team(store, &user.id, team, *role, "invitation").await?;
    }
    store.append_audit(&audit_event(&user.id, "invitation.accept", ("invitation", &invitation.id), None, None)).await?;
    Ok(Ok(user))
}
