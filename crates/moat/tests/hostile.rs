//! Hostile input against a running `moat serve`: thousands of malformed requests (random bytes,
//! invalid UTF-8, deep nesting, huge numbers, duplicate keys, wrong types, oversized and
//! broken headers, truncated bodies, hostile paths and query strings). Every one is answered
//! with a 4xx in the dialect of the endpoint it went to, or its connection is closed cleanly;
//! the process never panics, keeps serving, and its memory returns to where it was after the
//! first round.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod support;

use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use support::ADMIN_KEY;

/// Requests in flight at once.
const PARALLEL: usize = 16;
/// Rounds after the warm-up one; memory after them is compared with memory after the warm-up.
const ROUNDS: usize = 3;
/// Memory a process may keep beyond the warm-up's (allocator caches, metric series).
const MEMORY_SLACK_BYTES: u64 = 24 * 1024 * 1024;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap_or(0)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

/// Which error envelope a path's answers use.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    OpenAi,
    Anthropic,
    /// Refused by the HTTP layer before any route: any 4xx, no body required.
    Http,
    /// A hostile but well-formed admin query: refused (4xx, OpenAI shape) or answered with
    /// JSON (a search for a strange e-mail simply finds nobody); never a 5xx.
    Query,
}

/// One malformed request: its raw bytes, whether to half-close after sending (a truncated
/// body), and what an answer must look like.
struct Case {
    what: &'static str,
    bytes: Vec<u8>,
    truncated: bool,
    dialect: Dialect,
}

