//! The HTTP client of one deployment.

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use secrecy::ExposeSecret;

use moat_core::Dialect;

use crate::{DeploymentSpec, TimeoutPhase, UpstreamError, UpstreamErrorKind};

/// Most bytes of an upstream error body read to find its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// Most characters of an upstream error message passed on to a client.
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// The paths under a deployment's base URL that requests go to, parsed into URLs once:
/// parsing one per request (with its IDNA host check) was a tenth of moat's CPU per request.
const KNOWN_PATHS: &[&str] =
    &["chat/completions", "completions", "embeddings", "messages", "messages/count_tokens", "responses"];

/// A deployment's client: its pool, credentials and headers, built once.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    spec: DeploymentSpec,
    http: reqwest::Client,
    /// [`KNOWN_PATHS`] under the base URL, where they parse.
    urls: std::sync::Arc<[(&'static str, reqwest::Url)]>,
}

/// A successful (2xx) response whose body has not been read yet.
#[derive(Debug)]
pub struct UpstreamResponse {
    deployment: String,
    total_timeout: std::time::Duration,
    response: reqwest::Response,
}

impl UpstreamClient {
    /// Builds the client. Fails only on values validation should have caught (a header name
    /// or a credential that is not a valid header value).
    pub fn new(spec: DeploymentSpec) -> Result<Self, String> {
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("invalid header name `{name}`"))?;
            let value = HeaderValue::from_str(value).map_err(|_| format!("invalid value for header `{name}`"))?;
            headers.insert(name, value);
        }
        if let Some(key) = &spec.api_key {
            let mut value = HeaderValue::from_str(&format!("Bearer {}", key.expose_secret()))
                .map_err(|_| "the api_key is not a valid header value".to_string())?;
            // Keeps the credential out of any debug output of the request.
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = &spec.tls.ca_pem {
            for certificate in reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(|_| "the TLS CA file holds no valid PEM certificate".to_string())?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some(pem) = &spec.tls.client_identity_pem {
            let identity = reqwest::Identity::from_pem(pem.expose_secret().as_bytes())
                .map_err(|_| "the TLS client certificate or key is not valid PEM".to_string())?;
            builder = builder.identity(identity);
        }
        let http = builder
            .default_headers(headers)
            .connect_timeout(spec.connect_timeout)
            .pool_idle_timeout(std::time::Duration::from_secs(90))
            .tcp_nodelay(true)
            // A deployment that redirects is misconfigured; following it would send prompts
            // and credentials wherever the answer points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        let urls = KNOWN_PATHS
            .iter()
            .filter_map(|path| reqwest::Url::parse(&format!("{}/{path}", spec.base_url)).ok().map(|url| (*path, url)))
            .collect();
        Ok(UpstreamClient { spec, http, urls })
    }

    /// `path` under the deployment's base URL.
    fn url(&self, path: &str) -> Result<reqwest::Url, String> {
        match self.urls.iter().find(|(known, _)| *known == path) {
            Some((_, url)) => Ok(url.clone()),
            None => reqwest::Url::parse(&format!("{}/{path}", self.spec.base_url)).map_err(|e| e.to_string()),
        }
    }

    /// The deployment this client talks to.
    pub fn spec(&self) -> &DeploymentSpec {
        &self.spec
    }

    /// POSTs a JSON `body` to `path` under the deployment's base URL (e.g. `chat/completions`)
    /// and returns once response headers arrive, within the first-byte timeout. Non-2xx
    /// answers become errors here.
    pub async fn post_json(
        &self,
        dialect: Dialect,
        path: &str,
        body: Vec<u8>,
        headers: HeaderMap,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let url = self.url(path).map_err(|detail| UpstreamError {
            deployment: self.spec.name.clone(),
            kind: UpstreamErrorKind::Protocol,
            detail: format!("the deployment's URL is not valid: {detail}"),
        })?;
        let mut request = self.http.post(url).headers(headers);
        if dialect == Dialect::Anthropic
            && let Some(key) = &self.spec.api_key
            && let Ok(mut value) = HeaderValue::from_str(key.expose_secret())
        {
            // Anthropic-dialect servers read the credential from x-api-key.
            value.set_sensitive(true);
            request = request.header("x-api-key", value);
        }
        let sent = request.header(CONTENT_TYPE, "application/json").timeout(self.spec.timeout).body(body).send();
        let response = match tokio::time::timeout(self.spec.first_byte_timeout, sent).await {
            Ok(result) => result.map_err(|e| self.transport_error(&e))?,
            Err(_) => {
                return Err(timeout_error(&self.spec.name, TimeoutPhase::FirstByte, self.spec.first_byte_timeout));
            }
        };
        let status = response.status().as_u16();
        // Redirects are not followed, so a 3xx is as much a failure as a 4xx or 5xx.
        if status >= 300 {
            return Err(self.status_error(response).await);
        }
        Ok(UpstreamResponse { deployment: self.spec.name.clone(), total_timeout: self.spec.timeout, response })
    }

    /// Asks the deployment's health-check URL whether it is up: any 2xx answer within the
    /// first-byte timeout is. `None` when it has no health-check URL.
    pub async fn check_health(&self) -> Option<bool> {
        let url = self.spec.health_check_url.as_deref()?;
        let request = self.http.get(url).timeout(self.spec.first_byte_timeout).send();
        Some(matches!(request.await, Ok(response) if response.status().is_success()))
    }

    /// Counts the tokens of `text` with the deployment's tokenize endpoint, if it has one.
    /// Accepts llama.cpp's (`{"tokens": [...]}`) and vLLM's (`{"count": n}`) answers.
    pub async fn count_tokens(&self, text: &str) -> Option<u64> {
        let url = self.spec.tokenize_url.as_deref()?;
        let body = serde_json::json!({ "content": text, "prompt": text, "model": self.spec.upstream_model, "add_special": false });
        let response = self.http.post(url).timeout(self.spec.connect_timeout * 3).json(&body).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let value: serde_json::Value = response.json().await.ok()?;
        value
            .get("count")
            .and_then(serde_json::Value::as_u64)
            .or_else(|| value.get("tokens").and_then(serde_json::Value::as_array).map(|t| t.len() as u64))
    }

    /// An error from sending the request: nothing of the answer has arrived yet.
    fn transport_error(&self, e: &reqwest::Error) -> UpstreamError {
        if e.is_connect() && is_timeout(e) {
            return timeout_error(&self.spec.name, TimeoutPhase::Connect, self.spec.connect_timeout);
        }
        let mut error = transport_error(&self.spec.name, self.spec.timeout, e);
        if error.kind == UpstreamErrorKind::Protocol {
            error.kind = UpstreamErrorKind::Reset;
            error.detail = "the connection to the deployment broke before it answered".into();
        }
        error
    }

    async fn status_error(&self, response: reqwest::Response) -> UpstreamError {
        let status = response.status().as_u16();
        let retry_after_secs = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(Ok(chunk)) = stream.next().await {
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
fn is_timeout(e: &reqwest::Error) -> bool {
    if e.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        if inner.to_string().contains("timed out") {
            return true;
        }
        source = inner.source();
    }
    false
}

fn timeout_error(deployment: &str, phase: TimeoutPhase, limit: std::time::Duration) -> UpstreamError {
    let what = match phase {
        TimeoutPhase::Connect => "could not connect to the deployment",
        TimeoutPhase::FirstByte => "the deployment sent nothing",
        TimeoutPhase::Idle => "the deployment's stream went silent",
        TimeoutPhase::Total => "the deployment did not finish",
    };
    UpstreamError {
        deployment: deployment.to_owned(),
        kind: UpstreamErrorKind::Timeout(phase),
        detail: format!("{what} within {}", humanize(limit)),
    }
}

/// `1.5s`, `250ms`, `10s`: how a limit reads in an error message.
fn humanize(limit: std::time::Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{}s", limit.as_secs())
    } else if limit.as_secs() == 0 {
        format!("{}ms", limit.as_millis())
    } else {
        format!("{:.1}s", limit.as_secs_f64())
    }
}

fn transport_error(deployment: &str, timeout: std::time::Duration, e: &reqwest::Error) -> UpstreamError {
    let (kind, detail) = if e.is_timeout() {
        return timeout_error(deployment, TimeoutPhase::Total, timeout);
    } else if e.is_connect() {
        (UpstreamErrorKind::Connect, "could not connect to the deployment".to_string())
    } else {
        (UpstreamErrorKind::Protocol, "the connection to the deployment broke".to_string())
    };
    UpstreamError { deployment: deployment.to_owned(), kind, detail }
}

/// The human-readable message in an upstream error body, in the shapes OpenAI-compatible
/// servers use (`{"error":{"message"}}`, `{"error":"..."}`, `{"message"}`, `{"detail"}`).
fn upstream_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let candidates = [value.pointer("/error/message"), value.get("error"), value.get("message"), value.get("detail")];
    candidates.into_iter().flatten().find_map(|v| v.as_str().map(str::to_owned))
}

impl UpstreamResponse {
    /// The response's content type, to pass on to the client.
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.response.headers().get(CONTENT_TYPE)
    }

    /// The HTTP status (2xx).
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// Reads the whole body (non-streaming responses).
    pub async fn bytes(self) -> Result<Bytes, UpstreamError> {
        let (deployment, timeout) = (self.deployment, self.total_timeout);
        self.response.bytes().await.map_err(|e| transport_error(&deployment, timeout, &e))
    }

    /// Waits up to `limit` for the first chunk of the body, so that a stream that fails
    /// before sending anything can still be retried: nothing has reached the client. `None`
    /// is an empty body.
    pub async fn first_chunk(&mut self, limit: std::time::Duration) -> Result<Option<Bytes>, UpstreamError> {
        match tokio::time::timeout(limit, self.response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) if e.is_timeout() => {
                Err(timeout_error(&self.deployment, TimeoutPhase::Total, self.total_timeout))
            }
            Ok(Err(_)) => Err(UpstreamError {
                deployment: self.deployment.clone(),
                kind: UpstreamErrorKind::Reset,
                detail: "the connection to the deployment broke before it sent anything".into(),
            }),
            Err(_) => Err(timeout_error(&self.deployment, TimeoutPhase::FirstByte, limit)),
        }
    }

    /// The rest of the body as it arrives (streaming responses); a silence longer than `idle`
    /// between chunks ends it with an idle timeout.
    pub fn into_stream(self, idle: std::time::Duration) -> BodyStream {
        BodyStream {
            body: Box::pin(self.response.bytes_stream()),
            deployment: self.deployment,
            total_timeout: self.total_timeout,
            idle,
            last_chunk: tokio::time::Instant::now(),
            timer: Box::pin(tokio::time::sleep(idle)),
            ended: false,
        }
    }
}

/// An upstream body as a stream of chunks, cut with an idle timeout.
///
/// The idle timer is set once and only moved when it fires early: a chunk only notes the time
/// it arrived. Re-arming a timer per chunk (a timer-wheel removal and insertion, a hundred
/// times a stream) was a tenth of a stream's cost.
pub struct BodyStream {
    body: std::pin::Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
    deployment: String,
    total_timeout: std::time::Duration,
    idle: std::time::Duration,
    last_chunk: tokio::time::Instant,
    timer: std::pin::Pin<Box<tokio::time::Sleep>>,
    ended: bool,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream").field("deployment", &self.deployment).field("ended", &self.ended).finish()
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.last_chunk = tokio::time::Instant::now();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.ended = true;
                Poll::Ready(Some(Err(transport_error(&this.deployment, this.total_timeout, &e))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => loop {
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let due = this.last_chunk + this.idle;
                if tokio::time::Instant::now() >= due {
                    this.ended = true;
                    return Poll::Ready(Some(Err(timeout_error(&this.deployment, TimeoutPhase::Idle, this.idle))));
                }
                // Chunks arrived since the timer was set: it fires next at the real deadline.
                this.timer.as_mut().reset(due);
            },
        }
    }
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
