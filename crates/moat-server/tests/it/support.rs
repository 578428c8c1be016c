//! The in-process harness: a gateway on an ephemeral port with its own SQLite file.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use moat_server::Gateway;
use moat_server::config::load_from_str;
use moat_testkit::FakeUpstream;
use serde_json::{Value, json};
use tokio::sync::{oneshot, watch};

pub const ADMIN_KEY: &str = "test-admin-key-0123456789";
/// The credential moat sends to fake upstreams; tests check it never leaks.
pub const UPSTREAM_SECRET: &str = "upstream-secret-value-42";
/// The token tests send to trace collectors as `[telemetry] headers`; it must never reach a span.
pub const OTLP_TOKEN: &str = "otlp-token-for-tests-0123456789";
/// The master key tests configure as `[encryption] key = { env = "MOAT_TEST_ENCRYPTION_KEY" }`
/// (32 bytes, base64); it must never appear in logs, metrics or answers.
pub const ENCRYPTION_KEY: &str = "c2VjcmV0LW1hc3Rlci1rZXktZm9yLXRlc3RzLTAxMjM=";
/// The SCIM token tests configure as `[scim] token = { env = "MOAT_TEST_SCIM_TOKEN" }`.
pub const SCIM_TOKEN: &str = "scim-token-for-tests-0123456789";

/// Everything logged by any gateway in this test binary.
pub fn captured_logs() -> String {
    let buffer = log_buffer();
    let bytes = buffer.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn log_buffer() -> Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = Arc::new(Mutex::new(Vec::new()));
            let writer = buffer.clone();
            let _ = tracing_subscriber::fmt()
                .with_env_filter("debug,sqlx=warn,hyper=warn,reqwest=warn,h2=warn")
                .with_ansi(false)
                .with_writer(move || SharedWriter(writer.clone()))
                .try_init();
            buffer
        })
        .clone()
}

struct SharedWriter(Arc<Mutex<Vec<u8>>>);

/// The file every log line of the suite is also appended to, when `MOAT_TEST_LOG_CAPTURE`
/// names one: `scripts/test` greps it afterwards for keys, credentials and scanned secrets
/// (`scripts/check-log-capture`).
fn capture_file() -> Option<&'static Mutex<std::fs::File>> {
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    FILE.get_or_init(|| {
        let path = std::env::var_os("MOAT_TEST_LOG_CAPTURE")?;
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path);
        Some(Mutex::new(file.unwrap_or_else(|e| panic!("MOAT_TEST_LOG_CAPTURE: {e}"))))
    })
    .as_ref()
}

impl Write for SharedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        if let Some(file) = capture_file() {
            file.lock().unwrap_or_else(std::sync::PoisonError::into_inner).write_all(buf)?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running gateway.
pub struct TestGateway {
    pub url: String,
    pub http: reqwest::Client,
    pub store_url: String,
    persisted: watch::Receiver<u64>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    reloader: moat_server::Reloader,
    env: HashMap<String, String>,
    _dir: tempfile::TempDir,
}

/// The config used by most tests: model `m` on the fake upstream, with a tokenizer and a key.
/// Retries are off, so each test sees exactly the exchange it scripted; the routing tests
/// turn them on.
pub fn default_config(upstream: &FakeUpstream) -> String {
    format!(
        r#"
        [server]
        shutdown_grace = "5s"

        [routing]
        max_attempts = 1

        [[deployments]]
        name = "fake"
        url = "{url}"
        upstream_model = "upstream-m"
        api_key = {{ env = "FAKE_UPSTREAM_KEY" }}
        headers = {{ "x-tenant" = "acme" }}
        tokenize_url = "{tokenize}"
        timeout = "5s"

        [[models]]
        name = "m"
        deployments = ["fake"]
        "#,
        url = upstream.base_url(),
        tokenize = upstream.tokenize_url(),
    )
}

impl TestGateway {
    pub async fn start(upstream: &FakeUpstream) -> Self {
        Self::start_with(&default_config(upstream)).await
    }

    pub async fn start_with(config: &str) -> Self {
        Self::start_on(config, None).await
    }

    /// Another replica of `self`: the same store, the same `config`.
    pub async fn replica(&self, config: &str) -> Self {
        Self::start_on(config, Some(self.store_url.clone())).await
    }

    async fn start_on(config: &str, shared_store: Option<String>) -> Self {
        log_buffer();
        let dir = tempfile::tempdir().expect("tempdir");
        let store_url = match shared_store {
            Some(url) => url,
            None if test_store_is_postgres() => moat_testkit::fresh_postgres_schema().await,
            None => format!("sqlite://{}/moat.db", dir.path().display()),
        };
        let env = HashMap::from([
            ("FAKE_UPSTREAM_KEY".to_string(), UPSTREAM_SECRET.to_string()),
            ("MOAT_TEST_SCIM_TOKEN".to_string(), SCIM_TOKEN.to_string()),
            ("MOAT_TEST_OTLP_TOKEN".to_string(), OTLP_TOKEN.to_string()),
            ("MOAT_TEST_ENCRYPTION_KEY".to_string(), ENCRYPTION_KEY.to_string()),
            ("MOAT__STORE__URL".to_string(), format!("\"{store_url}\"")),
            ("MOAT__USAGE__SPOOL".to_string(), format!("\"{}/usage-spool.jsonl\"", dir.path().display())),
            ("MOAT__USAGE__JOURNAL".to_string(), format!("\"{}/usage-journal\"", dir.path().display())),
        ]);
        let settings = load_from_str(config, "test config", &env).unwrap_or_else(|e| panic!("{e}"));
        let (gateway, bootstrap) = Gateway::start(settings, Some(ADMIN_KEY)).await.expect("gateway starts");
        let reloader = gateway.reloader();
        assert!(bootstrap.is_none(), "an admin key from the environment means no bootstrap key");
        let persisted = gateway.usage_persisted();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel::<()>();
        #[allow(clippy::disallowed_methods, reason = "the handle is kept and awaited by begin_shutdown")]
        let server = tokio::spawn(gateway.serve(listener, async move {
            let _ = rx.await;
        }));
        TestGateway {
            url,
            http: reqwest::Client::new(),
            store_url,
            persisted,
            shutdown: Some(tx),
            server: Some(server),
            reloader,
            env,
            _dir: dir,
        }
    }

