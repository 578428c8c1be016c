//! The pipeline's side of the response cache: whether a request may use it, answering a hit,
//! and storing a fresh answer.
//!
//! Only whole answers are cached (not streams), of models whose config opts in, on the chat,
//! completions, embeddings and Messages endpoints; the Responses API keeps server-side state
//! (`previous_response_id`), so its answers are never replayed. A hit is metered like any
//! request, with the stored answer's tokens and `cache_hit` set, and no deployment.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use moat_core::{CachePolicy, Principal};

use super::{Endpoint, Meter};
use crate::response_cache::{CacheKey, CachedAnswer, Lookup};
use crate::state::AppState;

/// The response header that says what the cache did: `hit` or `miss`.
pub(crate) const CACHE_STATUS: &str = "x-moat-cache";

/// How one request uses the cache.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheUse {
    key: CacheKey,
    ttl: Duration,
    /// `cache-control: no-cache` (or `no-store`) skips the lookup.
    lookup: bool,
    /// `cache-control: no-store` keeps the answer out of the cache.
    store: bool,
}

/// How the request uses the cache, or `None` if it does not.
pub(crate) fn plan(
    policy: Option<CachePolicy>,
    endpoint: Endpoint,
    stream: bool,
    principal: &Principal,
    headers: &HeaderMap,
    model: &str,
    body: &[u8],
) -> Option<CacheUse> {
    let policy = policy?;
    if stream || endpoint == Endpoint::Responses {
        return None;
    }
    let directives = cache_directives(headers);
    let no_store = directives.iter().any(|d| d == "no-store");
    let no_cache = no_store || directives.iter().any(|d| d == "no-cache");
    Some(CacheUse {
        key: CacheKey::of(endpoint.name(), model, &policy.scope.tenant(principal), body),
        ttl: policy.ttl,
        lookup: !no_cache,
        store: !no_store,
    })
}

/// The lower-cased directives of the request's `cache-control` headers.
fn cache_directives(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect()
}

/// Looks the request up; counts the result per model.
pub(crate) async fn lookup(state: &AppState, model: &str, cache: &CacheUse) -> Option<CachedAnswer> {
    if !cache.lookup {
        return None;
    }
    let found = state.response_cache.get(&cache.key).await;
    state.metrics.observe_cache_lookup(model, found.label());
    match found {
        Lookup::Hit(answer) => Some(answer),
        Lookup::Miss | Lookup::Unavailable => None,
    }
}

/// Answers from the cache, and meters the request with the stored answer's tokens.
pub(crate) fn answer(mut meter: Meter, endpoint: Endpoint, answer: CachedAnswer) -> Response {
    if let Some(view) = endpoint.read_body(&answer.body) {
        meter.observe(view);
    }
    meter.mark_cache_hit();
    meter.finish(200, None);
    let content_type =
        HeaderValue::from_str(&answer.content_type).unwrap_or_else(|_| HeaderValue::from_static("application/json"));
    let mut response = answer.body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, content_type);
    response.headers_mut().insert(CACHE_STATUS, HeaderValue::from_static("hit"));
    response
}

/// Marks the response a miss and, when it succeeded, stores `body` (what the client is sent)
/// off the request path.
pub(crate) fn fill(state: &Arc<AppState>, cache: Option<CacheUse>, response: &mut Response, body: &Bytes) {
    let Some(cache) = cache else { return };
    response.headers_mut().insert(CACHE_STATUS, HeaderValue::from_static("miss"));
    if !cache.store || response.status() != axum::http::StatusCode::OK {
        return;
    }
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let answer = CachedAnswer { content_type, body: body.clone() };
    state.response_cache.put(cache.key, answer, cache.ttl, &state.tasks);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_directives_skip_the_lookup_or_the_store() {
        let policy = Some(CachePolicy { ttl: Duration::from_secs(60), scope: moat_core::CacheScope::Org });
        let principal = Principal {
            teams: Vec::new(),
            key_id: Some("k".into()),
            user_id: None,
            team_id: None,
            role: moat_core::Role::Client,
            models: moat_core::ModelAccess::All,
        };
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            if !value.is_empty() {
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(value).expect("ascii"));
            }
            plan(policy, Endpoint::ChatCompletions, false, &principal, &headers, "m", b"{}").expect("cacheable")
        };
        assert!(with("").lookup && with("").store);
        assert!(!with("No-Cache").lookup && with("no-cache").store);
        assert!(!with("max-age=0, no-store").lookup && !with("no-store").store);
        let headers = HeaderMap::new();
        assert!(plan(policy, Endpoint::ChatCompletions, true, &principal, &headers, "m", b"{}").is_none(), "streams");
        assert!(plan(policy, Endpoint::Responses, false, &principal, &headers, "m", b"{}").is_none());
        assert!(plan(None, Endpoint::ChatCompletions, false, &principal, &headers, "m", b"{}").is_none());
    }
}
