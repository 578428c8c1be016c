//! The HTTP client of one deployment.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use moat_core::Dialect;

use crate::direct::{DirectError, DirectPool, Lease, poll_body};
use crate::response::{first_byte_or_total, timeout_error};
use crate::{DeploymentSpec, TimeoutPhase, UpstreamError, UpstreamErrorKind, UpstreamResponse};

/// Most bytes of an upstream error body read to find its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Most characters of an upstream error message passed on to a client.
const MAX_ERROR_MESSAGE_CHARS: usize = 300;
/// Most bytes of a tokenize answer (a token list for a very long prompt is a few megabytes).
const MAX_TOKENIZE_BODY_BYTES: usize = 32 * 1024 * 1024;
/// How long an unused pooled connection of the shared client stays open.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// The paths under a deployment's base URL that requests go to, parsed once: parsing a URL per
/// request was a tenth of moat's CPU per request.
const KNOWN_PATHS: &[&str] =
    &["chat/completions", "completions", "embeddings", "messages", "messages/count_tokens", "responses"];

/// hyper-util's pooled client, over rustls: TLS deployments (HTTP/2 where offered), health
/// checks and tokenize calls.
type SharedClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A deployment's client: its connections, credentials and headers, built once.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    spec: DeploymentSpec,
    /// Sent with every request unless the request sets them itself.
    headers: Arc<HeaderMap>,
    /// The credential as Anthropic-dialect servers read it (`x-api-key`).
    anthropic_key: Option<HeaderValue>,
    /// [`KNOWN_PATHS`] under the base URL, where they parse.
    routes: Arc<[Route]>,
    /// Plain HTTP deployments: connections driven by the requests' own tasks.
    direct: Option<Direct>,
    shared: SharedClient,
}

#[derive(Debug, Clone)]
struct Direct {
    pool: Arc<DirectPool>,
    /// The `host` header for every request.
    host: HeaderValue,
}

/// One path under the base URL, in the form this deployment's transport sends.
#[derive(Debug)]
struct Route {
    path: &'static str,
    uri: Uri,
}

/// `path` under `base_url`: absolute for the shared client, or only the path (`/v1/...`) for a
/// direct connection, which names the host in its `host` header.
fn parse_uri(base_url: &str, path: &str, direct: bool) -> Result<Uri, String> {
    let absolute: Uri = format!("{base_url}/{path}").parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
    if !direct {
        return Ok(absolute);
    }
    Ok(match absolute.path_and_query() {
        Some(origin) => Uri::from(origin.clone()),
        None => Uri::from_static("/"),
    })
}

