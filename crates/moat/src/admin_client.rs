//! `moat keys`, `moat usage`, `moat deployments` and `moat audit`: thin clients of the admin
//! API.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// moat's base URL.
    #[arg(long, env = "MOAT_SERVER", default_value = "http://127.0.0.1:4000", global = true)]
    server: String,
    /// An admin key.
    #[arg(long, env = "MOAT_ADMIN_KEY", hide_env_values = true, global = true)]
    admin_key: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create {
        /// A label for people.
        #[arg(long)]
        name: String,
        /// Who the key is for.
        #[arg(long)]
        owner: Option<String>,
        /// A model the key may use; repeat for several. Without any, every model.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Expire after this long, e.g. `30d` or `12h`.
        #[arg(long)]
        expires_in: Option<String>,
        /// Create an admin key instead of a client key.
        #[arg(long)]
        admin: bool,
        /// Print the full JSON answer.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their secrets).
    List {
        /// Include revoked keys.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key; it stops working at once.
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// Filters for `moat usage`.
#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// Most records to show.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Only this key's records.
    #[arg(long)]
    key: Option<String>,
    /// Only this model's records.
    #[arg(long)]
    model: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Show audit records, newest first.
    List {
        /// Most records to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Only this action (`user.update`) or family (`key.`).
        #[arg(long)]
        action: Option<String>,
        /// Only this actor's (a user id).
        #[arg(long)]
        actor: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recompute the hash chain; fails, naming the first bad record, if any record was altered
    /// or deleted. Prints the head hash to keep elsewhere.
    Verify,
}

pub(crate) struct AdminApi {
    pub(crate) http: reqwest::Client,
    base: String,
    key: String,
}

impl AdminApi {
    pub(crate) fn new(args: &ServerArgs) -> anyhow::Result<Self> {
        let Some(key) = args.admin_key.clone() else {
            bail!("an admin key is needed: set MOAT_ADMIN_KEY or pass --admin-key");
        };
        let http = reqwest::Client::builder().build().context("building the HTTP client")?;
        Ok(AdminApi { http, base: args.server.trim_end_matches('/').to_owned(), key })
    }

    /// `request` with the admin key.
    pub(crate) fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.bearer_auth(&self.key)
    }

    pub(crate) async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach moat at {}", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.context("moat answered with something that is not JSON")?;
        if !status.is_success() {
            let message = body.pointer("/error/message").and_then(Value::as_str).unwrap_or("no message");
            let code = body.pointer("/error/code").and_then(Value::as_str).unwrap_or("unknown");
            bail!("moat refused ({status}, {code}): {message}");
        }
        Ok(body)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}/admin/v1/{path}", self.base)
    }
}

pub(crate) async fn keys(server: &ServerArgs, command: KeysCommand) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    match command {
        KeysCommand::Create { name, owner, models, expires_in, admin, json } => {
            let mut body = json!({ "name": name, "owner": owner, "expires_in": expires_in });
            if !models.is_empty() {
                body["models"] = json!(models);
            }
            if admin {
                body["role"] = json!("admin");
            }
            let key = api.send(api.http.post(api.url("keys")).json(&body)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&key)?);
            } else {
                println!("id:      {}", text(&key["id"]));
                println!("models:  {}", models_text(&key["models"]));
                println!("expires: {}", text(&key["expires_at"]));
                println!("key:     {}", text(&key["key"]));
                println!("\nThe key is shown only this once; store it now.");
            }
        }
        KeysCommand::List { all, json } => {
            let keys = every_key(&api, all).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<38} {:<20} {:<8} {:<14} {:<24} STATE", "ID", "NAME", "ROLE", "PREFIX", "MODELS");
                for key in keys["data"].as_array().into_iter().flatten() {
                    let state = if key["revoked_at"].is_null() { "active" } else { "revoked" };
                    println!(
                        "{:<38} {:<20} {:<8} {:<14} {:<24} {}",
                        text(&key["id"]),
                        text(&key["name"]),
                        text(&key["role"]),
                        text(&key["prefix"]),
                        models_text(&key["models"]),
                        state
                    );
                }
            }
        }
        KeysCommand::Revoke { id } => {
            let key = api.send(api.http.delete(api.url(&format!("keys/{id}")))).await?;
            println!("revoked {} at {}", text(&key["id"]), text(&key["revoked_at"]));
        }
    }
    Ok(())
}

