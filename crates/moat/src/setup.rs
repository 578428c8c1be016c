//! `moat setup <agent>`: points a coding agent at moat with the person's own key.
//!
//! Each agent's configuration file is merged where its format allows (Claude Code's
//! `settings.json`, Codex's `config.toml`, OpenCode's `opencode.json`, aider's
//! `.aider.conf.yml` keys), so the person's other settings stay; Continue's `config.yaml` is
//! written whole. Whatever a run changes is first copied to `<file>.moat-backup-<time>`; a run
//! that would change nothing writes nothing, so setup can be repeated safely. `--print` shows
//! the result instead of writing it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use crate::credentials::{self, Credentials};

/// The agents `moat setup` configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Agent {
    /// Claude Code: `~/.claude/settings.json` (`env`).
    ClaudeCode,
    /// Codex CLI: `~/.codex/config.toml` (a `moat` model provider, Responses API).
    Codex,
    /// OpenCode: `~/.config/opencode/opencode.json` (an OpenAI-compatible `moat` provider).
    Opencode,
    /// aider: `~/.aider.conf.yml`.
    Aider,
    /// Continue: `~/.continue/config.yaml`.
    Continue,
    /// Shell exports for everything else: `eval "$(moat setup env)"`.
    Env,
}

/// `moat setup` options.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The agent to configure.
    agent: Agent,
    /// moat's base URL; default: the one `moat login` saved.
    #[arg(long, env = "MOAT_SERVER")]
    server: Option<String>,
    /// The key to use; default: the one `moat login` saved.
    #[arg(long, env = "MOAT_API_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The company model the agent uses for its main work; default: the first model the key
    /// may use.
    #[arg(long)]
    model: Option<String>,
    /// The model for quick background tasks (titles, summaries); default: `--model`.
    #[arg(long)]
    small_model: Option<String>,
    /// Show the configuration instead of writing it.
    #[arg(long)]
    print: bool,
}

/// What setup needs to know.
struct Target {
    server: String,
    key: String,
    model: String,
    small_model: String,
}

pub(crate) async fn run(args: SetupArgs) -> anyhow::Result<()> {
    let saved = credentials::load()?;
    let server = args
        .server
        .or_else(|| saved.as_ref().map(|c| c.server.clone()))
        .context("no moat server: run `moat login --server URL` first, or pass --server")?;
    let server = server.trim_end_matches('/').to_owned();
    let key = args
        .key
        .or_else(|| saved.as_ref().map(|c: &Credentials| c.key.clone()))
        .context("no key: run `moat login` first, or pass --key")?;
    let model = match args.model {
        Some(model) => model,
        None => first_model(&server, &key).await?,
    };
    let small_model = args.small_model.unwrap_or_else(|| model.clone());
    let target = Target { server, key, model, small_model };
    let home = home()?;
    let files = match args.agent {
        Agent::ClaudeCode => vec![claude_code(&home, &target)?],
        Agent::Codex => vec![codex(&home, &target)?],
        Agent::Opencode => vec![opencode(&home, &target)?],
        Agent::Aider => vec![aider(&home, &target)?],
        Agent::Continue => vec![continue_dev(&home, &target)],
        Agent::Env => {
            print!("{}", env_exports(&target));
            return Ok(());
        }
    };
    for (path, contents) in files {
        if args.print {
            println!("# {}\n{contents}", path.display());
            continue;
        }
        match write_with_backup(&path, &contents)? {
            Written::Unchanged => println!("{}: already set up", path.display()),
            Written::Created => println!("{}: written", path.display()),
            Written::Replaced(backup) => {
                println!("{}: updated (the previous version is in {})", path.display(), backup.display());
            }
        }
    }
    Ok(())
}

/// The user's home folder.
fn home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from).context("HOME is not set")
}

