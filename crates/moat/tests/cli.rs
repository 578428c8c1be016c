//! The `moat` binary as a person uses it: `config check`, `serve` with a bootstrap admin key,
//! and `keys` / `usage` against the running server.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const MOAT: &str = env!("CARGO_BIN_EXE_moat");

fn moat(args: &[&str]) -> std::process::Output {
    Command::new(MOAT).args(args).env_remove("MOAT_ADMIN_KEY").env_remove("MOAT_CONFIG").output().expect("run moat")
}

#[test]
fn config_check_accepts_good_files_and_lists_every_problem_in_bad_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[deployments]]\nname = \"d\"\nurl = \"http://127.0.0.1:8080/v1\"\nupstream_model = \"g\"\n[[models]]\nname = \"m\"\ndeployments = [\"d\"]\n",
    )
    .expect("write");
    let out = moat(&["config", "check", good.to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 deployment, 1 model)"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[server]\nlisten = \"nowhere\"\n[[models]]\nname = \"m\"\ndeployments = [\"missing\"]\n")
        .expect("write");
    let out = moat(&["config", "check", bad.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has 2 problems"), "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains("models[0].deployments[0]: no deployment is named `missing`"), "{stderr}");
}

struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(dir: &std::path::Path, admin_key: Option<&str>) -> Self {
        Self::start_with(dir, admin_key, &[])
    }

    fn start_with(dir: &std::path::Path, admin_key: Option<&str>, args: &[&str]) -> Self {
        let mut command = Command::new(MOAT);
        command
            .arg("serve")
            .args(args)
            .current_dir(dir)
            .env_remove("MOAT_CONFIG")
            .env("MOAT__SERVER__LISTEN", "127.0.0.1:0")
            .env("MOAT__LOG__FORMAT", "json")
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .stdout(Stdio::null());
        match admin_key {
            Some(key) => command.env("MOAT_ADMIN_KEY", key),
            None => command.env_remove("MOAT_ADMIN_KEY"),
        };
        let mut child = command.spawn().expect("spawn moat serve");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Server { child, lines }
    }

    /// Lines up to and including the one containing `needle`.
    fn wait_for(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no `{needle}` in {seen:#?}"));
            let found = line.contains(needle);
            seen.push(line);
            if found {
                return seen;
            }
        }
    }

    fn url(lines: &[String]) -> String {
        let line = lines.last().expect("listening line");
        let json: serde_json::Value = serde_json::from_str(line).expect("json log line");
        format!("http://{}", json["listen"].as_str().expect("listen field"))
    }

    fn stop(mut self) -> Vec<String> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "moat exits cleanly on SIGTERM: {status}");
        self.lines.try_iter().collect()
    }
}