    /// Applies a new configuration to the running gateway, or says why it was refused (the
    /// running configuration then stays), as a config-file reload does.
    pub fn try_reload(&self, config: &str) -> Result<(), String> {
        let settings = load_from_str(config, "reloaded test config", &self.env).map_err(|e| e.to_string())?;
        self.reloader.apply(&settings).map_err(|e| e.to_string())
    }

    /// Applies a new configuration to the running gateway, as a config-file reload does.
    pub fn reload(&self, config: &str) {
        let settings = load_from_str(config, "reloaded test config", &self.env).unwrap_or_else(|e| panic!("{e}"));
        self.reloader.apply(&settings).expect("reload applies");
    }

    /// Begins shutdown and returns the server task, to await when the test wants.
    pub fn begin_shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.server.take().expect("server still running")
    }

    /// Creates a key through the admin API; returns (id, secret).
    pub async fn create_key(&self, body: Value) -> (String, String) {
        let response = self.admin_post("keys", body).await;
        let status = response.status();
        let key: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "{key}\n{}", captured_logs());
        (key["id"].as_str().expect("id").to_owned(), key["key"].as_str().expect("key").to_owned())
    }

    /// A client key for every model.
    pub async fn client_key(&self) -> String {
        self.create_key(json!({ "name": "tester" })).await.1
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/admin/v1/{path}", self.url))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .expect("send")
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        self.http.get(format!("{}/admin/v1/{path}", self.url)).bearer_auth(ADMIN_KEY).send().await.expect("send")
    }

    /// POSTs a JSON body to a model endpoint with a bearer key.
    /// `PUT /admin/v1/teams/{team_id}/policy` as the break-glass admin.
    pub async fn put_team_policy(&self, team_id: &str, policy: &Value) -> reqwest::Response {
        let url = format!("{}/admin/v1/teams/{team_id}/policy", self.url);
        self.http.put(url).bearer_auth(ADMIN_KEY).json(policy).send().await.expect("send")
    }

    pub async fn post(&self, path: &str, key: &str, body: &Value) -> reqwest::Response {
        self.http.post(format!("{}{path}", self.url)).bearer_auth(key).json(body).send().await.expect("send")
    }

    /// Waits until at least `n` usage records are stored, then returns the newest `n`.
    pub async fn usage(&self, n: u64) -> Vec<Value> {
        let mut persisted = self.persisted.clone();
        tokio::time::timeout(Duration::from_secs(10), persisted.wait_for(|count| *count >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} usage records were not stored in time"))
            .expect("writer alive");
        let page: Value = self.admin_get(&format!("usage?limit={n}")).await.json().await.expect("json");
        page["data"].as_array().expect("data").clone()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Asserts an OpenAI-shaped error with `code` and the table's status.
pub async fn assert_openai_error(response: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status for {code}");
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/json"));
    let body: Value = response.json().await.expect("error body is JSON");
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    assert!(error["type"].as_str().is_some(), "{body}");
    assert!(error.get("param").is_some(), "param is present (possibly null): {body}");
    body
}

pub fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hello there friend" }] })
}

/// A base URL where nothing listens: the port was bound and released.
pub async fn dead_upstream_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    format!("http://{}/v1", listener.local_addr().expect("addr"))
}

impl TestGateway {
    /// The model ids `GET /v1/models` lists for `key`.
    pub async fn model_ids(&self, key: &str) -> Vec<String> {
        let models: Value = self
            .http
            .get(format!("{}/v1/models", self.url))
            .bearer_auth(key)
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("json");
        models["data"].as_array().expect("list").iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect()
    }

    /// Waits for the server task begun by `begin_shutdown`, then reads every stored usage record
    /// straight from the store: what survived shutdown.
    pub async fn records_after_shutdown(
        &self,
        server: tokio::task::JoinHandle<std::io::Result<()>>,
    ) -> Vec<moat_core::UsageRecord> {
        tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("server stops")
            .expect("task")
            .expect("serve ok");
        let store = moat_store::Store::open(&self.store_url).await.expect("open");
        store.query_usage(&moat_store::UsageFilter { limit: 100, ..Default::default() }).await.expect("query")
    }
}

/// Whether this run of the suite is on PostgreSQL (`MOAT_TEST_STORE=postgres`, as the test
/// script's second pass sets) rather than the default SQLite.
pub fn test_store_is_postgres() -> bool {
    std::env::var("MOAT_TEST_STORE").is_ok_and(|v| v == "postgres")
}

/// Now as RFC 3339 (UTC), e.g. to name the current month.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    rfc3339_of_ms(i64::try_from(now).expect("ms"))
}

/// Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (whole seconds, UTC).
pub fn rfc3339_of_ms(ms: i64) -> String {
    let (days, secs) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000) / 1000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}
