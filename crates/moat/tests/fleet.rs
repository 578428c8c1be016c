//! Three `moat serve` processes on loopback sharing one PostgreSQL schema and one Redis, as a
//! fleet behind a load balancer runs: what one replica changes the others see within a
//! second, and no usage record of a completed request is lost when a replica is killed, when
//! the database goes away for ten seconds, or when the fleet is restarted one by one.
//!
//! The test client plays the load balancer: it checks each replica's `/readyz` every 100 ms,
//! spreads requests over the replicas in rotation, and moves a request to the next replica
//! when its connection is refused (nothing was sent), the one retry a load balancer may always
//! make. Every completed request's id (`x-request-id`) must end up in the database.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use moat_testkit::{FakeUpstream, TcpGate};
use serde_json::{Value, json};
use support::{ADMIN_KEY, Guard, start_moat};
use tokio::sync::Mutex;

const REPLICAS: usize = 3;

struct Fleet {
    /// Each replica's folder (journal, spool) and config; kept across restarts.
    dirs: Vec<tempfile::TempDir>,
    configs: Vec<PathBuf>,
    urls: Vec<String>,
    processes: Mutex<Vec<Option<Guard>>>,
    /// Between every replica and PostgreSQL.
    database: TcpGate,
    store_url: String,
    upstream: FakeUpstream,
    /// When a replica was last killed: a request sent after it on a pooled connection that
    /// the dead process had open never reached anything, and a client retries it.
    killed_at: std::sync::Mutex<Option<Instant>>,
}

impl Fleet {
    async fn start() -> Arc<Fleet> {
        Fleet::start_with("").await
    }

    /// A fleet whose deployment has `deployment_extra` (TOML lines) in its table.
    async fn start_with(deployment_extra: &str) -> Arc<Fleet> {
        let upstream = FakeUpstream::start().await;
        let direct = moat_testkit::fresh_postgres_schema().await;
        let server: std::net::SocketAddr = authority(&direct).parse().expect("postgres address");
        let database = TcpGate::start(server).await;
        let store_url = direct.replacen(&server.to_string(), &database.addr().to_string(), 1);
        // Unique per fleet: fleets in one test process that shared a channel would see each
        // other's key changes (and drop their key caches while the database is away).
        static FLEETS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let channel = format!("moat-fleet-test:{}:{}", std::process::id(), FLEETS.fetch_add(1, Ordering::SeqCst));
        let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
        let (mut dirs, mut configs, mut urls) = (Vec::new(), Vec::new(), Vec::new());
        for port in &ports {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = dir.path().join("moat.toml");
            std::fs::write(
                &config,
                format!(
                    r#"
[server]
listen = "127.0.0.1:{port}"
shutdown_grace = "5s"
drain_delay = "1s"

[store]
url = "{store_url}"

[redis]
url = "redis://127.0.0.1:6379/0"
channel = "{channel}"
key_prefix = "{channel}"

[admission]
refresh_interval = "200ms"

[[deployments]]
name = "fake"
url = "{upstream}"
upstream_model = "x"
timeout = "5s"
{deployment_extra}

[[models]]
name = "m"
deployments = ["fake"]
"#,
                    upstream = upstream.base_url(),
                ),
            )
            .expect("config");
            urls.push(format!("http://127.0.0.1:{port}"));
            dirs.push(dir);
            configs.push(config);
        }
        let fleet = Arc::new(Fleet {
            dirs,
            configs,
            urls,
            processes: Mutex::new((0..REPLICAS).map(|_| None).collect()),
            database,
            store_url: direct,
            upstream,
            killed_at: std::sync::Mutex::new(None),
        });
        for i in 0..REPLICAS {
            fleet.start_replica(i).await;
        }
        fleet
    }

    async fn start_replica(&self, i: usize) {
        let (dir, config) = (self.dirs[i].path().to_owned(), self.configs[i].clone());
        let (guard, url) = tokio::task::spawn_blocking(move || start_moat(&dir, &config)).await.expect("start");
        assert_eq!(url, self.urls[i]);
        self.processes.lock().await[i] = Some(guard);
    }