#[test]
fn serve_bootstraps_an_admin_key_once_and_the_cli_manages_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path(), None);
    let lines = server.wait_for("moat is listening");
    let banner = lines.iter().find(|l| l.trim_start().starts_with("moat_sk_")).expect("bootstrap key printed");
    let admin_key = banner.trim().to_owned();
    let url = Server::url(&lines);
    assert!(dir.path().join("moat-data/moat.db").exists(), "the embedded store lives in ./moat-data");

    let cli = |args: &[&str]| {
        Command::new(MOAT)
            .args(args)
            .env("MOAT_SERVER", &url)
            .env("MOAT_ADMIN_KEY", &admin_key)
            .output()
            .expect("run moat")
    };
    let out = cli(&["keys", "create", "--name", "laptop", "--owner", "ana", "--expires-in", "30d"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let id = stdout.lines().find_map(|l| l.strip_prefix("id:")).expect("id line").trim().to_owned();
    assert!(stdout.contains("key:     moat_sk_"), "{stdout}");

    let out = cli(&["keys", "list"]);
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(listing.contains(&id) && listing.contains("laptop") && listing.contains("active"), "{listing}");

    let out = cli(&["keys", "revoke", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["keys", "list", "--all"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));

    let out = cli(&["usage", "--json"]);
    assert!(out.status.success());
    let usage: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(usage["data"].is_array());

    let out = Command::new(MOAT)
        .args(["keys", "list"])
        .env("MOAT_SERVER", &url)
        .env("MOAT_ADMIN_KEY", "wrong")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid_api_key"));

    let rest = server.stop();
    assert!(rest.iter().any(|l| l.contains("shutdown complete")), "{rest:#?}");
    let all_logs = lines.join("\n") + &rest.join("\n");
    assert_eq!(
        all_logs.matches(&admin_key).count(),
        1,
        "the bootstrap key appears once, in the banner, never in a log line"
    );

    // A second start finds the admin key in the store and prints none.
    let server = Server::start(dir.path(), None);
    let lines = server.wait_for("moat is listening");
    assert!(!lines.iter().any(|l| l.contains("moat_sk_")), "{lines:#?}");
    server.stop();
}

fn deployment_config(names: &[&str]) -> String {
    let mut text = String::new();
    for name in names {
        text.push_str(&format!(
            "[[deployments]]\nname = \"{name}\"\nurl = \"http://127.0.0.1:9/v1\"\nupstream_model = \"x\"\n\n"
        ));
    }
    let list: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    text + &format!("[[models]]\nname = \"m\"\ndeployments = [{}]\n", list.join(", "))
}

fn deployment_names(url: &str, admin_key: &str) -> Vec<String> {
    let out = Command::new(MOAT)
        .args(["deployments", "--json", "--server", url])
        .env("MOAT_ADMIN_KEY", admin_key)
        .output()
        .expect("run moat deployments");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    page["data"].as_array().expect("data").iter().map(|d| d["name"].as_str().expect("name").to_owned()).collect()
}

#[test]
fn the_config_file_reloads_on_change_and_on_sighup_and_a_bad_one_is_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, deployment_config(&["one"])).expect("write config");
    let admin_key = "moat-cli-reload-admin-key-0123456789";
    let server = Server::start_with(dir.path(), Some(admin_key), &["--config", config.to_str().expect("utf-8")]);
    let url = Server::url(&server.wait_for("moat is listening"));
    assert_eq!(deployment_names(&url, admin_key), ["one"]);

    std::fs::write(&config, deployment_config(&["one", "two"])).expect("write config");
    server.wait_for("configuration reloaded");
    assert_eq!(deployment_names(&url, admin_key), ["one", "two"]);

    std::fs::write(&config, "[[models]]\nname = \"m\"\ndeployments = [\"gone\"]\n[routing]\nmax_attempts = 0\n")
        .expect("write config");
    let rejected = server.wait_for("config reload rejected");
    let line = rejected.last().expect("line");
    assert!(
        line.contains("routing.max_attempts") && line.contains("models[0].deployments[0]"),
        "every problem: {line}"
    );
    assert_eq!(deployment_names(&url, admin_key), ["one", "two"], "the previous configuration keeps serving");

    std::fs::write(&config, deployment_config(&["three"])).expect("write config");
    server.wait_for("configuration reloaded");
    let _ = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status();
    let lines = server.wait_for("configuration reloaded");
    assert!(lines.last().is_some_and(|l| l.contains("SIGHUP")), "{lines:#?}");
    assert_eq!(deployment_names(&url, admin_key), ["three"]);
    server.stop();
}

#[test]
fn moat_audit_verify_names_a_tampered_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = "moat-cli-audit-admin-key-0123456789";
    let server = Server::start(dir.path(), Some(admin_key));
    let url = Server::url(&server.wait_for("moat is listening"));
    let cli = |args: &[&str]| {
        Command::new(MOAT)
            .args(args)
            .env("MOAT_SERVER", &url)
            .env("MOAT_ADMIN_KEY", admin_key)
            .output()
            .expect("run moat")
    };
    for name in ["one", "two", "three"] {
        assert!(cli(&["keys", "create", "--name", name]).status.success());
    }
    let out = cli(&["audit", "verify"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("intact: 3 records"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let listing = String::from_utf8_lossy(&cli(&["audit", "list"]).stdout).into_owned();
    assert_eq!(listing.matches("key.create").count(), 3, "{listing}");

    // Someone with access to the database rewrites what the second record says.
    let db = format!("sqlite://{}", dir.path().join("moat-data/moat.db").display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let tampered_id: String = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&db).await.expect("open the database");
        sqlx::query("UPDATE audit_log SET after = replace(after, 'two', 'owt') WHERE seq = 2")
            .execute(&pool)
            .await
            .expect("tamper");
        sqlx::query_scalar("SELECT id FROM audit_log WHERE seq = 2").fetch_one(&pool).await.expect("id")
    });
    let out = cli(&["audit", "verify"]);
    assert!(!out.status.success(), "verification must fail");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("record 2") && stderr.contains(&tampered_id), "names the row: {stderr}");
    server.stop();
}

