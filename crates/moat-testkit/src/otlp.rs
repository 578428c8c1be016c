//! An OTLP/HTTP trace receiver that keeps every span it is sent, decoded with the
//! OpenTelemetry project's own protobuf definitions, for testing the spans moat exports.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::{AnyValue as ProtoAnyValue, KeyValue};
use prost::Message;

/// One received span, flattened.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Lower-case hex.
    pub trace_id: String,
    /// Lower-case hex.
    pub span_id: String,
    /// Lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// The span's name (`chat m`).
    pub name: String,
    /// `SpanKind` as OTLP numbers it: 2 server, 3 client.
    pub kind: i32,
    /// When it started, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When it ended, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// 0 unset, 1 ok, 2 error.
    pub status_code: i32,
    /// Its attributes by key.
    pub attributes: BTreeMap<String, Attr>,
    /// The attributes of the resource that sent it (`service.name`…).
    pub resource: BTreeMap<String, Attr>,
}

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Double(f64),
    /// An array, map or bytes, not looked into.
    Other,
}

impl ReceivedSpan {
    /// A string attribute, if present.
    pub fn str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Attr::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer attribute, if present.
    pub fn int(&self, key: &str) -> Option<i64> {
        match self.attributes.get(key) {
            Some(Attr::Int(n)) => Some(*n),
            _ => None,
        }
    }

    /// A floating-point attribute, if present.
    pub fn double(&self, key: &str) -> Option<f64> {
        match self.attributes.get(key) {
            Some(Attr::Double(n)) => Some(*n),
            _ => None,
        }
    }

    /// A boolean attribute, if present.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.attributes.get(key) {
            Some(Attr::Bool(b)) => Some(*b),
            _ => None,
        }
    }
}

#[derive(Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    headers: Mutex<Vec<HeaderMap>>,
}

/// The receiver; it stops when dropped.
pub struct OtlpReceiver {
    addr: SocketAddr,
    received: Arc<Received>,
    _server: tokio::task::JoinHandle<()>,
}

impl OtlpReceiver {
    /// Starts it on an ephemeral loopback port.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind otlp: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("otlp address: {e}"));
        let received = Arc::new(Received::default());
        let app = axum::Router::new().route("/v1/traces", post(export)).with_state(received.clone());
        #[allow(clippy::disallowed_methods, reason = "the receiver lives as long as its handle")]
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        OtlpReceiver { addr, received, _server: server }
    }

    /// The base URL to configure as the OTLP endpoint (`/v1/traces` is appended by clients).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The headers of every export request received.
    pub fn export_headers(&self) -> Vec<HeaderMap> {
        self.received.headers.lock().map(|h| h.clone()).unwrap_or_default()
    }

    /// Waits up to `within` until `done` holds for the spans received, and returns them.
    pub async fn wait_for(&self, within: Duration, done: impl Fn(&[ReceivedSpan]) -> bool) -> Vec<ReceivedSpan> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn export(State(received): State<Arc<Received>>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return (StatusCode::BAD_REQUEST, Vec::new());
    };
    if let Ok(mut kept) = received.headers.lock() {
        kept.push(headers);
    }
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    status_code: span.status.map_or(0, |s| s.code),
                    attributes: attributes(&span.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    if let Ok(mut kept) = received.spans.lock() {
        kept.extend(spans);
    }
    // An empty ExportTraceServiceResponse encodes to no bytes.
    (StatusCode::OK, Vec::new())
}

fn attributes(list: &[KeyValue]) -> BTreeMap<String, Attr> {
    list.iter().map(|kv| (kv.key.clone(), attr(kv.value.as_ref()))).collect()
}

fn attr(value: Option<&ProtoAnyValue>) -> Attr {
    match value.and_then(|v| v.value.as_ref()) {
        Some(AnyValue::StringValue(s)) => Attr::Str(s.clone()),
        Some(AnyValue::BoolValue(b)) => Attr::Bool(*b),
        Some(AnyValue::IntValue(n)) => Attr::Int(*n),
        Some(AnyValue::DoubleValue(n)) => Attr::Double(*n),
        _ => Attr::Other,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
