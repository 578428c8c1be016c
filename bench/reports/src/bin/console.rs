//! `cargo run --release -p moat-bench-reports --bin console -- --users 100000 --records 10000000`:
//! times the web console's pages at scale. Loads `--users` people (8,000-odd per team), `--keys`
//! keys (300 with traffic; of the rest, a third owned by teams) and `--records` usage records (the same traffic as the report benchmark) into a fresh SQLite
//! file, or a fresh PostgreSQL database with `--postgres`, starts moat on it in this process
//! (on 127.0.0.1, an ephemeral port), signs in as an admin with traffic of their own, and
//! requests each page several times, printing the median. Bounded by its arguments; the
//! upstream is never called.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use clap::Parser;
use moat_bench_reports::{DAYS, END_MS, load};
use moat_core::rollup::HOUR_MS;
use moat_core::{ModelAccess, OrgRole, Role, TeamRole, UserKind};
use moat_store::{MemberRecord, NewKey, NewUser, Store, TeamRecord};

#[derive(Debug, Parser)]
struct Args {
    /// People in the organisation.
    #[arg(long, default_value_t = 100_000)]
    users: u64,
    /// Usage records.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Keys (at least the 300 the records use).
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// A PostgreSQL server URL whose user may create databases; empty uses SQLite.
    #[arg(long, default_value = "")]
    postgres: String,
    /// Times each page is requested.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

const ADMIN_KEY: &str = "moat_sk_bench_console_admin_key_0123456789";
const PASSWORD: &str = "correct horse battery staple";
/// The admin signing in: one of the users with traffic.
const ADMIN: &str = "usr_0042";

async fn seed(store: &Store, args: &Args) {
    let began = Instant::now();
    let at = END_MS - DAYS * 24 * HOUR_MS;
    for team in 0..12 {
        let record = TeamRecord {
            id: format!("team_{team:02}"),
            name: format!("Team {team:02}"),
            created_at_ms: at,
            external_id: None,
        };
        store.insert_team(&record).await.unwrap_or_else(|e| panic!("team: {e}"));
    }
    for n in 0..args.users {
        let id = format!("usr_{n:04}");
        let user = NewUser {
            email: format!("person-{n}@acme.test"),
            name: format!("Person {n}"),
            kind: UserKind::Person,
            org_role: if id == ADMIN { OrgRole::Admin } else { OrgRole::Member },
            created_at_ms: at,
            external_id: None,
            id,
        };
        let user = store.insert_user(&user).await.unwrap_or_else(|e| panic!("user: {e}"));
        let member = MemberRecord {
            team_id: format!("team_{:02}", n % 12),
            user_id: user.id,
            role: if n < 12 { TeamRole::TeamAdmin } else { TeamRole::Member },
            created_at_ms: at,
        };
        store.put_member(&member).await.unwrap_or_else(|e| panic!("member: {e}"));
    }
    for key in 0..args.keys.max(300) {
        // The 300 keys with traffic first, then the rest: every third a team's.
        let (id, team) = if key < 300 {
            (format!("key_{key:04}"), None)
        } else {
            (format!("key_x{key:07}"), (key % 3 == 0).then(|| format!("team_{:02}", (key / 3) % 12)))
        };
        let new = NewKey {
            name: format!("laptop-{key}"),
            owner: None,
            user_id: if team.is_none() { Some(format!("usr_{:04}", (key / 3) % args.users.max(1))) } else { None },
            team_id: team,
            role: Role::Client,
            secret_hash: moat_identity::secrets::hash_secret(&id).to_vec(),
            prefix: "moat_sk_xxxx".to_owned(),
            models: ModelAccess::All,
            created_at_ms: at,
            expires_at_ms: None,
            id,
        };
        store.insert_key(&new).await.unwrap_or_else(|e| panic!("key: {e}"));
    }
    println!(
        "seeded {} people in 12 teams and {} keys in {:.0} s",
        args.users,
        args.keys.max(300),
        began.elapsed().as_secs_f64()
    );
    let loaded = load(store, args.records, 1000, at).await;
    println!("loaded {} usage records in {:.0} s", args.records, loaded.as_secs_f64());
}

fn config() -> String {
    r#"
[sign_in]
secure_cookies = false

[[deployments]]
name = "vllm-c"
url = "http://127.0.0.1:9/v1"
upstream_model = "gemma"

[[models]]
name = "gemma-3-27b"
deployments = ["vllm-c"]
"#
    .to_owned()
}

/// A browser session: the cookie header to send.
async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let admin = |path: String| http.put(format!("{base}/admin/v1/{path}")).bearer_auth(ADMIN_KEY);
    let set = admin(format!("users/{ADMIN}/password")).json(&serde_json::json!({ "password": PASSWORD })).send();
    assert_eq!(set.await.map(|r| r.status().as_u16()).ok(), Some(204), "the admin's password is set");
    let form = http.get(format!("{base}/login")).send().await.unwrap_or_else(|e| panic!("login page: {e}"));
    let cookie = first_cookie(&form, "moat_csrf=");
    let html = form.text().await.unwrap_or_default();
    let csrf = html.split("name=\"csrf\" value=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default();
    let email = format!("person-{}@acme.test", ADMIN.trim_start_matches("usr_").trim_start_matches('0'));
    let signed = http
        .post(format!("{base}/login"))
        .header("cookie", cookie)
        .form(&[("email", email.as_str()), ("password", PASSWORD), ("csrf", csrf), ("next", "/ui")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("sign in: {e}"));
    assert_eq!(signed.status().as_u16(), 303, "signed in");
    first_cookie(&signed, "moat_session=")
}

fn first_cookie(response: &reqwest::Response, prefix: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix} cookie"))
}

async fn bench(url: &str, args: &Args) {
    let store = Store::open(url).await.unwrap_or_else(|e| panic!("open: {e}"));
    seed(&store, args).await;
    drop(store);
    let env = HashMap::from([("MOAT__STORE__URL".to_owned(), format!("\"{url}\""))]);
    let settings =
        moat_server::config::load_from_str(&config(), "bench config", &env).unwrap_or_else(|e| panic!("config: {e}"));
    let (gateway, _) =
        moat_server::Gateway::start(settings, Some(ADMIN_KEY)).await.unwrap_or_else(|e| panic!("start: {e}"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
    let base = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("addr: {e}")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    #[allow(clippy::disallowed_methods, reason = "the server stops when the benchmark ends")]
    let server = tokio::spawn(gateway.serve(listener, async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let session = sign_in(&http, &base).await;
    let day = END_MS - 10 * 24 * HOUR_MS;
    let day = utc_day(day);
    let middle = format!("usr_{}", args.users / 2);
    let pages: Vec<(&str, String)> = vec![
        ("dashboard, 30 days", "/ui?days=30".into()),
        ("dashboard, 90 days", "/ui?days=90".into()),
        ("usage explorer, newest 50", "/ui/usage".into()),
        ("usage, one key", "/ui/usage?key_id=key_0042".into()),
        ("usage, one model", "/ui/usage?model=gemma-3-27b".into()),
        ("usage, one deployment", "/ui/usage?deployment=vllm-c".into()),
        ("usage, status 502 (2 % of records)", "/ui/usage?status=502".into()),
        ("usage, status 429 (no record)", "/ui/usage?status=429".into()),
        ("usage, one day", format!("/ui/usage?from={day}&to={day}")),
        ("usage, one request by id", "/ui/usage?id=1795044600000-0009999999".into()),
        ("users, first 100", "/ui/users".into()),
        ("users, a page in the middle", format!("/ui/users?after={middle}")),
        ("users, one by e-mail", "/ui/users?email=person-77777%40acme.test".into()),
        ("team with 8,333 members", "/ui/teams/team_03".into()),
        ("teams", "/ui/teams".into()),
        ("budgets", "/ui/budgets".into()),
        ("audit log", "/ui/audit".into()),
        ("invitations", "/ui/invitations".into()),
        ("models", "/ui/models".into()),
        ("settings", "/ui/settings".into()),
        ("my usage", "/ui/me".into()),
        ("my keys", "/ui/keys".into()),
        ("all keys, newest 50", "/ui/all-keys".into()),
        ("all keys, a page deep in", format!("/ui/all-keys?before=key_x{:07}", args.keys / 2)),
        ("all keys, one team's", "/ui/all-keys?team_id=team_05".into()),
        ("all keys, one person's (by e-mail)", "/ui/all-keys?email=person-42%40acme.test".into()),
        ("CSV export, 10,000 records", "/ui/usage.csv".into()),
    ];
    println!("| page | median | bytes |");
    println!("|---|---:|---:|");
    for (label, path) in pages {
        let mut runs = Vec::new();
        let mut bytes = 0;
        for _ in 0..args.repeat {
            let began = Instant::now();
            let response = http.get(format!("{base}{path}")).header("cookie", &session).send().await;
            let response = response.unwrap_or_else(|e| panic!("{path}: {e}"));
            let status = response.status().as_u16();
            let body = response.bytes().await.unwrap_or_default();
            runs.push(began.elapsed());
            assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
            bytes = body.len();
        }
        runs.sort();
        let median: Duration = runs[runs.len() / 2];
        println!("| {label} | {:.1} ms | {bytes} |", median.as_secs_f64() * 1000.0);
    }
    let _ = stop.send(());
    let _ = server.await;
}

/// The UTC day (`YYYY-MM-DD`) of a Unix millisecond.
fn utc_day(ms: i64) -> String {
    let at = jiff::Timestamp::from_millisecond(ms).unwrap_or_else(|e| panic!("time: {e}"));
    at.to_zoned(jiff::tz::TimeZone::UTC).date().to_string()
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    if args.postgres.is_empty() {
        bench(&format!("sqlite://{}/bench.db", dir.path().display()), &args).await;
        return;
    }
    let database = format!("moat_bench_console_{}", std::process::id());
    let created = std::process::Command::new("psql")
        .args([&args.postgres, "-q", "-c", &format!("CREATE DATABASE {database}")])
        .status();
    assert!(created.is_ok_and(|s| s.success()), "cannot create a PostgreSQL database through psql");
    let url = match args.postgres.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => args.postgres.clone(),
    };
    bench(&url, &args).await;
    let _ = std::process::Command::new("psql")
        .args([&args.postgres, "-q", "-c", &format!("DROP DATABASE {database}")])
        .status();
}
