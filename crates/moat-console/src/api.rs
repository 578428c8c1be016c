//! The admin API, called in process as the signed-in person.
//!
//! The console holds no authorization rules of its own: every figure it shows and every change
//! it makes goes through the same admin routes the CLI uses, marked with
//! [`OnBehalfOf`](moat_identity::web::OnBehalfOf) so they act as exactly that user and roles.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use moat_identity::web::OnBehalfOf;

use crate::Visit;
use serde_json::Value;
use tower::ServiceExt as _;

/// Largest admin answer the console reads (a page of records, a report).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

/// What the admin API answered: its status and JSON body (`Null` when it sent none).
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    /// The error message an admin API error carries, for showing beside a form.
    pub(crate) fn message(&self) -> String {
        self.body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("moat answered {}", self.status), str::to_owned)
    }

    /// The field an admin API error names (`param`), if any.
    pub(crate) fn field(&self) -> Option<&str> {
        self.body.pointer("/error/param").and_then(Value::as_str)
    }
}

/// The admin routes, and who calls them.
#[derive(Clone)]
pub(crate) struct AdminApi {
    pub(crate) routes: Router,
}

impl AdminApi {
    /// Calls `method uri` (with `body` as JSON) as the visiting person. The host the browser
    /// used is passed on, so links the API makes (invitations) point where the person is.
    pub(crate) async fn call(&self, visit: &Visit, method: Method, uri: &str, body: Option<&Value>) -> Answer {
        let payload = body.map(Value::to_string).unwrap_or_default();
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .extension(OnBehalfOf { user_id: visit.person.user.id.clone(), source: visit.source.clone() });
        for (name, value) in &visit.forwarded {
            request = request.header(name, value);
        }
        let request = request.body(Body::from(payload));
        let request = match request {
            Ok(request) => request,
            Err(error) => return failure(&format!("cannot build the request for {uri}: {error}")),
        };
        let response = match self.routes.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        match axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES).await {
            Ok(bytes) if bytes.is_empty() => Answer { status, body: Value::Null },
            Ok(bytes) => Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) },
            Err(error) => failure(&format!("cannot read the answer to {uri}: {error}")),
        }
    }

    /// `GET uri` as the visiting person.
    pub(crate) async fn get(&self, visit: &Visit, uri: &str) -> Answer {
        self.call(visit, Method::GET, uri, None).await
    }
}

fn failure(what: &str) -> Answer {
    tracing::error!(what, "console call to the admin API failed");
    Answer { status: StatusCode::INTERNAL_SERVER_ERROR, body: Value::Null }
}
