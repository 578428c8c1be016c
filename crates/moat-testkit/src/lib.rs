//! Test support: a programmable fake upstream for fault injection, and a fresh PostgreSQL
//! schema per test.
//!
//! [`FakeUpstream`] is a real HTTP server on `127.0.0.1:0` that answers OpenAI-dialect requests
//! from a script of [`Reply`]s (falling back to a well-formed default), records every request it
//! receives, and notices when a client abandons a stream. The real upstream for end-to-end tests
//! is llama.cpp's `llama-server`; this fake exists for what a real server cannot be made to do
//! on demand: fail, stall, or report no usage.

mod gate;
mod otlp;
mod postgres;
mod smtp;
mod tls;

pub use gate::TcpGate;
pub use otlp::{Attr, OtlpReceiver, ReceivedSpan};
pub use postgres::{fresh_postgres_schema, postgres_server_url};
pub use smtp::SmtpSink;
pub use tls::TestPki;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::Response;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The frame that ends an OpenAI stream.
const DONE_FRAME: &str = "data: [DONE]\n\n";

/// Token counts a scripted reply reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakeUsage {
    /// `prompt_tokens`.
    pub prompt: u64,
    /// `completion_tokens`.
    pub completion: u64,
    /// `prompt_tokens_details.cached_tokens`.
    pub cached: u64,
}

impl FakeUsage {
    /// Anthropic's shape: `cached` is reported beside `input_tokens`, not inside it.
    fn anthropic_json(self) -> Value {
        json!({
            "input_tokens": self.prompt - self.cached,
            "cache_read_input_tokens": self.cached,
            "output_tokens": self.completion,
        })
    }

    /// The Responses API's shape.
    fn responses_json(self) -> Value {
        json!({
            "input_tokens": self.prompt,
            "input_tokens_details": { "cached_tokens": self.cached },
            "output_tokens": self.completion,
            "output_tokens_details": { "reasoning_tokens": 0 },
            "total_tokens": self.prompt + self.completion,
        })
    }

    fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": { "cached_tokens": self.cached },
        })
    }
}

/// How a scripted stream ends after its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// `data: [DONE]` and close.
    Done,
    /// Keep the connection open and send nothing more.
    Hang,
    /// Break the connection: the body ends in an error, so the client sees a reset.
    Reset,
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A JSON body with a status and extra headers.
    Json {
        /// HTTP status.
        status: u16,
        /// Body.
        body: Value,
        /// Extra response headers.
        headers: Vec<(String, String)>,
    },
    /// An SSE stream of frames sent `gap` apart.
    Stream {
        /// Whole SSE frames (`event:` and `data:` lines, blank line included).
        frames: Vec<String>,
        /// Pause before each frame.
        gap: Duration,
        /// What follows the payloads.
        end: StreamEnd,
    },
    /// A body sent exactly as given (truncated JSON, HTML error pages).
    Raw {
        /// HTTP status.
        status: u16,
        /// `content-type` header.
        content_type: String,
        /// The bytes.
        body: String,
    },
    /// Never answer.
    Hang,
}