fn http(method: &str, path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nhost: moat\r\nconnection: close\r\n").into_bytes();
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn authorized(path: &str, body: &[u8]) -> Vec<u8> {
    let bearer = format!("Bearer {ADMIN_KEY}");
    http("POST", path, &[("authorization", bearer.as_bytes()), ("content-type", b"application/json")], body)
}

fn model_path(rng: &mut Rng) -> (&'static str, Dialect) {
    match rng.below(4) {
        0 => ("/v1/chat/completions", Dialect::OpenAi),
        1 => ("/v1/responses", Dialect::OpenAi),
        2 => ("/v1/messages", Dialect::Anthropic),
        _ => ("/anthropic/v1/messages/count_tokens", Dialect::Anthropic),
    }
}

/// One round of malformed requests, every kind several times over.
fn round(rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    for _ in 0..70 {
        // Random bytes where an HTTP request should be.
        let n = 1 + rng.below(3000);
        cases.push(Case { what: "random bytes", bytes: rng.bytes(n), truncated: true, dialect: Dialect::Http });

        // Random bytes, and invalid UTF-8, as a model request's body.
        let (path, dialect) = model_path(rng);
        let n = rng.below(5000);
        cases.push(Case { what: "random body", bytes: authorized(path, &rng.bytes(n)), truncated: false, dialect });
        let mut body = br#"{"model": "m", "messages": [{"role": "user", "content": ""#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
        body.extend_from_slice(br#""}]}"#);
        let (path, dialect) = model_path(rng);
        cases.push(Case { what: "invalid UTF-8", bytes: authorized(path, &body), truncated: false, dialect });

        // Deep nesting, in arrays and in objects.
        let depth = 129 + rng.below(20_000);
        let nested = if rng.below(2) == 0 {
            format!(r#"{{"model": "m", "messages": {}{}}}"#, "[".repeat(depth), "]".repeat(depth))
        } else {
            format!(r#"{{"model": "m", "metadata": {}1{}}}"#, r#"{"a":"#.repeat(depth), "}".repeat(depth))
        };
        let (path, dialect) = model_path(rng);
        cases.push(Case {
            what: "deep nesting",
            bytes: authorized(path, nested.as_bytes()),
            truncated: false,
            dialect,
        });

        // Huge numbers, duplicate keys, wrong types; the model never exists, so even a body
        // moat accepts is answered 4xx.
        let bodies = [
            r#"{"model": "nope", "max_tokens": 1e999999, "messages": []}"#.to_owned(),
            r#"{"model": "nope", "max_tokens": 340282366920938463463374607431768211457, "messages": []}"#.to_owned(),
            r#"{"model": "nope", "temperature": -1e400, "messages": []}"#.to_owned(),
            r#"{"model": "nope", "model": "also-nope", "messages": [], "messages": 5}"#.to_owned(),
            r#"{"model": 123, "messages": "hello"}"#.to_owned(),
            r#"{"model": "nope", "messages": [{"role": 7, "content": {"x": []}}]}"#.to_owned(),
            r#"[]"#.to_owned(),
            r#"null"#.to_owned(),
            r#""a string""#.to_owned(),
            format!(r#"{{"model": "{}", "messages": []}}"#, "x".repeat(100_000)),
            r#"{"model": "nope", "stream": "yes", "max_tokens": -5, "messages": [null]}"#.to_owned(),
            "{\"model\": \"nope\u{0}\", \"messages\": []}".to_owned(),
        ];
        let body = &bodies[rng.below(bodies.len())];
        let (path, dialect) = model_path(rng);
        cases.push(Case { what: "hostile JSON", bytes: authorized(path, body.as_bytes()), truncated: false, dialect });

        // A body shorter than its content-length, then the client stops sending.
        let (path, dialect) = model_path(rng);
        let mut bytes = http(
            "POST",
            path,
            &[("authorization", format!("Bearer {ADMIN_KEY}").as_bytes()), ("content-length", b"5000")],
            b"",
        );
        // The helper wrote `content-length: 0`: drop it; the one above stands.
        let head_end = bytes.len() - b"content-length: 0\r\n\r\n".len();
        bytes.truncate(head_end);
        bytes.extend_from_slice(b"\r\n{\"model\": \"m\", \"mess");
        cases.push(Case { what: "truncated body", bytes, truncated: true, dialect });

        // Broken and oversized headers.
        let header_cases: [(&str, Vec<u8>); 7] = [
            (
                "non-visible bytes in authorization",
                http("POST", "/v1/chat/completions", &[("authorization", b"Bearer \x01\x02\xff")], b"{}"),
            ),
            ("oversized header", http("GET", "/v1/models", &[("x-big", "a".repeat(100_000).as_bytes())], b"")),
            ("too many headers", {
                let names: Vec<String> = (0..300).map(|i| format!("x-h{i}")).collect();
                let headers: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"v"[..])).collect();
                http("GET", "/v1/models", &headers, b"")
            }),
            ("bad content-length", b"POST /v1/messages HTTP/1.1\r\nhost: moat\r\ncontent-length: -1\r\n\r\n".to_vec()),
            (
                "two content-lengths",
                b"POST /v1/messages HTTP/1.1\r\nhost: moat\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}"
                    .to_vec(),
            ),
            (
                "broken chunking",
                b"POST /v1/messages HTTP/1.1\r\nhost: moat\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
                    .to_vec(),
            ),
            (
                "header without a colon",
                b"GET /v1/models HTTP/1.1\r\nhost: moat\r\nthis is not a header\r\n\r\n".to_vec(),
            ),
        ];
        let (what, bytes) = &header_cases[rng.below(header_cases.len())];
        cases.push(Case { what, bytes: bytes.clone(), truncated: false, dialect: Dialect::Http });

        // Hostile paths and query strings on the admin API.
        let bearer = format!("Bearer {ADMIN_KEY}");
        let auth: [(&str, &[u8]); 1] = [("authorization", bearer.as_bytes())];
        let queries = [
            "/admin/v1/usage?limit=abc&from=yesterday".to_owned(),
            "/admin/v1/usage?key_id=%27%20OR%20%271%27%3D%271&limit=100000000000".to_owned(),
            "/admin/v1/keys/..%2F..%2Fetc%2Fpasswd".to_owned(),
            format!("/admin/v1/users?email={}", "%ff".repeat(2000)),
            "/admin/v1/reports/usage?by=team;DROP%20TABLE%20keys&from=2026-13-45".to_owned(),
            "/admin/v1/teams/%00/policy".to_owned(),
            format!("/v1/{}", "a/".repeat(3000)),
        ];
        let path = &queries[rng.below(queries.len())];
        cases.push(Case {
            what: "hostile query",
            bytes: http("GET", path, &auth, b""),
            truncated: false,
            dialect: Dialect::Query,
        });
        let n = rng.below(500);
        let body = rng.bytes(n);
        cases.push(Case {
            what: "random admin body",
            bytes: http("POST", "/admin/v1/keys", &auth, &body),
            truncated: false,
            dialect: Dialect::OpenAi,
        });
    }
    cases
}

/// Sends one case on its own connection; the status and body of the answer, or `None` when the
/// connection was closed without one.
async fn send(address: &str, case: &Case) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    // The server may answer and close before reading everything (a 431, a 413): fine.
    let _ = stream.write_all(&case.bytes).await;
    if case.truncated {
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "{}: no answer and no close within 30 s", case.what);
    if answer.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Some((status, body))
}

fn check(case: &Case, answer: Option<(u16, String)>) {
    let Some((status, body)) = answer else {
        // Closed without an answer: right for what is not an HTTP request, or a request
        // whose client stopped sending.
        assert!(case.truncated || case.dialect == Dialect::Http, "{}: closed without an answer", case.what);
        return;
    };
    let succeeded = case.dialect == Dialect::Query && status == 200;
    assert!((400..500).contains(&status) || succeeded, "{}: answered {status}: {body}", case.what);
    if body.is_empty() || case.dialect == Dialect::Http {
        return;
    }
    // A chunked body (hyper frames JSON bodies with a length; be lenient anyway).
    let json = body.find('{').and_then(|start| {
        serde_json::from_str::<serde_json::Value>(body[start..].trim_end_matches(['\r', '\n', '0'])).ok()
    });
    let json = json.unwrap_or_else(|| panic!("{}: a {status} body that is not JSON: {body}", case.what));
    match case.dialect {
        Dialect::OpenAi => {
            assert!(json["error"]["message"].is_string() && json["error"]["type"].is_string(), "{}: {json}", case.what)
        }
        Dialect::Query if succeeded => assert!(json["data"].is_array(), "{}: {json}", case.what),
        Dialect::Query => assert!(json["error"]["message"].is_string(), "{}: {json}", case.what),
        Dialect::Anthropic => assert!(
            json["type"] == "error" && json["error"]["type"].is_string() && json["error"]["message"].is_string(),
            "{}: {json}",
            case.what
        ),
        Dialect::Http => {}
    }
}

fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test]
async fn thousands_of_malformed_requests_get_4xx_or_a_clean_close_and_memory_returns_to_baseline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"
body_read_timeout = "2s"

[store]
url = "sqlite://moat.db"

[[deployments]]
name = "nowhere"
url = "http://127.0.0.1:9/v1"
upstream_model = "m"

[[models]]
name = "m"
deployments = ["nowhere"]
"#,
    )
    .expect("config");
    let (guard, url, log) = support::start_moat_logged(dir.path(), &config);
    let address = url.trim_start_matches("http://").to_owned();
    let pid = guard.0.id();
    let mut rng = Rng(0x6d6f_6174_5f68_6f73);

    let mut sent = 0;
    let mut baseline = 0;
    for round_number in 0..=ROUNDS {
        let cases = round(&mut rng);
        sent += cases.len();
        futures_util::stream::iter(cases)
            .for_each_concurrent(PARALLEL, |case| {
                let address = address.clone();
                async move {
                    let answer = send(&address, &case).await;
                    check(&case, answer);
                }
            })
            .await;
        if round_number == 0 {
            baseline = resident_bytes(pid);
        }
    }
    assert!(sent >= 2000, "{sent} requests");
    let after = resident_bytes(pid);
    eprintln!(
        "{sent} malformed requests; resident memory {baseline} bytes after the first round, {after} after the last"
    );
    assert!(
        after <= baseline + MEMORY_SLACK_BYTES,
        "memory grew from {baseline} to {after} bytes over {ROUNDS} rounds of malformed requests"
    );

    // Still serving, and nothing panicked.
    let health = reqwest::get(format!("{url}/healthz")).await.expect("healthz");
    assert_eq!(health.status(), 200);
    let lines: Vec<String> = log.try_iter().collect();
    assert!(
        !lines.iter().any(|l| l.contains("panicked")),
        "a panic: {:?}",
        lines.iter().find(|l| l.contains("panicked"))
    );
    assert!(!lines.iter().any(|l| l.contains(ADMIN_KEY)), "the key in a log line");
}
