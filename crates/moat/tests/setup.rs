//! `moat setup <agent>`: each agent's file written, merged with what was there, backed up,
//! idempotent, and private.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::path::Path;
use std::process::{Command, Output};

const MOAT: &str = env!("CARGO_BIN_EXE_moat");

fn setup(home: &Path, args: &[&str]) -> Output {
    Command::new(MOAT)
        .arg("setup")
        .args(args)
        .args(["--server", "https://moat.acme.test/", "--key", "moat_sk_personal", "--model", "qwen3-coder"])
        .env_clear()
        .env("HOME", home)
        .output()
        .expect("run moat setup")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn backups(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter(|e| e.as_ref().is_ok_and(|e| e.file_name().to_string_lossy().contains("moat-backup"))).count()
    })
}

#[test]
fn claude_code_settings_are_merged_backed_up_and_idempotent() {
    let home = tempfile::tempdir().expect("home");
    let dir = home.path().join(".claude");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("settings.json"),
        r#"{"theme": "dark", "env": {"ANTHROPIC_API_KEY": "old", "EDITOR": "vim"}}"#,
    )
    .expect("existing settings");

    assert!(stdout(&setup(home.path(), &["claude-code"])).contains("updated"));
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("settings.json")).expect("read")).expect("json");
    assert_eq!(settings["theme"], "dark", "the person's settings stay");
    let env = &settings["env"];
    assert_eq!(env["ANTHROPIC_BASE_URL"], "https://moat.acme.test");
    assert_eq!(env["ANTHROPIC_AUTH_TOKEN"], "moat_sk_personal");
    assert_eq!(
        (env["ANTHROPIC_MODEL"].as_str(), env["ANTHROPIC_DEFAULT_HAIKU_MODEL"].as_str()),
        (Some("qwen3-coder"), Some("qwen3-coder"))
    );
    assert_eq!(env["EDITOR"], "vim");
    assert!(env.get("ANTHROPIC_API_KEY").is_none(), "one credential, not two");
    assert_eq!(backups(&dir), 1, "what was there is kept aside");

    assert!(stdout(&setup(home.path(), &["claude-code"])).contains("already set up"));
    assert_eq!(backups(&dir), 1, "a second run changes nothing");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("settings.json")).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the file holds a key");
    }
}

#[test]
fn codex_gets_a_moat_provider_and_keeps_its_other_settings() {
    let home = tempfile::tempdir().expect("home");
    let dir = home.path().join(".codex");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("config.toml"),
        "# my settings\napproval_policy = \"never\"\n\n[model_providers.other]\nname = \"x\"\n",
    )
    .expect("existing");
    stdout(&setup(home.path(), &["codex"]));
    let text = std::fs::read_to_string(dir.join("config.toml")).expect("read");
    assert!(text.contains("# my settings") && text.contains("approval_policy = \"never\""), "{text}");
    let config: toml::Table = toml::from_str(&text).expect("toml");
    assert_eq!(config["model"].as_str(), Some("qwen3-coder"));
    assert_eq!(config["model_provider"].as_str(), Some("moat"));
    let moat = &config["model_providers"]["moat"];
    assert_eq!(moat["base_url"].as_str(), Some("https://moat.acme.test/v1"));
    assert_eq!(moat["wire_api"].as_str(), Some("responses"));
    assert_eq!(moat["experimental_bearer_token"].as_str(), Some("moat_sk_personal"));
    assert!(config["model_providers"].get("other").is_some());
}

#[test]
fn opencode_aider_and_continue_are_written() {
    let home = tempfile::tempdir().expect("home");
    std::fs::write(home.path().join(".aider.conf.yml"), "dark-mode: true\nmodel: gpt-4o\n").expect("existing aider");
    stdout(&setup(home.path(), &["opencode"]));
    stdout(&setup(home.path(), &["aider"]));
    stdout(&setup(home.path(), &["continue"]));

    let opencode: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(home.path().join(".config/opencode/opencode.json")).expect("read"),
    )
    .expect("json");
    assert_eq!(opencode["model"], "moat/qwen3-coder");
    assert_eq!(opencode["provider"]["moat"]["npm"], "@ai-sdk/openai-compatible");
    assert_eq!(opencode["provider"]["moat"]["options"]["baseURL"], "https://moat.acme.test/v1");

    let aider = std::fs::read_to_string(home.path().join(".aider.conf.yml")).expect("read");
    assert!(aider.contains("dark-mode: true"), "{aider}");
    assert!(aider.contains("model: \"openai/qwen3-coder\"") && !aider.contains("gpt-4o"), "{aider}");
    assert!(aider.contains("openai-api-base: \"https://moat.acme.test/v1\""), "{aider}");

    let continue_yaml = std::fs::read_to_string(home.path().join(".continue/config.yaml")).expect("read");
    assert!(continue_yaml.contains("apiBase: \"https://moat.acme.test/v1\"") && continue_yaml.contains("schema: v1"));
}

#[test]
fn print_writes_nothing_and_env_prints_exports() {
    let home = tempfile::tempdir().expect("home");
    let printed = stdout(&setup(home.path(), &["codex", "--print"]));
    assert!(printed.contains("experimental_bearer_token = \"moat_sk_personal\""), "{printed}");
    assert!(!home.path().join(".codex").exists());
    let exports = stdout(&setup(home.path(), &["env"]));
    assert!(exports.contains("export OPENAI_BASE_URL='https://moat.acme.test/v1'"), "{exports}");
    assert!(exports.contains("export ANTHROPIC_AUTH_TOKEN='moat_sk_personal'"));
}

#[test]
fn without_a_login_setup_says_what_to_do() {
    let home = tempfile::tempdir().expect("home");
    let out =
        Command::new(MOAT).args(["setup", "claude-code"]).env_clear().env("HOME", home.path()).output().expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("moat login"), "{}", String::from_utf8_lossy(&out.stderr));
}
