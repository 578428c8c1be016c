//! What the running configuration says, without its secrets: the console's settings page and
//! `GET /admin/v1/settings` show it so admins can check SSO, SCIM, budgets enforcement and
//! savings references without reading the server's files.
//!
//! Secrets are never summarised, only whether one is set: no client secret, SCIM token, SMTP
//! password, Redis URL (it can hold a password), webhook URL (it can be a credential) or
//! collector URL or header appears here.

use std::time::Duration;

use moat_core::routing::ModelCatalog;
use serde_json::{Value, json};

use super::{RoutingSettings, Settings};

/// A duration as the configuration would write it: `90d`, `8h`, `15m`, `5s`, `250ms` (the
/// largest unit that divides it exactly).
fn span(duration: Duration) -> String {
    let ms = duration.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let seconds = ms / 1000;
    for (unit, length) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if seconds >= length && seconds.is_multiple_of(length) {
            return format!("{}{unit}", seconds / length);
        }
    }
    format!("{seconds}s")
}

/// The sections that take effect at start: sign-in, SSO, SCIM, mail, Redis, admission, alerts,
/// savings, retention, tracing, the listener's limits and TLS, egress, encryption at rest (the
/// master key's fingerprint, never the key) and the default data policy.
pub fn at_start(settings: &Settings) -> Value {
    let sign_in = &settings.sign_in;
    let sso = settings.sso.as_ref().map(|sso| {
        json!({
            "issuer": sso.issuer,
            "client_id": sso.client_id,
            "client_secret_set": sso.client_secret.is_some(),
            "redirect_url": sso.redirect_url,
            "scopes": sso.scopes,
            "allowed_domains": sso.allowed_domains,
            "groups_claim": sso.groups_claim,
            "default_role": sso.default_role.as_str(),
            "group_roles": sso.group_roles.iter().map(|(group, role)| (group.clone(), json!(role.as_str()))).collect::<serde_json::Map<_, _>>(),
            "group_teams": sso.group_teams,
        })
    });
    let smtp = settings.smtp.as_ref().map(|smtp| {
        let security = match smtp.security {
            moat_identity::mail::SmtpSecurity::Tls => "tls",
            moat_identity::mail::SmtpSecurity::StartTls => "starttls",
            moat_identity::mail::SmtpSecurity::None => "none",
        };
        json!({
            "host": smtp.host,
            "port": smtp.port,
            "security": security,
            "from": smtp.from,
            "login": smtp.username.is_some(),
        })
    });
    let admission = &settings.admission;
    let fail = |mode: super::raw::FailMode| match mode {
        super::raw::FailMode::Open => "open",
        super::raw::FailMode::Closed => "closed",
    };
    let listener = &settings.listener;
    let server = json!({
        "max_body_bytes": settings.max_body_bytes,
        "body_read_timeout": span(settings.body_read_timeout),
        "header_read_timeout": span(listener.header_read_timeout),
        "max_headers": listener.max_headers,
        "max_header_bytes": listener.max_header_bytes,
        "max_connections": listener.max_connections,
        "tls": listener.tls.as_ref().map(|tls| json!({
            "cert_file": tls.cert_file.display().to_string(),
            "reload_interval": span(tls.reload_interval),
            "hsts_max_age": span(tls.hsts_max_age),
        })),
    });
    let encryption = settings
        .encryption
        .as_ref()
        .map(|keys| json!({ "master_key": keys.current().id(), "previous_keys": keys.previous_count() }));
    json!({
        "server": server,
        "egress": { "allowed_networks": settings.egress.allowed().iter().map(ToString::to_string).collect::<Vec<_>>() },
        "encryption": encryption,
        "policy": settings.policy,
        "sign_in": {
            "session_idle": span(sign_in.session_idle),
            "session_lifetime": span(sign_in.session_lifetime),
            "secure_cookies": sign_in.secure_cookies,
            "login_key_lifetime": span(sign_in.device_key_lifetime),
        },
        "sso": sso,
        "scim": { "enabled": settings.scim_token.is_some(), "path": "/scim/v2" },
        "smtp": smtp,
        "redis": { "enabled": settings.redis.is_some() },
        "admission": {
            "counters": if settings.redis.is_some() { "redis" } else { "local" },
            "default_output_tokens": admission.default_output_tokens,
            "reservation_ttl": span(admission.reservation_ttl),
            "counter_timeout": span(admission.counter_timeout),
            "budgets_fail": fail(admission.budgets_fail),
            "limits_fail": fail(admission.limits_fail),
            "refresh_interval": span(admission.refresh_interval),
        },
        "alerts": {
            "webhooks": settings.webhooks.iter().map(|w| json!({
                "format": match w.format { crate::alerts::Format::Json => "json", crate::alerts::Format::Slack => "slack" },
                "signed": w.secret.is_some(),
            })).collect::<Vec<_>>(),
        },
        "savings": {
            "references": settings.references.iter().map(|r| json!({ "model": r.model, "provider": r.provider })).collect::<Vec<_>>(),
        },
        "usage": {
            "retention": settings.usage_retention.map(span),
            "rollup_retention": settings.rollup_retention.map(span),
        },
        "telemetry": settings.telemetry.as_ref().map(|t| json!({ "service_name": t.service_name, "sample_ratio": t.sample_ratio })),
    })
}

/// The sections a reload changes: retries and health, and each model's routing policy
/// (`deployment_name` names a deployment by its index).
pub fn routing(catalog: &ModelCatalog, routing: &RoutingSettings, deployment_name: impl Fn(usize) -> String) -> Value {
    let models: Vec<Value> = catalog
        .names()
        .filter_map(|name| {
            let route = catalog.route(name)?;
            Some(json!({
                "name": name,
                "strategy": route.strategy.as_str(),
                "deployments": route.members.iter().map(|m| json!({
                    "deployment": deployment_name(m.deployment.0),
                    "weight": m.weight,
                    "tier": m.tier,
                })).collect::<Vec<_>>(),
                "fallbacks": route.fallbacks,
                "cache": route.cache.map(|c| json!({ "ttl": span(c.ttl), "scope": c.scope.as_str() })),
                "aliases": catalog.aliases().iter().filter(|(_, model)| model == name).map(|(pattern, _)| pattern.clone()).collect::<Vec<_>>(),
            }))
        })
        .collect();
    let breaker = &routing.breaker;
    json!({
        "routing": {
            "max_attempts": routing.max_attempts,
            "retry_deadline": span(routing.retry_deadline),
            "backoff_base": span(routing.backoff_base),
            "backoff_max": span(routing.backoff_max),
            "health_check_interval": routing.health_check_interval.map(span),
            "breaker": {
                "consecutive_failures": breaker.consecutive_failures,
                "failure_rate": breaker.failure_rate,
                "window": breaker.window,
                "min_requests": breaker.min_requests,
                "cooldown": span(breaker.cooldown),
            },
        },
        "models": models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_they_are_configured() {
        let cases =
            [(7_776_000_000, "90d"), (28_800_000, "8h"), (5_400_000, "90m"), (5_000, "5s"), (250, "250ms"), (0, "0s")];
        for (ms, text) in cases {
            assert_eq!(span(Duration::from_millis(ms)), text);
        }
    }
}