impl UpstreamClient {
    /// Builds the client. Fails only on values validation should have caught (a header name
    /// or a credential that is not a valid header value, unreadable TLS files).
    pub fn new(spec: DeploymentSpec) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
            let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
            headers.insert(name, value);
        }
        let mut anthropic_key = None;
        if let Some(key) = &spec.api_key {
            let invalid = || "the api_key is not a valid header value".to_string();
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).map_err(|_| invalid())?;
            // Keeps the credential out of any debug output of the request.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
            let mut value = HeaderValue::from_str(key.expose_secret()).map_err(|_| invalid())?;
            value.set_sensitive(true);
            anthropic_key = Some(value);
        }
        let tls = crate::tls::client_config(&spec.tls)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(spec.connect_timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let shared = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let base: Uri = spec.base_url.parse().map_err(|_| format!("the URL `{}` is not valid", spec.base_url))?;
        let direct = match (base.scheme_str(), base.authority()) {
            (Some("http"), Some(authority)) => {
                let host = HeaderValue::from_str(authority.as_str())
                    .map_err(|_| format!("the URL `{}` has an invalid host", spec.base_url))?;
                let port = authority.port_u16().unwrap_or(80);
                let pool = Arc::new(DirectPool::new(format!("{}:{port}", authority.host()), spec.connect_timeout));
                Some(Direct { pool, host })
            }
            _ => None,
        };
        let routes = KNOWN_PATHS
            .iter()
            .filter_map(|path| Some(Route { path, uri: parse_uri(&spec.base_url, path, direct.is_some()).ok()? }))
            .collect();
        Ok(UpstreamClient { spec, headers: Arc::new(headers), anthropic_key, routes, direct, shared })
    }

    /// The deployment this client talks to.
    pub fn spec(&self) -> &DeploymentSpec {
        &self.spec
    }

    /// POSTs a JSON `body` to `path` under the deployment's base URL (e.g. `chat/completions`)
    /// and returns once response headers arrive, within the first-byte timeout. Non-2xx
    /// answers become errors here. Redirects are not followed: a deployment that redirects is
    /// misconfigured, and following it would send prompts and credentials wherever the answer
    /// points.
    pub async fn post_json(
        &self,
        dialect: Dialect,
        path: &str,
        body: Vec<u8>,
        mut headers: HeaderMap,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let started = Instant::now();
        let deadline = started + self.spec.timeout;
        let first_byte_by = started + self.spec.first_byte_timeout;
        for (name, value) in self.headers.iter() {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        if dialect == Dialect::Anthropic
            && let Some(key) = &self.anthropic_key
        {
            headers.insert(HeaderName::from_static("x-api-key"), key.clone());
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let uri = match self.routes.iter().find(|route| route.path == path) {
            Some(route) => route.uri.clone(),
            None => parse_uri(&self.spec.base_url, path, self.direct.is_some()).map_err(|detail| {
                self.error(UpstreamErrorKind::Protocol, &format!("the deployment's URL is not valid: {detail}"))
            })?,
        };
        let exchange = async {
            match &self.direct {
                Some(direct) => {
                    headers.insert(HOST, direct.host.clone());
                    let request = build(Method::POST, uri, headers, Bytes::from(body));
                    let (response, lease) = direct.pool.send(request).await.map_err(|e| self.direct_error(e))?;
                    Ok((response, Some(lease)))
                }
                None => {
                    let request = build(Method::POST, uri, headers, Bytes::from(body));
                    let response = self.shared.request(request).await.map_err(|e| self.shared_error(&e))?;
                    Ok((response, None))
                }
            }
        };
        let (response, lease) = match tokio::time::timeout_at(first_byte_by.min(deadline), exchange).await {
            Ok(result) => result?,
            Err(_) => {
                let (first_byte, total) = (self.spec.first_byte_timeout, self.spec.timeout);
                return Err(first_byte_or_total(&self.spec.name, first_byte, first_byte_by, total, deadline));
            }
        };
        // Redirects are not followed, so a 3xx is as much a failure as a 4xx or 5xx.
        if response.status().as_u16() >= 300 {
            return Err(self.status_error(response, lease).await);
        }
        let (head, body) = response.into_parts();
        Ok(UpstreamResponse {
            deployment: self.spec.name.clone(),
            total_timeout: self.spec.timeout,
            deadline,
            head,
            body,
            lease,
        })
    }

    /// Asks the deployment's health-check URL whether it is up: any 2xx answer within the
    /// first-byte timeout is. `None` when it has no health-check URL.
    pub async fn check_health(&self) -> Option<bool> {
        let url = self.spec.health_check_url.as_deref()?;
        let Ok(uri) = url.parse::<Uri>() else { return Some(false) };
        let request = build(Method::GET, uri, (*self.headers).clone(), Bytes::new());
        let answer = tokio::time::timeout(self.spec.first_byte_timeout, self.shared.request(request)).await;
        Some(matches!(answer, Ok(Ok(response)) if response.status().is_success()))
    }

    /// Counts the tokens of `text` with the deployment's tokenize endpoint, if it has one.
    /// Accepts llama.cpp's (`{"tokens": [...]}`) and vLLM's (`{"count": n}`) answers. Only
    /// an internal deployment's: the text is the raw prompt, which the data policy may have
    /// redacted on its way to an external deployment, and must not send there whole.
    pub async fn count_tokens(&self, text: &str) -> Option<u64> {
        if self.spec.location != moat_core::Location::Internal {
            return None;
        }
        let uri = self.spec.tokenize_url.as_deref()?.parse::<Uri>().ok()?;
        let body = serde_json::json!({ "content": text, "prompt": text, "model": self.spec.upstream_model, "add_special": false });
        let mut headers = (*self.headers).clone();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let request = build(Method::POST, uri, headers, Bytes::from(body.to_string()));
        let exchange = async {
            let response = self.shared.request(request).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = Limited::new(response.into_body(), MAX_TOKENIZE_BODY_BYTES).collect().await.ok()?;
            serde_json::from_slice::<serde_json::Value>(&body.to_bytes()).ok()
        };
        let value = tokio::time::timeout(self.spec.connect_timeout * 3, exchange).await.ok()??;
        value
            .get("count")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| value.get("tokens").and_then(serde_json::Value::as_array).map(|t| t.len() as u64))
    }

    /// An error from sending the request directly: nothing of the answer has arrived yet.
    fn direct_error(&self, error: DirectError) -> UpstreamError {
        match error {
            DirectError::ConnectTimeout => {
                timeout_error(&self.spec.name, TimeoutPhase::Connect, self.spec.connect_timeout)
            }
            DirectError::Connect => self.error(UpstreamErrorKind::Connect, "could not connect to the deployment"),
            DirectError::Broken => {
                self.error(UpstreamErrorKind::Reset, "the connection to the deployment broke before it answered")
            }
        }
    }

    /// An error from sending the request through the shared client.
    fn shared_error(&self, error: &hyper_util::client::legacy::Error) -> UpstreamError {
        if !error.is_connect() {
            return self.error(UpstreamErrorKind::Reset, "the connection to the deployment broke before it answered");
        }
        if is_timeout(error) {
            return timeout_error(&self.spec.name, TimeoutPhase::Connect, self.spec.connect_timeout);
        }
        self.error(UpstreamErrorKind::Connect, "could not connect to the deployment")
    }

    fn error(&self, kind: UpstreamErrorKind, detail: &str) -> UpstreamError {
        UpstreamError { deployment: self.spec.name.clone(), kind, detail: detail.to_owned() }
    }

    async fn status_error(&self, response: Response<Incoming>, mut lease: Option<Lease>) -> UpstreamError {
        let status = response.status().as_u16();
        let retry_after_secs = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::new();
        let mut incoming = response.into_body();
        while let Some(Ok(chunk)) = poll_fn(|cx| poll_body(&mut incoming, &mut lease, cx)).await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY_BYTES {
                break;
            }
        }
        let detail = match status {
            401 | 403 => {
                format!("the deployment refused moat's credentials (HTTP {status}); an operator must fix its api_key")
            }
            400..=499 if status != 429 => match upstream_message(&body) {
                Some(message) => {
                    format!("the deployment rejected the request (HTTP {status}): {}", self.scrub(&message))
                }
                None => format!("the deployment rejected the request (HTTP {status})"),
            },
            429 | 529 => format!("the deployment is overloaded (HTTP {status}); retry later"),
            300..=399 => format!("the deployment answered with a redirect (HTTP {status}), which moat does not follow"),
            _ => format!("the deployment failed (HTTP {status})"),
        };
        UpstreamError {
            deployment: self.spec.name.clone(),
            kind: UpstreamErrorKind::Status { status, retry_after_secs },
            detail,
        }
    }

    /// Removes the deployment's credential from text that is about to reach a client, and caps
    /// its length.
    fn scrub(&self, message: &str) -> String {
        let mut message = message.to_owned();
        if let Some(key) = &self.spec.api_key {
            let secret = key.expose_secret();
            if !secret.is_empty() {
                message = message.replace(secret, "***");
            }
        }
        if message.chars().count() > MAX_ERROR_MESSAGE_CHARS {
            message = message.chars().take(MAX_ERROR_MESSAGE_CHARS).collect::<String>() + "…";
        }
        message
    }
}