/// Signs in through the form and approves `user_code`, as a person in a browser would.
async fn approve_in_browser(url: &str, email: &str, password: &str, user_code: &str) {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let hidden = |html: &str, name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html.find(&marker).expect("hidden field") + marker.len();
        html[start..].split('"').next().unwrap_or_default().to_owned()
    };
    let form = browser.get(format!("{url}/login")).send().await.expect("login page");
    let csrf_cookie = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("moat_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let csrf = hidden(&form.text().await.expect("html"), "csrf");
    let signed = browser
        .post(format!("{url}/login"))
        .header("cookie", csrf_cookie)
        .form(&[("email", email), ("password", password), ("csrf", &csrf), ("next", "/device")])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed.status(), 303);
    let session = signed
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("moat_session="))
        .and_then(|v| v.split(';').next())
        .expect("session cookie")
        .to_owned();
    let page = browser
        .get(format!("{url}/device?user_code={user_code}"))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    let csrf = hidden(&page.text().await.expect("html"), "csrf");
    let approved = browser
        .post(format!("{url}/device"))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str()), ("user_code", user_code), ("decision", "approve")])
        .send()
        .await
        .expect("approve");
    assert_eq!(approved.status(), 200);
}

#[test]
fn moat_login_receives_a_personal_key_and_moat_setup_uses_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, "[sign_in]\ndevice_poll_interval = \"1s\"\n").expect("config");
    let admin_key = "moat-cli-login-admin-key-0123456789";
    let server = Server::start_with(dir.path(), Some(admin_key), &["--config", config.to_str().expect("utf-8")]);
    let url = Server::url(&server.wait_for("moat is listening"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let admin = reqwest::Client::new();
    runtime.block_on(async {
        let user: serde_json::Value = admin
            .post(format!("{url}/admin/v1/users"))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({ "email": "dev@acme.test" }))
            .send()
            .await
            .expect("create user")
            .json()
            .await
            .expect("json");
        let id = user["id"].as_str().expect("id");
        let set = admin
            .put(format!("{url}/admin/v1/users/{id}/password"))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({ "password": "a long enough password" }))
            .send()
            .await
            .expect("set password");
        assert_eq!(set.status(), 204);
    });

    let home = tempfile::tempdir().expect("home");
    let mut login = Command::new(MOAT)
        .args(["login", "--server", &url])
        .env_clear()
        .env("HOME", home.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn moat login");
    let mut stderr = BufReader::new(login.stderr.take().expect("stderr"));
    let mut said = String::new();
    let code = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).expect("read") > 0, "moat login ended early: {said}");
        said.push_str(&line);
        if let Some(rest) = line.split("shows the code ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    runtime.block_on(approve_in_browser(&url, "dev@acme.test", "a long enough password", &code));
    let status = login.wait().expect("wait");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert!(status.success(), "moat login failed: {said}{rest}");

    let saved = home.path().join(".config/moat/credentials.toml");
    let text = std::fs::read_to_string(&saved).expect("credentials saved");
    assert!(text.contains(&format!("server = \"{url}\"")) && text.contains("key = \"moat_sk_"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&saved).expect("meta").permissions().mode() & 0o777, 0o600);
    }
    let exports = Command::new(MOAT)
        .args(["setup", "env", "--model", "any"])
        .env_clear()
        .env("HOME", home.path())
        .output()
        .expect("run moat setup");
    let exports = String::from_utf8_lossy(&exports.stdout).into_owned();
    assert!(
        exports.contains(&format!("export ANTHROPIC_BASE_URL='{url}'")) && exports.contains("moat_sk_"),
        "{exports}"
    );
    server.stop();
}

#[test]
fn with_migrate_check_serve_waits_for_moat_migrate_on_sqlite() {
    migrate_check_then_serve("sqlite://fleet.db");
}

#[test]
fn with_migrate_check_serve_waits_for_moat_migrate_on_postgres() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    migrate_check_then_serve(&runtime.block_on(moat_testkit::fresh_postgres_schema()));
}

fn migrate_check_then_serve(store_url: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, format!("[store]\nurl = \"{store_url}\"\nmigrate = \"check\"\n")).expect("config");
    let path = config.to_str().expect("utf-8");
    let refused = Command::new(MOAT)
        .args(["serve", "--config", path])
        .current_dir(dir.path())
        .env("MOAT_ADMIN_KEY", "k-0123456789abcdef")
        .env("MOAT__SERVER__LISTEN", "127.0.0.1:0")
        .output()
        .expect("run serve");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("run `moat migrate`"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let migrated =
        Command::new(MOAT).args(["migrate", "--config", path]).current_dir(dir.path()).output().expect("migrate");
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("applied migrations"));
    let again =
        Command::new(MOAT).args(["migrate", "--config", path]).current_dir(dir.path()).output().expect("migrate");
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let server = Server::start_with(dir.path(), Some("k-0123456789abcdef"), &["--config", path]);
    server.wait_for("moat is listening");
    server.stop();
}