    /// SIGKILL: no drain, no flush, nothing.
    async fn kill(&self, i: usize) {
        let mut guard = self.processes.lock().await[i].take().expect("running");
        guard.0.kill().expect("SIGKILL");
        *self.killed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        guard.0.wait().expect("reaped");
    }

    /// Whether a request sent at `sent` went out after a replica was killed.
    fn sent_after_a_kill(&self, sent: Instant) -> bool {
        self.killed_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some_and(|k| sent >= k)
    }

    /// SIGTERM, and waits for the replica to drain and exit.
    async fn terminate(&self, i: usize) {
        let mut guard = self.processes.lock().await[i].take().expect("running");
        let pid = guard.0.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(sent.success());
        let status = tokio::task::spawn_blocking(move || guard.0.wait()).await.expect("join").expect("wait");
        assert!(status.success(), "a drained replica exits cleanly: {status}");
    }

    /// A client key made through replica `i`.
    async fn create_key(&self, i: usize) -> (String, String) {
        let created: Value = reqwest::Client::new()
            .post(format!("{}/admin/v1/keys", self.urls[i]))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({ "name": "fleet" }))
            .send()
            .await
            .expect("create key")
            .json()
            .await
            .expect("json");
        (created["id"].as_str().expect("id").to_owned(), created["key"].as_str().expect("secret").to_owned())
    }

    /// Waits until every id in `ids` is a stored usage record.
    async fn wait_for_records(&self, ids: &HashSet<String>, within: Duration) {
        let pool = sqlx::PgPool::connect(&self.store_url).await.expect("connect");
        let deadline = Instant::now() + within;
        loop {
            let stored: Vec<String> =
                sqlx::query_scalar("SELECT id FROM usage_records").fetch_all(&pool).await.expect("ids");
            let stored: HashSet<String> = stored.into_iter().collect();
            let missing: Vec<&String> = ids.difference(&stored).collect();
            if missing.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {} completed requests have no usage record, e.g. {:?}",
                missing.len(),
                ids.len(),
                missing.iter().take(3).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// `host:port` of a URL.
fn authority(url: &str) -> &str {
    let rest = &url[url.find("://").expect("scheme") + 3..];
    let rest = &rest[rest.find('@').map_or(0, |at| at + 1)..];
    &rest[..rest.find('/').unwrap_or(rest.len())]
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// What a stretch of load did.
#[derive(Debug, Default)]
struct Outcome {
    /// Ids of requests answered 200 in full.
    completed: HashSet<String>,
    /// Requests that failed in a way no load balancer could have hidden.
    failed: Vec<String>,
    /// Requests moved to another replica because theirs refused the connection.
    moved: usize,
}

impl Outcome {
    fn summary(&self) -> String {
        format!("{} completed, {} moved, failed: {:?}", self.completed.len(), self.moved, self.failed)
    }
}

/// Sends chat requests from `clients` concurrent loops until `stop`, each request to the next
/// replica in turn (and on to the next while connections are refused).
async fn load(fleet: Arc<Fleet>, key: String, clients: usize, stop: Arc<AtomicBool>) -> Outcome {
    // A fresh connection per request: a replica that stopped accepting refuses it instead of
    // racing a reused connection's close.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let ready: Arc<Vec<AtomicBool>> = Arc::new((0..REPLICAS).map(|_| AtomicBool::new(true)).collect());
    let checks = {
        let (fleet, stop, http, ready) = (fleet.clone(), stop.clone(), http.clone(), ready.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                for (i, url) in fleet.urls.iter().enumerate() {
                    let answer = http.get(format!("{url}/readyz")).timeout(Duration::from_millis(500)).send().await;
                    ready[i].store(answer.is_ok_and(|a| a.status() == 200), Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let loops = (0..clients).map(|c| {
        let (fleet, key, stop, http, outcome, ready) =
            (fleet.clone(), key.clone(), stop.clone(), http.clone(), outcome.clone(), ready.clone());
        async move {
            let mut next = c;
            while !stop.load(Ordering::Relaxed) {
                let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
                let mut tries = 0;
                loop {
                    // The next replica in rotation (all out of rotation: try the next anyway).
                    let pick = (next..next + REPLICAS).find(|i| ready[i % REPLICAS].load(Ordering::Relaxed));
                    next = pick.unwrap_or(next);
                    let url = format!("{}/v1/chat/completions", fleet.urls[next % REPLICAS]);
                    next += 1;
                    tries += 1;
                    let sent = Instant::now();
                    match http.post(&url).bearer_auth(&key).json(&body).send().await {
                        // Refused, or sent on a stale pooled connection to a replica already
                        // dead: it never reached a replica, so it goes to the next one. What
                        // was in flight when a replica died still counts as failed.
                        Err(error) if (error.is_connect() || fleet.sent_after_a_kill(sent)) && tries < 20 => {
                            outcome.lock().await.moved += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(error) => {
                            outcome.lock().await.failed.push(format!("{url}: {error}"));
                            break;
                        }
                        Ok(response) => {
                            let status = response.status();
                            let id =
                                response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
                            let text = response.text().await;
                            let mut outcome = outcome.lock().await;
                            match (status.as_u16(), text, id) {
                                (200, Ok(_), Some(id)) => {
                                    outcome.completed.insert(id);
                                }
                                (status, text, _) => outcome.failed.push(format!("{url}: {status} {text:?}")),
                            }
                            break;
                        }
                    }
                }
            }
        }
    });
    tokio::join!(futures_util::future::join_all(loops), checks);
    Arc::try_unwrap(outcome).expect("loops ended").into_inner()
}

/// Runs `load` in the background; `finish` stops it and returns what it did.
struct Load {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Outcome>,
}

impl Load {
    fn start(fleet: &Arc<Fleet>, key: &str, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        #[allow(clippy::disallowed_methods, reason = "awaited by finish")]
        let task = tokio::spawn(load(fleet.clone(), key.to_owned(), clients, stop.clone()));
        Load { stop, task }
    }

    async fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("load task")
    }
}

async fn refused_within_a_second(url: &str, key: &str) -> Duration {
    let http = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
    let started = Instant::now();
    loop {
        let status = http.post(format!("{url}/v1/chat/completions")).bearer_auth(key).json(&body).send().await;
        let status = status.expect("answer").status();
        if status == 401 {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(1), "{url} still answers {status} after a second");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_through_one_replica_is_refused_by_the_others_within_a_second() {
    let fleet = Fleet::start().await;
    let (id, key) = fleet.create_key(0).await;
    let outcome = {
        let load = Load::start(&fleet, &key, 3);
        tokio::time::sleep(Duration::from_millis(300)).await;
        load.finish().await
    };
    assert!(
        outcome.failed.is_empty() && outcome.completed.len() >= 3,
        "every replica knows the key: {}",
        outcome.summary()
    );
    let revoked = reqwest::Client::new()
        .delete(format!("{}/admin/v1/keys/{id}", fleet.urls[0]))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    for url in &fleet.urls[1..] {
        refused_within_a_second(url, &key).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_under_load_loses_no_completed_requests_usage() {
    let fleet = Fleet::start().await;
    let (_, key) = fleet.create_key(0).await;
    let load = Load::start(&fleet, &key, 4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // With the database partitioned away, writes hang: the replica's last records cannot have
    // been stored (nor spooled) when it dies, and only its journal can bring them back.
    fleet.database.stall();
    tokio::time::sleep(Duration::from_millis(700)).await;
    fleet.kill(1).await;
    fleet.database.open();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = load.finish().await;
    // Only what the killed replica was serving at that instant can fail.
    let killed = &fleet.urls[1];
    assert!(
        outcome.failed.len() <= 4 && outcome.failed.iter().all(|f| f.starts_with(killed.as_str())),
        "{:?}",
        outcome.failed
    );
    assert!(outcome.completed.len() > 20, "too little load to mean anything: {}", outcome.summary());
    // Back on the same folder, the replica writes what its journal holds.
    fleet.start_replica(1).await;
    fleet.wait_for_records(&outcome.completed, Duration::from_secs(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_gone_for_ten_seconds_under_load_loses_no_usage_record() {
    let fleet = Fleet::start().await;
    let (_, key) = fleet.create_key(0).await;
    let load = Load::start(&fleet, &key, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.database.shut();
    tokio::time::sleep(Duration::from_secs(10)).await;
    fleet.database.open();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let outcome = load.finish().await;
    // Keys are cached, so requests are served all along; their records wait in the spool.
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert!(outcome.completed.len() > 50, "too little load to mean anything: {}", outcome.summary());
    fleet.wait_for_records(&outcome.completed, Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let fleet = Fleet::start().await;
    let (_, key) = fleet.create_key(0).await;
    let load = Load::start(&fleet, &key, 3);
    for i in 0..REPLICAS {
        tokio::time::sleep(Duration::from_millis(300)).await;
        fleet.terminate(i).await;
        fleet.start_replica(i).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = load.finish().await;
    // /readyz failed for `drain_delay` before each replica stopped accepting, so the balancer
    // had taken it out of rotation: nothing failed, nothing even needed moving.
    assert!(outcome.failed.is_empty(), "{:?}", outcome.failed);
    assert!(outcome.completed.len() > 50, "too little load to mean anything: {}", outcome.summary());
    fleet.wait_for_records(&outcome.completed, Duration::from_secs(20)).await;
}

/// The same guarantee as the in-process test with three replicas, with three real processes:
/// 200 concurrent streams spread over them against one key's 1000 µ$ budget never settle more
/// than the budget, because every replica reserves in the same Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_processes_sharing_redis_never_overspend_a_small_budget() {
    let fleet = Fleet::start_with("price = { input = 1.0, output = 2.0 }").await;
    let (key_id, key) = fleet.create_key(0).await;
    let http = reqwest::Client::new();
    let budget: Value = http
        .post(format!("{}/admin/v1/budgets", fleet.urls[0]))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({ "scope": "key", "scope_id": key_id, "amount_usd": "0.001", "period": "day" }))
        .send()
        .await
        .expect("create budget")
        .json()
        .await
        .expect("json");
    let budget_id = budget["id"].as_str().unwrap_or_else(|| panic!("{budget}")).to_owned();
    // The other replicas re-read budgets every 200 ms.
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Each stream: 5 input + 8 output tokens = 21 µ$, against a 5 + 2 × 10 = 25 µ$ estimate.
    let usage = moat_testkit::FakeUsage { prompt: 5, completion: 8, cached: 0 };
    for _ in 0..200 {
        fleet.upstream.push(
            moat_testkit::Reply::chat_stream(&["one ", "two ", "three"], Some(usage))
                .with_gap(Duration::from_millis(40)),
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200 {
        let (http, url, key) = (http.clone(), fleet.urls[n % REPLICAS].clone(), key.clone());
        tasks.spawn(async move {
            let body = json!({ "model": "m", "max_tokens": 10, "stream": true,
                               "messages": [{ "role": "user", "content": "hello there friend" }] });
            let response = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            (status, response.text().await.expect("body"))
        });
    }
    let (mut admitted, mut refused) = (0_u64, 0_u64);
    while let Some(result) = tasks.join_next().await {
        match result.expect("task") {
            (200, body) if body.contains("data: [DONE]") => admitted += 1,
            (402, _) => refused += 1,
            (status, body) => panic!("unexpected {status}: {body}"),
        }
    }
    // At most 40 reservations of 25 µ$ fit at once; streams that settle (at 21 µ$) before the
    // last requests arrive free 4 µ$ each, so a slow start can admit up to 1000 / 21 = 47.
    assert!(admitted >= 1 && refused >= 1 && admitted <= 47, "admitted {admitted}, refused {refused}");
    // Read through another replica than the one the budget was made on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let spent = loop {
        let read: Value = http
            .get(format!("{}/admin/v1/budgets/{budget_id}", fleet.urls[2]))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("read budget")
            .json()
            .await
            .expect("json");
        let spent = read["current"]["spent_micro_usd"].as_u64().unwrap_or(0);
        if spent == admitted * 21 || Instant::now() > deadline {
            break spent;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(spent, admitted * 21, "every admitted stream settled once");
    assert!(spent <= 1000, "settled spend {spent} passed the 1000 µ$ budget");
}