impl Reply {
    /// A chat completion saying `content`, reporting `usage` when given.
    pub fn chat(content: &str, usage: Option<FakeUsage>) -> Self {
        let mut body = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 0,
            "model": "fake-upstream-model",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": content }, "finish_reason": "stop" }],
        });
        if let Some(usage) = usage {
            body["usage"] = usage.json();
        }
        Reply::Json { status: 200, body, headers: Vec::new() }
    }

    /// A chat stream of `pieces`, then a usage-only chunk when `usage` is given, then `[DONE]`.
    pub fn chat_stream(pieces: &[&str], usage: Option<FakeUsage>) -> Self {
        let mut payloads: Vec<String> = pieces
            .iter()
            .map(|piece| chunk(json!([{ "index": 0, "delta": { "content": piece }, "finish_reason": null }]), None))
            .collect();
        payloads.push(chunk(json!([{ "index": 0, "delta": {}, "finish_reason": "stop" }]), None));
        if let Some(usage) = usage {
            payloads.push(chunk(json!([]), Some(usage)));
        }
        let mut frames: Vec<String> = payloads.iter().map(|p| format!("data: {p}\n\n")).collect();
        frames.push(DONE_FRAME.into());
        Reply::Stream { frames, gap: Duration::ZERO, end: StreamEnd::Done }
    }

    /// An Anthropic Messages reply saying `content`, with Anthropic-style usage.
    pub fn message(content: &str, usage: FakeUsage) -> Self {
        let body = json!({
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": "fake-upstream-model",
            "content": [{ "type": "text", "text": content }],
            "stop_reason": "end_turn",
            "stop_sequence": null,
            "usage": usage.anthropic_json(),
        });
        Reply::Json { status: 200, body, headers: Vec::new() }
    }

    /// An Anthropic Messages stream of `pieces` in one text block, every frame with its
    /// `event:` line, input usage in `message_start` and output usage in `message_delta`.
    pub fn message_stream(pieces: &[&str], usage: FakeUsage) -> Self {
        let start_usage = FakeUsage { completion: 0, ..usage };
        let mut events = vec![
            (
                "message_start",
                json!({ "type": "message_start", "message": {
                "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake-upstream-model",
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": start_usage.anthropic_json() } }),
            ),
            (
                "content_block_start",
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } }),
            ),
            ("ping", json!({ "type": "ping" })),
        ];
        for piece in pieces {
            events.push((
                "content_block_delta",
                json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": piece } }),
            ));
        }
        events.push(("content_block_stop", json!({ "type": "content_block_stop", "index": 0 })));
        events.push(("message_delta", json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": usage.completion } })));
        events.push(("message_stop", json!({ "type": "message_stop" })));
        let frames = events.into_iter().map(|(event, data)| format!("event: {event}\ndata: {data}\n\n")).collect();
        Reply::Stream { frames, gap: Duration::ZERO, end: StreamEnd::Done }
    }

    /// A Responses API stream from an upstream that serves `/responses` itself: one text
    /// message of `pieces`, ending with `response.completed` carrying `usage`.
    pub fn responses_stream(pieces: &[&str], usage: FakeUsage) -> Self {
        let text: String = pieces.concat();
        let mut events = vec![(
            "response.created",
            json!({ "type": "response.created", "response": { "id": "resp_fake", "status": "in_progress", "output": [] } }),
        )];
        for piece in pieces {
            events.push(("response.output_text.delta", json!({ "type": "response.output_text.delta", "item_id": "msg_fake", "output_index": 0, "content_index": 0, "delta": piece })));
        }
        events.push(("response.completed", json!({ "type": "response.completed", "response": {
            "id": "resp_fake", "object": "response", "status": "completed",
            "output": [{ "type": "message", "id": "msg_fake", "role": "assistant", "content": [{ "type": "output_text", "text": text }] }],
            "usage": usage.responses_json(),
        }})));
        let frames = events.into_iter().map(|(event, data)| format!("event: {event}\ndata: {data}\n\n")).collect();
        Reply::Stream { frames, gap: Duration::ZERO, end: StreamEnd::Done }
    }

    /// Drops the last `n` frames of a stream (no effect on other replies): with
    /// [`StreamEnd::Hang`], a stream that stalls before it reports its final usage.
    pub fn truncated(self, n: usize) -> Self {
        match self {
            Reply::Stream { mut frames, gap, end } => {
                frames.truncate(frames.len().saturating_sub(n));
                Reply::Stream { frames, gap, end }
            }
            other => other,
        }
    }

    /// An error in OpenAI shape.
    pub fn error(status: u16, message: &str) -> Self {
        Reply::Json {
            status,
            body: json!({ "error": { "message": message, "type": "fake_error", "code": null } }),
            headers: Vec::new(),
        }
    }

    /// Sets the pause before each frame of a stream (no effect on other replies).
    pub fn with_gap(self, gap: Duration) -> Self {
        match self {
            Reply::Stream { frames, end, .. } => Reply::Stream { frames, gap, end },
            other => other,
        }
    }

    /// Replaces how a stream ends (no effect on other replies).
    pub fn ending(self, end: StreamEnd) -> Self {
        match self {
            Reply::Stream { mut frames, gap, .. } => {
                // A stream that hangs never says it is done.
                if end == StreamEnd::Hang && frames.last().is_some_and(|f| f == DONE_FRAME) {
                    frames.pop();
                }
                Reply::Stream { frames, gap, end }
            }
            other => other,
        }
    }

    /// Adds a response header (JSON replies only).
    pub fn with_header(self, name: &str, value: &str) -> Self {
        match self {
            Reply::Json { status, body, mut headers } => {
                headers.push((name.to_owned(), value.to_owned()));
                Reply::Json { status, body, headers }
            }
            other => other,
        }
    }
}

fn chunk(choices: Value, usage: Option<FakeUsage>) -> String {
    let mut body = json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake-upstream-model",
        "choices": choices,
    });
    if let Some(usage) = usage {
        body["usage"] = usage.json();
    }
    body.to_string()
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// Path after `/v1/`, e.g. `chat/completions`.
    pub path: String,
    /// The HTTP version it came over.
    pub version: Version,
    /// Request headers.
    pub headers: HeaderMap,
    /// The body as received.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    requests: Mutex<Vec<RecordedRequest>>,
    tokenize_calls: AtomicUsize,
    /// Whether `GET /v1/models` (a health check) answers 200 rather than 503.
    unhealthy: std::sync::atomic::AtomicBool,
    health_checks: AtomicUsize,
    streams_dropped: Mutex<Option<watch::Sender<usize>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the data is still what the test wants to see.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fake upstream server; it stops when dropped.