/// Every key the caller may see, one page of the admin API after another, as one `{"data":
/// [...]}` answer.
async fn every_key(api: &AdminApi, include_revoked: bool) -> anyhow::Result<Value> {
    let mut keys = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut query = vec![("include_revoked", include_revoked.to_string()), ("limit", "1000".to_owned())];
        query.extend(before.take().map(|id| ("before", id)));
        let mut page = api.send(api.http.get(api.url("keys")).query(&query)).await?;
        if let Some(data) = page["data"].as_array_mut() {
            keys.append(data);
        }
        match page["next_before"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => return Ok(json!({ "data": keys })),
        }
    }
}

pub(crate) async fn usage(server: &ServerArgs, args: UsageArgs) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    let mut query = vec![("limit", args.limit.to_string())];
    if let Some(key) = args.key {
        query.push(("key_id", key));
    }
    if let Some(model) = args.model {
        query.push(("model", model));
    }
    let usage = api.send(api.http.get(api.url("usage")).query(&query)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&usage)?);
        return Ok(());
    }
    println!(
        "{:<24} {:<20} {:<16} {:>6} {:>8} {:>8} {:>7} {:>8} {:>7}",
        "TIME", "MODEL", "DEPLOYMENT", "STATUS", "INPUT", "OUTPUT", "CACHED", "LATENCY", "TTFT"
    );
    for r in usage["data"].as_array().into_iter().flatten() {
        let estimated = if r["estimated"].as_bool() == Some(true) { "~" } else { "" };
        println!(
            "{:<24} {:<20} {:<16} {:>6} {:>8} {:>8} {:>7} {:>6}ms {:>5}ms",
            text(&r["created_at"]),
            text(&r["model"]),
            text(&r["deployment"]),
            text(&r["status"]),
            format!("{estimated}{}", text(&r["input_tokens"])),
            format!("{estimated}{}", text(&r["output_tokens"])),
            text(&r["cached_tokens"]),
            text(&r["latency_ms"]),
            text(&r["ttft_ms"]),
        );
    }
    Ok(())
}

/// `moat audit list` and `moat audit verify`.
pub(crate) async fn audit(server: &ServerArgs, command: AuditCommand) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    match command {
        AuditCommand::List { limit, action, actor, json } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(action.map(|a| ("action", a)));
            query.extend(actor.map(|a| ("actor", a)));
            let page = api.send(api.http.get(api.url("audit")).query(&query)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            println!("{:>6} {:<24} {:<18} {:<34} TARGET", "SEQ", "TIME", "ACTION", "ACTOR");
            for r in page["data"].as_array().into_iter().flatten() {
                let actor =
                    if r["actor_user_id"].is_null() { "break-glass".to_owned() } else { text(&r["actor_user_id"]) };
                println!(
                    "{:>6} {:<24} {:<18} {:<34} {}:{}",
                    text(&r["seq"]),
                    text(&r["at"]),
                    text(&r["action"]),
                    actor,
                    text(&r["target_type"]),
                    text(&r["target_id"]),
                );
            }
            Ok(())
        }
        AuditCommand::Verify => {
            let report = api.send(api.http.get(api.url("audit/verify"))).await?;
            if report["ok"] == Value::Bool(true) {
                println!("audit log intact: {} records, head {}", text(&report["records"]), text(&report["head"]));
                return Ok(());
            }
            let broken = &report["broken"];
            bail!(
                "audit log broken at record {} ({}): {}",
                text(&broken["seq"]),
                text(&broken["id"]),
                text(&broken["reason"])
            )
        }
    }
}

/// `moat deployments`: each deployment's health, load and latency.
pub(crate) async fn deployments(server: &ServerArgs, json: bool) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    let page = api.send(api.http.get(api.url("deployments"))).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(());
    }
    println!("{:<20} {:<8} {:>9} {:>8} {:>10}  MODELS", "DEPLOYMENT", "HEALTH", "IN FLIGHT", "TTFT", "TIMES DOWN");
    for d in page["data"].as_array().into_iter().flatten() {
        let ttft = d["ttft_ms"].as_u64().map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms"));
        println!(
            "{:<20} {:<8} {:>9} {:>8} {:>10}  {}",
            text(&d["name"]),
            text(&d["health"]),
            text(&d["in_flight"]),
            ttft,
            text(&d["times_down"]),
            models_text(&d["models"]),
        );
    }
    Ok(())
}

pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn models_text(value: &Value) -> String {
    match value.as_array() {
        None => "all".into(),
        Some(models) => models.iter().map(text).collect::<Vec<_>>().join(","),
    }
}