/// Whether `e` is a timeout, looking through the error chain (a connect timeout is reported
/// inside the connect error).
fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(inner) = source {
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::TimedOut
        {
            return true;
        }
        if inner.to_string().contains("timed out") {
            return true;
        }
        source = inner.source();
    }
    false
}

/// A request with a complete body.
fn build(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    request
}

/// The human-readable message in an upstream error body, in the shapes OpenAI-compatible
/// servers use (`{"error":{"message"}}`, `{"error":"..."}`, `{"message"}`, `{"detail"}`).
fn upstream_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let candidates = [value.pointer("/error/message"), value.get("error"), value.get("message"), value.get("detail")];
    candidates.into_iter().flatten().find_map(|v| v.as_str().map(str::to_owned))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_messages_in_common_error_shapes() {
        assert_eq!(upstream_message(br#"{"error":{"message":"too long"}}"#).as_deref(), Some("too long"));
        assert_eq!(upstream_message(br#"{"error":"bad"}"#).as_deref(), Some("bad"));
        assert_eq!(upstream_message(br#"{"object":"error","message":"vllm says"}"#).as_deref(), Some("vllm says"));
        assert_eq!(upstream_message(br#"{"detail":"x"}"#).as_deref(), Some("x"));
        assert_eq!(upstream_message(b"<html>"), None);
    }
}
