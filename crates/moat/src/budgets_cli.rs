//! `moat budgets` and `moat limits`: set, read, reset and delete spend caps and rate limits
//! through the admin API, and see current spend against them.

use anyhow::bail;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::admin_client::{AdminApi, ServerArgs, text};

#[derive(Debug, Subcommand)]
pub(crate) enum BudgetsCommand {
    /// Set the budget of a key, user, team or the org for a period (creating or changing it).
    Set {
        /// `key`, `user`, `team` or `org`.
        #[arg(long)]
        scope: String,
        /// The key, user or team id (none for `org`).
        #[arg(long)]
        id: Option<String>,
        /// The cap per period in dollars, e.g. `500` or `12.50`.
        #[arg(long)]
        amount: String,
        /// `day`, `week`, `month` or `none` (a lifetime cap).
        #[arg(long, default_value = "month")]
        period: String,
        /// The IANA time zone periods follow, e.g. `Europe/Paris`. Default: UTC (on creation).
        #[arg(long)]
        time_zone: Option<String>,
        /// Alert at this percentage of the amount; repeat for several. Default: 50, 80, 100.
        #[arg(long = "threshold")]
        thresholds: Vec<u32>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List budgets with this period's spend.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one budget with this period's spend.
    Show {
        /// The budget's id.
        id: String,
    },
    /// Start this period's spend again from zero.
    Reset {
        /// The budget's id.
        id: String,
    },
    /// Delete a budget.
    Delete {
        /// The budget's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum LimitsCommand {
    /// Set the limits of a key, user, team or model (creating or changing them). A cap set to
    /// 0 is removed.
    Set {
        /// `key`, `user`, `team` or `model`.
        #[arg(long)]
        scope: String,
        /// The key, user or team id, or the model name.
        #[arg(long)]
        id: String,
        /// Requests per minute.
        #[arg(long)]
        rpm: Option<u64>,
        /// Tokens (input plus output) per minute.
        #[arg(long)]
        tpm: Option<u64>,
        /// Requests in flight at once.
        #[arg(long)]
        concurrency: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List limits with the last minute's counts.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one limit with the last minute's counts.
    Show {
        /// The limit's id.
        id: String,
    },
    /// Forget the last minute's counts.
    Reset {
        /// The limit's id.
        id: String,
    },
    /// Delete a limit.
    Delete {
        /// The limit's id.
        id: String,
    },
}

pub(crate) async fn budgets(server: &ServerArgs, command: BudgetsCommand) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    match command {
        BudgetsCommand::Set { scope, id, amount, period, time_zone, thresholds, json } => {
            let page = api.send(api.http.get(api.url("budgets"))).await?;
            let scope_id = id.clone().unwrap_or_default();
            let existing = page["data"].as_array().into_iter().flatten().find(|b| {
                b["scope"] == scope.as_str() && b["scope_id"] == scope_id.as_str() && b["period"] == period.as_str()
            });
            let mut body = json!({ "amount_usd": amount });
            if let Some(zone) = &time_zone {
                body["time_zone"] = json!(zone);
            }
            if !thresholds.is_empty() {
                body["thresholds"] = json!(thresholds);
            }
            let budget = match existing {
                Some(budget) => {
                    let url = api.url(&format!("budgets/{}", text(&budget["id"])));
                    api.send(api.http.patch(url).json(&body)).await?
                }
                None => {
                    body["scope"] = json!(scope);
                    body["scope_id"] = json!(id);
                    body["period"] = json!(period);
                    api.send(api.http.post(api.url("budgets")).json(&body)).await?
                }
            };
            print_budget(&budget, json)?;
        }
        BudgetsCommand::List { json } => {
            let page = api.send(api.http.get(api.url("budgets"))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            println!(
                "{:<34} {:<6} {:<38} {:<6} {:>12} {:>12} {:>7}  RESETS",
                "ID", "SCOPE", "OF", "PERIOD", "AMOUNT", "SPENT", "USED"
            );
            for b in page["data"].as_array().into_iter().flatten() {
                let current = &b["current"];
                println!(
                    "{:<34} {:<6} {:<38} {:<6} {:>12} {:>12} {:>6}%  {}",
                    text(&b["id"]),
                    text(&b["scope"]),
                    if b["scope_id"] == "" { "-".to_owned() } else { text(&b["scope_id"]) },
                    text(&b["period"]),
                    text(&b["amount_usd"]),
                    text(&current["spent_usd"]),
                    text(&current["percent_used"]),
                    text(&current["period_end"]),
                );
            }
        }
        BudgetsCommand::Show { id } => {
            print_budget(&api.send(api.http.get(api.url(&format!("budgets/{id}")))).await?, false)?;
        }
        BudgetsCommand::Reset { id } => {
            let budget = api.send(api.http.post(api.url(&format!("budgets/{id}/reset")))).await?;
            println!("reset {}: spend counts again from {}", text(&budget["id"]), text(&budget["reset_at"]));
        }
        BudgetsCommand::Delete { id } => {
            delete(&api, &format!("budgets/{id}")).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

fn print_budget(budget: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(budget)?);
        return Ok(());
    }
    let current = &budget["current"];
    println!("id:         {}", text(&budget["id"]));
    println!("scope:      {} {}", text(&budget["scope"]), text(&budget["scope_id"]));
    println!(
        "amount:     {} per {} ({})",
        text(&budget["amount_usd"]),
        text(&budget["period"]),
        text(&budget["time_zone"])
    );
    println!("thresholds: {}", text(&budget["thresholds"]));
    println!("period:     {} to {}", text(&current["period_start"]), text(&current["period_end"]));
    println!(
        "spent:      {} ({}%), {} left, {} µ$ reserved by requests in flight",
        text(&current["spent_usd"]),
        text(&current["percent_used"]),
        text(&current["remaining_usd"]),
        text(&current["reserved_micro_usd"])
    );
    Ok(())
}

pub(crate) async fn limits(server: &ServerArgs, command: LimitsCommand) -> anyhow::Result<()> {
    let api = AdminApi::new(server)?;
    match command {
        LimitsCommand::Set { scope, id, rpm, tpm, concurrency, json } => {
            if rpm.is_none() && tpm.is_none() && concurrency.is_none() {
                bail!("give at least one of --rpm, --tpm, --concurrency");
            }
            let cap = |value: Option<u64>| value.map(|n| if n == 0 { Value::Null } else { json!(n) });
            let mut body = serde_json::Map::new();
            for (name, value) in [
                ("requests_per_minute", cap(rpm)),
                ("tokens_per_minute", cap(tpm)),
                ("concurrent_requests", cap(concurrency)),
            ] {
                if let Some(value) = value {
                    body.insert(name.into(), value);
                }
            }
            let page = api.send(api.http.get(api.url("limits"))).await?;
            let existing = page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|l| l["scope"] == scope.as_str() && l["scope_id"] == id.as_str());
            let limit = match existing {
                Some(limit) => {
                    let url = api.url(&format!("limits/{}", text(&limit["id"])));
                    api.send(api.http.patch(url).json(&body)).await?
                }
                None => {
                    body.insert("scope".into(), json!(scope));
                    body.insert("scope_id".into(), json!(id));
                    api.send(api.http.post(api.url("limits")).json(&body)).await?
                }
            };
            print_limit(&limit, json)?;
        }
        LimitsCommand::List { json } => {
            let page = api.send(api.http.get(api.url("limits"))).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            println!(
                "{:<34} {:<6} {:<38} {:>14} {:>18} {:>14}",
                "ID", "SCOPE", "OF", "REQUESTS/MIN", "TOKENS/MIN", "IN FLIGHT"
            );
            for l in page["data"].as_array().into_iter().flatten() {
                let current = &l["current"];
                let pair = |used: &Value, cap: &Value| {
                    if cap.is_null() { "-".to_owned() } else { format!("{}/{}", text(used), text(cap)) }
                };
                println!(
                    "{:<34} {:<6} {:<38} {:>14} {:>18} {:>14}",
                    text(&l["id"]),
                    text(&l["scope"]),
                    text(&l["scope_id"]),
                    pair(&current["requests_last_minute"], &l["requests_per_minute"]),
                    pair(&current["tokens_last_minute"], &l["tokens_per_minute"]),
                    pair(&current["in_flight"], &l["concurrent_requests"]),
                );
            }
        }
        LimitsCommand::Show { id } => {
            print_limit(&api.send(api.http.get(api.url(&format!("limits/{id}")))).await?, false)?;
        }
        LimitsCommand::Reset { id } => {
            let limit = api.send(api.http.post(api.url(&format!("limits/{id}/reset")))).await?;
            println!("reset {}", text(&limit["id"]));
        }
        LimitsCommand::Delete { id } => {
            delete(&api, &format!("limits/{id}")).await?;
            println!("deleted {id}");
        }
    }
    Ok(())
}

fn print_limit(limit: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(limit)?);
        return Ok(());
    }
    let current = &limit["current"];
    println!("id:                  {}", text(&limit["id"]));
    println!("scope:               {} {}", text(&limit["scope"]), text(&limit["scope_id"]));
    println!(
        "requests per minute: {} (last minute: {})",
        text(&limit["requests_per_minute"]),
        text(&current["requests_last_minute"])
    );
    println!(
        "tokens per minute:   {} (last minute: {})",
        text(&limit["tokens_per_minute"]),
        text(&current["tokens_last_minute"])
    );
    println!("concurrent requests: {} (now: {})", text(&limit["concurrent_requests"]), text(&current["in_flight"]));
    Ok(())
}

/// A DELETE answers 204 with no body, which `send` (JSON only) cannot read.
async fn delete(api: &AdminApi, path: &str) -> anyhow::Result<()> {
    let response = api.authorized(api.http.delete(api.url(path))).send().await?;
    if response.status().is_success() {
        return Ok(());
    }
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    bail!(
        "moat refused ({status}, {}): {}",
        text(&body.pointer("/error/code").cloned().unwrap_or(Value::Null)),
        text(&body.pointer("/error/message").cloned().unwrap_or(Value::Null))
    )
}