/// The compose example's moat configuration is one this build accepts, with the variables
/// compose.yaml sets, and a fleet's settings (PostgreSQL checked by `moat migrate`, Redis,
/// a journal per container). Docker itself cannot run here; the image and compose file are
/// checked only this far.
#[test]
fn the_compose_example_configures_a_fleet_this_moat_accepts() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/compose");
    let config = format!("{root}/moat.toml");
    let checked = Command::new(MOAT)
        .args(["config", "check", &config])
        .env("UPSTREAM_API_KEY", "x")
        .env("MOAT__STORE__URL", "postgres://moat:secret@postgres:5432/moat")
        .output()
        .expect("run config check");
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let text = std::fs::read_to_string(&config).expect("config");
    for needle in ["migrate = \"check\"", "[redis]", "journal = \"/var/lib/moat/", "drain_delay"] {
        assert!(text.contains(needle), "the fleet config sets {needle}");
    }
    let compose = std::fs::read_to_string(format!("{root}/compose.yaml")).expect("compose");
    for replica in ["moat-1", "moat-2", "moat-3"] {
        assert!(compose.contains(&format!("{replica}:/var/lib/moat")), "{replica} keeps its own journal volume");
    }
    let dockerfile = std::fs::read_to_string(format!("{root}/../docker/Dockerfile")).expect("Dockerfile");
    assert!(dockerfile.contains("USER 65532"), "the image runs as a non-root user");
}

/// The shipped systemd unit passes `systemd-analyze verify` (with this build as the binary).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/systemd/moat.service"))
        .expect("unit");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("moat.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/moat", MOAT)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", path.to_str().expect("utf-8")])
        .output()
        .expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let problems: Vec<&str> = said.lines().filter(|l| l.contains("moat.service")).collect();
    assert!(out.status.success() && problems.is_empty(), "{said}");
}