/// The first model the key may use, from moat's model list.
async fn first_model(server: &str, key: &str) -> anyhow::Result<String> {
    let response = reqwest::Client::new()
        .get(format!("{server}/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| format!("cannot reach moat at {server} to list models; pass --model"))?;
    if !response.status().is_success() {
        bail!("moat refused to list models ({}); check the key, or pass --model", response.status());
    }
    let models: Value = response.json().await.context("moat's model list is not JSON")?;
    models["data"][0]["id"].as_str().map(str::to_owned).context("the key may use no model; ask an admin")
}

fn read_if_exists(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// A JSON object file, or an empty object when it does not exist.
fn read_json(path: &Path) -> anyhow::Result<Value> {
    match read_if_exists(path)? {
        None => Ok(json!({})),
        Some(text) if text.trim().is_empty() => Ok(json!({})),
        Some(text) => {
            let value: Value = serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not plain JSON (comments?); fix it or move it away, then run setup again",
                    path.display()
                )
            })?;
            if !value.is_object() {
                bail!("{} does not hold a JSON object", path.display());
            }
            Ok(value)
        }
    }
}

fn claude_code(home: &Path, t: &Target) -> anyhow::Result<(PathBuf, String)> {
    let path = home.join(".claude/settings.json");
    let mut settings = read_json(&path)?;
    let env = settings.as_object_mut().map(|o| o.entry("env").or_insert_with(|| json!({})));
    let Some(env) = env.and_then(Value::as_object_mut) else {
        bail!("{}: `env` is not an object", path.display());
    };
    for (name, value) in [
        ("ANTHROPIC_BASE_URL", t.server.as_str()),
        ("ANTHROPIC_AUTH_TOKEN", t.key.as_str()),
        ("ANTHROPIC_MODEL", t.model.as_str()),
        ("ANTHROPIC_DEFAULT_OPUS_MODEL", t.model.as_str()),
        ("ANTHROPIC_DEFAULT_SONNET_MODEL", t.model.as_str()),
        ("ANTHROPIC_DEFAULT_HAIKU_MODEL", t.small_model.as_str()),
        ("ANTHROPIC_SMALL_FAST_MODEL", t.small_model.as_str()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ] {
        env.insert(name.to_owned(), json!(value));
    }
    // Two credentials would make Claude Code ask which to use; moat's is the bearer token.
    env.remove("ANTHROPIC_API_KEY");
    Ok((path, serde_json::to_string_pretty(&settings)? + "\n"))
}

fn codex(home: &Path, t: &Target) -> anyhow::Result<(PathBuf, String)> {
    let path = home.join(".codex/config.toml");
    let text = read_if_exists(&path)?.unwrap_or_default();
    let mut doc: toml_edit::DocumentMut =
        text.parse().with_context(|| format!("{} is not valid TOML; fix it, then run setup again", path.display()))?;
    doc["model"] = toml_edit::value(t.model.as_str());
    doc["model_provider"] = toml_edit::value("moat");
    let mut provider = toml_edit::Table::new();
    provider["name"] = toml_edit::value("moat");
    provider["base_url"] = toml_edit::value(format!("{}/v1", t.server));
    provider["wire_api"] = toml_edit::value("responses");
    provider["experimental_bearer_token"] = toml_edit::value(t.key.as_str());
    let providers = doc.entry("model_providers").or_insert_with(|| {
        let mut table = toml_edit::Table::new();
        table.set_implicit(true);
        toml_edit::Item::Table(table)
    });
    let Some(providers) = providers.as_table_mut() else {
        bail!("{}: `model_providers` is not a table", path.display());
    };
    providers.insert("moat", toml_edit::Item::Table(provider));
    Ok((path, doc.to_string()))
}

fn opencode(home: &Path, t: &Target) -> anyhow::Result<(PathBuf, String)> {
    let path = home.join(".config/opencode/opencode.json");
    let mut config = read_json(&path)?;
    let mut models = serde_json::Map::new();
    for model in [&t.model, &t.small_model] {
        models.insert(model.clone(), json!({ "name": format!("{model} (moat)") }));
    }
    config["$schema"] = json!("https://opencode.ai/config.json");
    if !config["provider"].is_object() {
        config["provider"] = json!({});
    }
    config["provider"]["moat"] = json!({
        "npm": "@ai-sdk/openai-compatible",
        "name": "moat",
        "options": { "baseURL": format!("{}/v1", t.server), "apiKey": t.key },
        "models": models,
    });
    config["model"] = json!(format!("moat/{}", t.model));
    config["small_model"] = json!(format!("moat/{}", t.small_model));
    Ok((path, serde_json::to_string_pretty(&config)? + "\n"))
}

/// Sets top-level `key: value` lines of a YAML file, keeping every other line.
fn set_yaml_keys(text: &str, pairs: &[(&str, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    for (key, value) in pairs {
        let line = format!("{key}: {value}");
        match lines.iter_mut().find(|l| l.split_once(':').is_some_and(|(k, _)| k == *key)) {
            Some(existing) => *existing = line,
            None => lines.push(line),
        }
    }
    lines.join("\n") + "\n"
}

/// A YAML double-quoted scalar.
fn yaml_string(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

fn aider(home: &Path, t: &Target) -> anyhow::Result<(PathBuf, String)> {
    let path = home.join(".aider.conf.yml");
    let text = read_if_exists(&path)?.unwrap_or_default();
    let pairs = [
        ("openai-api-base", yaml_string(&format!("{}/v1", t.server))),
        ("openai-api-key", yaml_string(&t.key)),
        ("model", yaml_string(&format!("openai/{}", t.model))),
        ("weak-model", yaml_string(&format!("openai/{}", t.small_model))),
    ];
    Ok((path, set_yaml_keys(&text, &pairs)))
}

fn continue_dev(home: &Path, t: &Target) -> (PathBuf, String) {
    let path = home.join(".continue/config.yaml");
    let model = |name: &str, roles: &str| {
        format!(
            "  - name: {}\n    provider: openai\n    model: {}\n    apiBase: {}\n    apiKey: {}\n    roles: [{roles}]\n",
            yaml_string(&format!("{name} (moat)")),
            yaml_string(name),
            yaml_string(&format!("{}/v1", t.server)),
            yaml_string(&t.key),
        )
    };
    let mut text =
        String::from("# Written by `moat setup continue`.\nname: moat\nversion: 1.0.0\nschema: v1\nmodels:\n");
    text.push_str(&model(&t.model, "chat, edit, apply"));
    if t.small_model != t.model {
        text.push_str(&model(&t.small_model, "autocomplete, summarize"));
    }
    (path, text)
}

fn env_exports(t: &Target) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    [
        ("MOAT_SERVER", t.server.clone()),
        ("MOAT_API_KEY", t.key.clone()),
        ("OPENAI_BASE_URL", format!("{}/v1", t.server)),
        ("OPENAI_API_KEY", t.key.clone()),
        ("ANTHROPIC_BASE_URL", t.server.clone()),
        ("ANTHROPIC_AUTH_TOKEN", t.key.clone()),
        ("ANTHROPIC_MODEL", t.model.clone()),
    ]
    .iter()
    .map(|(name, value)| format!("export {name}={}\n", quote(value)))
    .collect()
}

enum Written {
    Unchanged,
    Created,
    Replaced(PathBuf),
}

/// Writes `contents` to `path` (mode 0600: it holds a key), first copying a different
/// existing file aside.
fn write_with_backup(path: &Path, contents: &str) -> anyhow::Result<Written> {
    let existing = read_if_exists(path)?;
    if existing.as_deref() == Some(contents) {
        return Ok(Written::Unchanged);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let backup = match existing {
        None => None,
        Some(old) => {
            let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
            let backup = PathBuf::from(format!("{}.moat-backup-{stamp}", path.display()));
            credentials::write_private(&backup, &old)?;
            Some(backup)
        }
    };
    credentials::write_private(path, contents)?;
    Ok(backup.map_or(Written::Created, Written::Replaced))
}