pub struct FakeUpstream {
    addr: SocketAddr,
    scheme: &'static str,
    connections: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    shared: Arc<Shared>,
    streams_dropped: watch::Receiver<usize>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts the server on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind fake upstream: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fake upstream address: {e}"));
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        let listener = listener.tap_io(move |_| {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        Self::serve(listener, addr, "http", connections, Arc::new(AtomicUsize::new(0)))
    }

    /// Starts the server behind TLS with `pki`'s server certificate (HTTP/2 or HTTP/1.1 by
    /// ALPN); with `require_client_cert`, a client without a certificate from `pki`'s CA fails
    /// the handshake.
    pub async fn start_tls(pki: &TestPki, require_client_cert: bool) -> Self {
        let tcp =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind fake upstream: {e}"));
        let addr = tcp.local_addr().unwrap_or_else(|e| panic!("fake upstream address: {e}"));
        let connections = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let listener = tls::TlsListener {
            tcp,
            acceptor: tokio_rustls::TlsAcceptor::from(pki.server_config(require_client_cert)),
            connections: connections.clone(),
            refused: refused.clone(),
        };
        Self::serve(listener, addr, "https", connections, refused)
    }

    fn serve<L>(
        listener: L,
        addr: SocketAddr,
        scheme: &'static str,
        connections: Arc<AtomicUsize>,
        refused: Arc<AtomicUsize>,
    ) -> Self
    where
        L: axum::serve::Listener,
        L::Addr: std::fmt::Debug,
    {
        let shared = Arc::new(Shared::default());
        let (dropped_tx, streams_dropped) = watch::channel(0);
        *lock(&shared.streams_dropped) = Some(dropped_tx);
        let app = axum::Router::new()
            .route("/v1/models", get(models))
            .route("/v1/{*path}", post(answer))
            .route("/tokenize", post(tokenize))
            .with_state(shared.clone());
        #[allow(
            clippy::disallowed_methods,
            reason = "the fake lives as long as its handle; dropping the test runtime ends it"
        )]
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream { addr, scheme, connections, refused, shared, streams_dropped, _server: server }
    }

    /// Makes `GET /v1/models`, where health checks look, answer 503 (`false`) or 200.
    pub fn set_healthy(&self, healthy: bool) {
        self.shared.unhealthy.store(!healthy, Ordering::SeqCst);
    }

    /// How many health checks (`GET /v1/models`) arrived.
    pub fn health_checks(&self) -> usize {
        self.shared.health_checks.load(Ordering::SeqCst)
    }

    /// Connections accepted (after the TLS handshake, for a TLS fake).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// TLS handshakes that failed (a client without the required certificate).
    pub fn refused_handshakes(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    /// The OpenAI-compatible base URL, ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("{}://{}/v1", self.scheme, self.addr)
    }

    /// The tokenize endpoint's URL (llama.cpp shape: counts whitespace-separated words).
    pub fn tokenize_url(&self) -> String {
        format!("{}://{}/tokenize", self.scheme, self.addr)
    }

    /// Queues replies, answered in order; when the queue is empty a default reply is used.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.script).push_back(reply);
    }

    /// Every request received so far (tokenize calls excluded).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many model requests were received.
    pub fn calls(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// How many tokenize requests were received.
    pub fn tokenize_calls(&self) -> usize {
        self.shared.tokenize_calls.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` streams were abandoned by their reader before they ended.
    pub async fn wait_streams_dropped(&self, n: usize, within: Duration) -> bool {
        let mut rx = self.streams_dropped.clone();
        tokio::time::timeout(within, rx.wait_for(|count| *count >= n)).await.is_ok()
    }
}

async fn models(State(shared): State<Arc<Shared>>) -> Response {
    shared.health_checks.fetch_add(1, Ordering::SeqCst);
    let status = if shared.unhealthy.load(Ordering::SeqCst) { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    let body = json!({ "object": "list", "data": [{ "id": "fake-upstream-model", "object": "model" }] });
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap_or_else(|e| panic!("fake reply: {e}"))
}

async fn tokenize(State(shared): State<Arc<Shared>>, body: Bytes) -> axum::Json<Value> {
    shared.tokenize_calls.fetch_add(1, Ordering::SeqCst);
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let words = value.get("content").and_then(Value::as_str).map_or(0, |s| s.split_whitespace().count());
    axum::Json(json!({ "tokens": vec![1; words] }))
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    lock(&shared.requests).push(RecordedRequest { path: path.clone(), version, headers, body });
    let scripted = lock(&shared.script).pop_front();
    let reply = scripted.unwrap_or_else(|| default_reply(&path));
    match reply {
        Reply::Json { status, body, headers } => {
            let mut builder = Response::builder()
                .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
                .header("content-type", "application/json");
            for (name, value) in headers {
                builder = builder.header(name, value);
            }
            builder.body(Body::from(body.to_string())).unwrap_or_else(|e| panic!("fake reply: {e}"))
        }
        Reply::Stream { frames, gap, end } => {
            let dropped = lock(&shared.streams_dropped).clone();
            let stream = ScriptedStream::new(frames, gap, end, dropped);
            Response::builder()
                .header("content-type", "text/event-stream")
                .body(Body::from_stream(stream))
                .unwrap_or_else(|e| panic!("fake reply: {e}"))
        }
        Reply::Raw { status, content_type, body } => Response::builder()
            .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap_or_else(|e| panic!("fake reply: {e}")),
        Reply::Hang => {
            std::future::pending::<()>().await;
            Response::new(Body::empty())
        }
    }
}

fn default_reply(path: &str) -> Reply {
    match path {
        "messages" => {
            Reply::message("Hello from the fake upstream.", FakeUsage { prompt: 12, completion: 7, cached: 0 })
        }
        "responses" => Reply::Json {
            status: 200,
            body: json!({
                "id": "resp_fake", "object": "response", "status": "completed", "model": "fake-upstream-model",
                "output": [{ "type": "message", "id": "msg_fake", "role": "assistant",
                    "content": [{ "type": "output_text", "text": "Hello from the fake upstream.", "annotations": [] }] }],
                "usage": FakeUsage { prompt: 12, completion: 7, cached: 0 }.responses_json(),
            }),
            headers: Vec::new(),
        },
        "messages/count_tokens" => {
            Reply::Json { status: 200, body: json!({ "input_tokens": 11 }), headers: Vec::new() }
        }
        "embeddings" => Reply::Json {
            status: 200,
            body: json!({
                "object": "list",
                "data": [{ "object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3] }],
                "model": "fake-upstream-model",
                "usage": { "prompt_tokens": 4, "total_tokens": 4 },
            }),
            headers: Vec::new(),
        },
        "completions" => Reply::Json {
            status: 200,
            body: json!({
                "id": "cmpl-fake",
                "object": "text_completion",
                "choices": [{ "index": 0, "text": "fake text", "finish_reason": "stop" }],
                "usage": { "prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5 },
            }),
            headers: Vec::new(),
        },
        _ => Reply::chat("Hello from the fake upstream.", Some(FakeUsage { prompt: 12, completion: 7, cached: 0 })),
    }
}

/// Emits scripted frames with pauses; counts itself as dropped if abandoned before the end.
struct ScriptedStream {
    frames: VecDeque<Bytes>,
    gap: Duration,
    end: StreamEnd,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    finished: bool,
    dropped: Option<watch::Sender<usize>>,
}

impl ScriptedStream {
    fn new(frames: Vec<String>, gap: Duration, end: StreamEnd, dropped: Option<watch::Sender<usize>>) -> Self {
        let frames: VecDeque<Bytes> = frames.into_iter().map(Bytes::from).collect();
        ScriptedStream { frames, gap, end, sleep: None, finished: false, dropped }
    }
}

impl Stream for ScriptedStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.frames.is_empty() && self.end == StreamEnd::Reset && !self.finished && !self.gap.is_zero() {
            // The reset comes a gap after the last frame, so the frames before it are flushed.
            let gap = self.gap;
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        if self.frames.is_empty() {
            match self.end {
                StreamEnd::Hang => return Poll::Pending,
                StreamEnd::Reset if !self.finished => {
                    self.finished = true;
                    return Poll::Ready(Some(Err(std::io::Error::other("scripted reset"))));
                }
                StreamEnd::Done | StreamEnd::Reset => {
                    self.finished = true;
                    return Poll::Ready(None);
                }
            }
        }
        if !self.gap.is_zero() {
            let gap = self.gap;
            let sleep = self.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(gap)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.sleep = None;
        }
        Poll::Ready(self.frames.pop_front().map(Ok))
    }
}

impl Drop for ScriptedStream {
    fn drop(&mut self) {
        if !self.finished
            && let Some(dropped) = &self.dropped
        {
            dropped.send_modify(|n| *n += 1);
        }
    }
}

/// An upstream that accepts connections and closes them without a word: a server crashing
/// or restarting under a request (a reset before the first byte).
pub struct ClosingUpstream {
    addr: SocketAddr,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    _server: tokio::task::JoinHandle<()>,
}

impl ClosingUpstream {
    /// Starts it on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind closing upstream: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("closing upstream address: {e}"));
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        #[allow(
            clippy::disallowed_methods,
            reason = "the fake lives as long as its handle; dropping the test runtime ends it"
        )]
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // Read the request's first bytes, so the client has sent it, then hang up.
                let mut buffer = [0u8; 1024];
                let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
                drop(socket);
            }
        });
        ClosingUpstream { addr, accepted, _server: server }
    }

    /// The base URL, ending in `/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Connections accepted (and closed) so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}
