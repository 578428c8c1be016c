//! Settings: what the running configuration says about sign-in, single sign-on, SCIM, mail,
//! budgets enforcement, alerts, savings references, retention and replicas, without secrets.
//! They are set in moat's configuration file and environment, which stay the one source of
//! truth (reviewable, versioned, the same on every replica); the page shows what is in effect.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde_json::Value;

use crate::layout::{Section, page};
use crate::{ConsoleState, Visit, html, refused, shown};

/// `GET /ui/settings`.
pub(crate) async fn show(State(state): State<Arc<ConsoleState>>, visit: Visit) -> Response {
    let answer = state.api.get(&visit, "/admin/v1/settings").await;
    if !answer.status.is_success() {
        return refused(&visit.person, &answer);
    }
    let s = &answer.body;
    let yes_no = |value: &Value| if value.as_bool().unwrap_or(false) { "yes" } else { "no" };
    let list = |value: &Value| {
        let items: Vec<String> = value.as_array().into_iter().flatten().map(shown).collect();
        if items.is_empty() { "–".to_owned() } else { items.join(", ") }
    };
    let body = html! {
        p { "These come from moat's configuration file and environment (every setting is described in " code { "docs/config.md" } "), the same on every replica. Secrets are never shown, only whether one is set. "
            "Routing and models apply on reload; the rest at the next start." }
        section #sso {
            h2 { "Single sign-on (OpenID Connect)" }
            @if s["sso"].is_null() { p { "Off: people sign in with a password. Set " code { "[sso]" } " to sign in through Okta, Entra ID, Google or Keycloak." } } @else {
                @let sso = &s["sso"];
                (facts(&[
                    ("Issuer", shown(&sso["issuer"])),
                    ("Client id", shown(&sso["client_id"])),
                    ("Client secret", if sso["client_secret_set"] == true { "set".into() } else { "none (public client, PKCE)".into() }),
                    ("Callback URL", shown(&sso["redirect_url"])),
                    ("Scopes", list(&sso["scopes"])),
                    ("Allowed e-mail domains", if sso["allowed_domains"].as_array().is_some_and(Vec::is_empty) { "any".into() } else { list(&sso["allowed_domains"]) }),
                    ("Groups claim", shown(&sso["groups_claim"])),
                    ("Role without a mapped group", shown(&sso["default_role"])),
                ]))
                (mapping("Groups → organisation role", &sso["group_roles"]))
                (mapping("Groups → team", &sso["group_teams"]))
            }
        }
        section #scim {
            h2 { "SCIM provisioning" }
            @if s["scim"]["enabled"] == true {
                p { "On at " code { (shown(&s["scim"]["path"])) } ", with the bearer token from the configuration. Your identity provider creates, updates and deactivates people and groups there." }
            } @else { p { "Off. Set " code { "[scim] token = { env = \"MOAT_SCIM_TOKEN\" }" } " to let Okta or Entra ID provision people and groups." } }
        }
        section #sign-in {
            h2 { "Sign-in" }
            (facts(&[
                ("Session ends after idle", shown(&s["sign_in"]["session_idle"])),
                ("Session ends after", shown(&s["sign_in"]["session_lifetime"])),
                ("Secure cookies (HTTPS only)", yes_no(&s["sign_in"]["secure_cookies"]).into()),
                ("Key made by moat login lives", shown(&s["sign_in"]["login_key_lifetime"])),
            ]))
        }
        section #smtp {
            h2 { "Invitation e-mail" }
            @if s["smtp"].is_null() { p { "No mail server: invitation links are shown to the admin to pass on." } } @else {
                (facts(&[
                    ("Server", format!("{}:{} ({})", shown(&s["smtp"]["host"]), shown(&s["smtp"]["port"]), shown(&s["smtp"]["security"]))),
                    ("Sender", shown(&s["smtp"]["from"])),
                    ("Login", yes_no(&s["smtp"]["login"]).into()),
                ]))
            }
        }
        section #savings {
            h2 { "Savings references" }
            @if s["savings"]["references"].as_array().is_some_and(Vec::is_empty) {
                p { "None: savings are not measured. Pick frontier models from the " a href="/ui/prices" { "price catalog" } " with " code { "[savings] references" } "." }
            } @else {
                p { "Reports compare spend with these models' list prices (the first is priced on every usage record). " a href="/ui/prices" { "Price catalog" } }
                ul { @for r in s["savings"]["references"].as_array().into_iter().flatten() { li { (shown(&r["model"])) " (" (shown(&r["provider"])) ")" } } }
            }
        }
        section #admission {
            h2 { "Budgets and limits enforcement" }
            @let a = &s["admission"];
            (facts(&[
                ("Counters", if a["counters"] == "redis" { "Redis, shared by every replica".into() } else { "in this process".to_owned() }),
                ("Output tokens reserved when a request sets no maximum", shown(&a["default_output_tokens"])),
                ("A reservation that never settles expires after", shown(&a["reservation_ttl"])),
                ("If the counters cannot be reached, budgets", format!("fail {}", shown(&a["budgets_fail"]))),
                ("If the counters cannot be reached, limits", format!("fail {}", shown(&a["limits_fail"]))),
                ("Other replicas' changes are read every", shown(&a["refresh_interval"])),
            ]))
        }
        section #alerts {
            h2 { "Budget alerts" }
            @let hooks = s["alerts"]["webhooks"].as_array().cloned().unwrap_or_default();
            @if hooks.is_empty() { p { "No webhooks: thresholds are reached silently." } } @else {
                ul { @for hook in &hooks { li { (shown(&hook["format"])) " webhook" @if hook["signed"] == true { ", signed" } } } }
            }
        }
        section #retention {
            h2 { "Retention" }
            (facts(&[
                ("Usage records kept", s["usage"]["retention"].as_str().unwrap_or("forever").to_owned()),
                ("Hourly and daily rollups kept", s["usage"]["rollup_retention"].as_str().unwrap_or("forever").to_owned()),
            ]))
        }
        section #routing {
            h2 { "Retries and health" }
            @let r = &s["routing"];
            (facts(&[
                ("Attempts per request", shown(&r["max_attempts"])),
                ("No retry starts after", shown(&r["retry_deadline"])),
                ("Backoff", format!("{} to {}", shown(&r["backoff_base"]), shown(&r["backoff_max"]))),
                ("A deployment is marked down after", format!("{} failures in a row, or {} % of the last {} requests", shown(&r["breaker"]["consecutive_failures"]), r["breaker"]["failure_rate"].as_f64().unwrap_or(0.0) * 100.0, shown(&r["breaker"]["window"]))),
                ("It is tried again after", shown(&r["breaker"]["cooldown"])),
                ("Active health checks every", r["health_check_interval"].as_str().unwrap_or("off (passive only)").to_owned()),
            ]))
            p { "Each model's routing policy is on the " a href="/ui/models#policies" { "models page" } "." }
        }
        section #security {
            h2 { "Security and data" }
            @let server = &s["server"];
            (facts(&[
                ("TLS", if server["tls"].is_null() { "off: plain HTTP (keep moat behind a TLS-terminating proxy)".to_owned() } else { format!("on, certificate {} re-read every {}, HSTS {}", shown(&server["tls"]["cert_file"]), shown(&server["tls"]["reload_interval"]), shown(&server["tls"]["hsts_max_age"])) }),
                ("Connections open at most", shown(&server["max_connections"])),
                ("Request heads", format!("at most {} headers, {} bytes, within {}", shown(&server["max_headers"]), shown(&server["max_header_bytes"]), shown(&server["header_read_timeout"]))),
                ("Request bodies", format!("at most {} bytes, within {}", shown(&server["max_body_bytes"]), shown(&server["body_read_timeout"]))),
                ("Sign-on and webhooks may also reach", s["egress"]["allowed_networks"].as_array().filter(|n| !n.is_empty()).map_or_else(|| "public addresses only".to_owned(), |nets| nets.iter().map(shown).collect::<Vec<_>>().join(", "))),
                ("Encryption at rest", if s["encryption"].is_null() { "no master key: prompts cannot be logged in full".to_owned() } else { format!("master key {} ({} previous)", shown(&s["encryption"]["master_key"]), shown(&s["encryption"]["previous_keys"])) }),
                ("Default data policy", format!("{}; credentials bound outside: {}; prompts kept: {}", if s["policy"]["internal_only"] == true { "internal deployments only" } else { "any deployment" }, shown(&s["policy"]["secrets"]), shown(&s["policy"]["prompts"]))),
            ]))
            p { "Teams' own policies are on each team's page and at " code { "/admin/v1/teams/{id}/policy" } "." }
        }
        section #replicas {
            h2 { "Replicas and tracing" }
            (facts(&[
                ("Redis (revocations, counters and the cache shared by replicas)", if s["redis"]["enabled"] == true { "configured".into() } else { "not configured: one replica".to_owned() }),
                ("OpenTelemetry traces", if s["telemetry"].is_null() { "off".to_owned() } else { format!("on, as {}, {} of requests", shown(&s["telemetry"]["service_name"]), shown(&s["telemetry"]["sample_ratio"])) }),
            ]))
        }
    };
    html(StatusCode::OK, &page(&visit.person, Section::Settings, "Settings", &body))
}

/// Label and value pairs, as a definition list.
fn facts(rows: &[(&str, String)]) -> Markup {
    html! { dl.facts { @for (label, value) in rows { dt { (label) } dd { (value) } } } }
}

/// A JSON object of text values as a two-column table, or nothing when it is empty.
fn mapping(title: &str, object: &Value) -> Markup {
    let rows: Vec<(&String, String)> =
        object.as_object().into_iter().flatten().map(|(key, value)| (key, shown(value))).collect();
    html! {
        @if !rows.is_empty() {
            div.table-wrap { table {
                caption { (title) }
                thead { tr { th scope="col" { "group" } th scope="col" { "gives" } } }
                tbody { @for (group, value) in &rows { tr { td { (group) } td { (value) } } } }
            } }
        }
    }
}
