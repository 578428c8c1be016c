//! Budget alerts: a webhook post when a budget's spend reaches one of its thresholds.
//!
//! Each threshold fires once per budget period for the whole fleet: the replica that first
//! sees it claims it with a row in `budget_alerts` (the primary key makes the claim atomic),
//! and only the claimant posts. Bodies are signed Stripe-style, `x-moat-signature:
//! t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, so a receiver can check both origin
//! and freshness. Delivery is retried a few times and never holds up a request.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;

use crate::admission::{Crossing, dollars};
use crate::state::AppState;
use crate::time::now_ms;

/// Delivery attempts per webhook.
const ATTEMPTS: u32 = 3;
/// Longest one delivery may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// How an alert is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// moat's own event (see the README).
    Json,
    /// A Slack incoming-webhook message.
    Slack,
}

/// A validated `[[alerts.webhooks]]` entry.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where alerts are posted (a secret: a Slack webhook URL is its own credential).
    pub url: SecretString,
    /// How they are written.
    pub format: Format,
    /// What bodies are signed with.
    pub secret: Option<SecretString>,
}

/// The webhooks, an HTTP client, and the thresholds this replica already knows were claimed.
#[derive(Debug)]
pub(crate) struct Alerts {
    webhooks: Vec<Webhook>,
    /// `None` when it could not be built (alerts are then logged as undeliverable).
    client: Option<reqwest::Client>,
    /// (budget, period start, threshold) known to be claimed, so a budget past a threshold
    /// does not cost a database write per request.
    claimed: Mutex<HashSet<(String, i64, u32)>>,
}

impl Alerts {
    /// Webhooks are called only where `egress` allows, and never through a redirect.
    pub(crate) fn new(webhooks: Vec<Webhook>, egress: &moat_identity::egress::EgressPolicy) -> Alerts {
        let client = egress
            .client(DELIVERY_TIMEOUT)
            .inspect_err(
                |error| tracing::error!(%error, "the webhook client could not be built; alerts will not be delivered"),
            )
            .ok();
        Alerts { webhooks, client, claimed: Mutex::new(HashSet::new()) }
    }
}

impl Alerts {
    /// Whether any webhook is configured: without one, nothing needs to know about thresholds.
    pub(crate) fn enabled(&self) -> bool {
        !self.webhooks.is_empty()
    }
}

/// Claims and sends the alerts of `crossings` that no replica has sent yet.
pub(crate) async fn notify(state: &Arc<AppState>, crossings: Vec<crate::admission::Crossing>) {
    let alerts = &state.alerts;
    if !alerts.enabled() {
        return;
    }
    for crossing in crossings {
        for &threshold in &crossing.thresholds {
            let key = (crossing.budget.id.clone(), crossing.period_start_ms, threshold);
            if alerts.claimed.lock().unwrap_or_else(PoisonError::into_inner).contains(&key) {
                continue;
            }
            let claimed = state
                .store
                .claim_budget_alert(&crossing.budget.id, crossing.period_start_ms, threshold, now_ms())
                .await;
            match claimed {
                Ok(won) => {
                    alerts.claimed.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
                    if won {
                        tracing::info!(budget = %crossing.budget.id, threshold, "budget alert");
                        let state = state.clone();
                        let crossing = crossing.clone();
                        state.tasks.clone().spawn(async move { deliver(&state, &crossing, threshold).await });
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot claim a budget alert; the next request retries"),
            }
        }
    }
}

async fn deliver(state: &AppState, crossing: &Crossing, threshold: u32) {
    let Some(client) = &state.alerts.client else {
        tracing::error!("a budget alert could not be delivered: no webhook client");
        return;
    };
    for webhook in &state.alerts.webhooks {
        let body = match webhook.format {
            Format::Json => event(crossing, threshold),
            Format::Slack => json!({ "text": sentence(crossing, threshold) }),
        }
        .to_string();
        for attempt in 0..ATTEMPTS {
            let mut request = client.post(webhook.url.expose_secret()).header("content-type", "application/json");
            request = request.header("x-moat-event", "budget.threshold_reached");
            if let Some(secret) = &webhook.secret {
                request = request.header("x-moat-signature", signature(secret, now_ms() / 1000, &body));
            }
            match request.body(body.clone()).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => {
                    tracing::warn!(
                        status = response.status().as_u16(),
                        attempt,
                        "a budget alert webhook refused the alert"
                    )
                }
                // The error names the host, never a secret: webhook URLs hold none by rule.
                Err(error) => {
                    let refused = moat_identity::egress::refusal_in(&error);
                    let error = error.without_url();
                    tracing::warn!(%error, refused, attempt, "a budget alert webhook failed");
                }
            }
            if attempt + 1 < ATTEMPTS {
                tokio::time::sleep(Duration::from_secs(1 << (2 * attempt))).await;
            }
        }
    }
}

/// moat's alert event.
fn event(crossing: &Crossing, threshold: u32) -> serde_json::Value {
    let budget = &crossing.budget;
    json!({
        "type": "budget.threshold_reached",
        "id": uuid::Uuid::now_v7().to_string(),
        "created_at_ms": now_ms(),
        "threshold_percent": threshold,
        "spent_micro_usd": crossing.spent,
        "spent_usd": dollars(crossing.spent),
        "period_start_ms": crossing.period_start_ms,
        "budget": {
            "id": budget.id,
            "scope": budget.scope.as_str(),
            "scope_id": budget.scope_id,
            "amount_micro_usd": budget.amount_micro_usd,
            "amount_usd": dollars(budget.amount_micro_usd),
            "period": budget.period.as_str(),
            "time_zone": budget.time_zone,
        },
        "text": sentence(crossing, threshold),
    })
}

/// The alert as one sentence for people.
fn sentence(crossing: &Crossing, threshold: u32) -> String {
    let budget = &crossing.budget;
    let who = match budget.scope {
        moat_core::budget::Scope::Org => "The organization".to_owned(),
        scope => format!("{} `{}`", capitalized(scope.as_str()), budget.scope_id),
    };
    let period = match budget.period {
        moat_core::Period::Day => "daily ",
        moat_core::Period::Week => "weekly ",
        moat_core::Period::Month => "monthly ",
        moat_core::Period::Never => "",
    };
    format!(
        "moat: {who} has used {threshold}% of its {period}budget ({} of {}).",
        dollars(crossing.spent),
        dollars(budget.amount_micro_usd)
    )
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub(crate) fn signature(secret: &SecretString, unix_seconds: i64, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return String::new();
    };
    mac.update(format!("{unix_seconds}.{body}").as_bytes());
    let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={unix_seconds},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_match_an_independent_hmac() {
        // HMAC-SHA256("key", "1700000000.{}"), computed with Python's hmac module.
        let secret = SecretString::from("key");
        assert_eq!(
            signature(&secret, 1_700_000_000, "{}"),
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