#[test]
fn the_cli_sets_reads_resets_and_deletes_budgets_and_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_key = "cli-budgets-admin-key-0123456789";
    let server = Server::start(dir.path(), Some(admin_key));
    let url = Server::url(&server.wait_for("moat is listening"));
    let cli = |args: &[&str]| {
        let out = Command::new(MOAT)
            .args(args)
            .env("MOAT_SERVER", &url)
            .env("MOAT_ADMIN_KEY", admin_key)
            .output()
            .expect("run moat");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(&["budgets", "set", "--scope", "org", "--amount", "500", "--time-zone", "Europe/Paris"]);
    assert!(ok, "{err}");
    assert!(out.contains("amount:     $500.00 per month (Europe/Paris)"), "{out}");
    assert!(out.contains("spent:      $0.00 (0"), "{out}");
    let id = out.lines().find_map(|l| l.strip_prefix("id:")).expect("id line").trim().to_owned();
    // Setting it again changes the same budget.
    let (ok, out, err) = cli(&["budgets", "set", "--scope", "org", "--amount", "612.5", "--threshold", "90"]);
    assert!(ok, "{err}");
    assert!(out.contains(&id) && out.contains("$612.50 per month (Europe/Paris)") && out.contains("[90]"), "{out}");
    let (_, out, _) = cli(&["budgets", "list"]);
    assert!(out.contains(&id) && out.contains("$612.50") && out.contains("month"), "{out}");
    assert_eq!(out.lines().count(), 2, "one budget: {out}");
    let (ok, out, err) = cli(&["budgets", "reset", &id]);
    assert!(ok && out.contains("spend counts again from"), "{out}{err}");
    let (ok, _, err) = cli(&["budgets", "set", "--scope", "team", "--id", "team_nope", "--amount", "5"]);
    assert!(!ok && err.contains("invalid_request") && err.contains("team_nope"), "{err}");

    let (_, out, _) = cli(&["keys", "create", "--name", "limited"]);
    let key = out.lines().find_map(|l| l.strip_prefix("id:")).expect("id line").trim().to_owned();
    let (ok, out, err) = cli(&["limits", "set", "--scope", "key", "--id", &key, "--rpm", "60"]);
    assert!(ok, "{err}");
    assert!(out.contains("requests per minute: 60 (last minute: 0)"), "{out}");
    let (ok, out, _) = cli(&["limits", "set", "--scope", "key", "--id", &key, "--tpm", "1000", "--rpm", "0"]);
    assert!(ok && out.contains("requests per minute: -") && out.contains("tokens per minute:   1000"), "{out}");
    let limit = out.lines().find_map(|l| l.strip_prefix("id:")).expect("id line").trim().to_owned();
    let (_, out, _) = cli(&["limits", "list"]);
    assert!(out.contains(&limit) && out.contains("0/1000"), "{out}");
    let (ok, _, _) = cli(&["limits", "delete", &limit]);
    assert!(ok);
    let (ok, _, err) = cli(&["limits", "show", &limit]);
    assert!(!ok && err.contains("not_found"), "{err}");
    let (ok, out, _) = cli(&["budgets", "delete", &id]);
    assert!(ok && out.contains("deleted"), "{out}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moat_report_and_chargeback_print_spend_and_savings() {
    let upstream = moat_testkit::FakeUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(
        &config,
        format!(
            "[[deployments]]\nname = \"pool\"\nurl = \"{}\"\nupstream_model = \"x\"\ncost = {{ per_mtok = 1.0 }}\n\n\
             [[models]]\nname = \"m\"\ndeployments = [\"pool\"]\n\n\
             [savings]\nreferences = [{{ model = \"claude-sonnet-4-6\", provider = \"anthropic\" }}, \
             {{ model = \"gpt-6.2-astra\", provider = \"openai\" }}]\n",
            upstream.base_url()
        ),
    )
    .expect("config");
    let admin_key = "cli-report-admin-key-0123456789";
    let config_arg = config.to_str().expect("utf-8").to_owned();
    let server = Server::start_with(dir.path(), Some(admin_key), &["--config", &config_arg]);
    let url = Server::url(&server.wait_for("moat is listening"));
    let usage = moat_testkit::FakeUsage { prompt: 1_000, completion: 100, cached: 0 };
    let http = reqwest::Client::new();
    for _ in 0..2 {
        upstream.push(moat_testkit::Reply::chat("hi", Some(usage)));
        let response = http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(admin_key)
            .json(&serde_json::json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] }))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }
    let cli = |args: &[&str]| {
        let out = Command::new(MOAT)
            .args(args)
            .env("MOAT_SERVER", &url)
            .env("MOAT_ADMIN_KEY", admin_key)
            .output()
            .expect("run moat");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Records reach the rollups a moment after the responses.
    let mut table = String::new();
    for _ in 0..50 {
        table = cli(&["report", "--by", "model"]);
        if table.contains("$0.0022") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(table.contains("reference claude-sonnet-4-6 (anthropic)"), "{table}");
    // 2 × 1,100 tokens at $1/M = $0.0022; at the reference, 2 × (1,000 × $3 + 100 × $15)/M = $0.009.
    let row = table.lines().find(|l| l.starts_with("m ")).unwrap_or_else(|| panic!("{table}"));
    for figure in ["2", "$0.0022", "$0.009", "$0.0068"] {
        assert!(row.split_whitespace().any(|cell| cell == figure), "{figure} in {row}");
    }
    assert!(table.lines().any(|l| l.starts_with("TOTAL")), "{table}");
    // Each reference's total: 2 × (1,000 × $8 + 100 × $40)/M = $0.024 at the second.
    assert!(table.contains("at claude-sonnet-4-6 (anthropic): $0.009, savings $0.0068"), "{table}");
    assert!(table.contains("at gpt-6.2-astra (openai): $0.024, savings $0.0218"), "{table}");
    let csv = cli(&["report", "--by", "model", "--format", "csv"]);
    assert_eq!(
        csv.lines().next(),
        Some(
            "model,requests,errors,input_tokens,output_tokens,cost_usd,reference_cost_usd,savings_usd,latency_p95_ms,\
             claude-sonnet-4-6_cost_usd,claude-sonnet-4-6_savings_usd,gpt-6.2-astra_cost_usd,gpt-6.2-astra_savings_usd"
        )
    );
    let row = csv.lines().nth(1).unwrap_or_default();
    assert!(row.starts_with("m,2,0,2000,200,0.0022,0.009,0.0068,"), "{csv}");
    assert!(row.ends_with(",0.009,0.0068,0.024,0.0218"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&cli(&["report", "--format", "json"])).expect("json");
    assert_eq!(json["total"]["requests"], 2);
    let month = json["from"].as_str().expect("from")[..7].to_owned();
    let chargeback = cli(&["chargeback", "--month", &month, "--tz", "UTC"]);
    // The admin key from the environment belongs to no team: its usage is unassigned.
    assert!(
        chargeback.lines().nth(1).is_some_and(|l| l.starts_with(&format!("{month},unassigned,,2,0,2000"))),
        "{chargeback}"
    );
    server.stop();
}
