//! Checks of the sections that guard the company's data: data policy, egress, encryption at
//! rest, and the listener's limits and TLS.

use std::collections::{HashMap, HashSet};

use moat_core::{Policy, PromptLogging, SecretAction};
use moat_store::sealing::{MasterKey, MasterKeys};
use secrecy::ExposeSecret as _;

use super::raw::{EgressConfig, EncryptionConfig, PolicyConfig, ServerConfig};
use super::validate::{Issues, resolve_secret};

/// The networks outbound calls may reach besides public ones.
pub(super) fn egress(raw: &EgressConfig, issues: &mut Issues) -> moat_identity::egress::EgressPolicy {
    let mut allowed = Vec::new();
    for (i, net) in raw.allowed_networks.iter().enumerate() {
        match net.parse::<ipnet::IpNet>().or_else(|_| net.parse::<std::net::IpAddr>().map(ipnet::IpNet::from)) {
            Ok(net) => allowed.push(net),
            Err(_) => {
                issues.add(format!("egress.allowed_networks[{i}]"), format!("`{net}` is not a network (`10.0.0.0/8`)"))
            }
        }
    }
    moat_identity::egress::EgressPolicy::new(allowed)
}

/// The default data policy. `encrypted`: whether a master key is configured, without which
/// nothing may be logged in full.
pub(super) fn policy(raw: &PolicyConfig, declared: &HashSet<&str>, encrypted: bool, issues: &mut Issues) -> Policy {
    let secrets = match raw.secrets.as_str() {
        "allow" => SecretAction::Allow,
        "redact" => SecretAction::Redact,
        "block" => SecretAction::Block,
        other => {
            issues.add("policy.secrets", format!("`{other}` is not one of `allow`, `redact`, `block`"));
            SecretAction::Block
        }
    };
    let prompts = match raw.prompts.as_str() {
        "none" => PromptLogging::None,
        "metadata" => PromptLogging::Metadata,
        "full" if !encrypted => {
            issues
                .add("policy.prompts", "`full` stores prompts, which are stored only encrypted: set [encryption] key");
            PromptLogging::Metadata
        }
        "full" => PromptLogging::Full,
        other => {
            issues.add("policy.prompts", format!("`{other}` is not one of `none`, `metadata`, `full`"));
            PromptLogging::None
        }
    };
    if raw.prompt_retention_days == 0 {
        issues.add("policy.prompt_retention_days", "must be at least 1 day");
    }
    for (i, name) in raw.deployments.iter().flatten().enumerate() {
        if !declared.contains(name.as_str()) {
            issues.add(format!("policy.deployments[{i}]"), format!("no deployment is named `{name}`"));
        }
    }
    Policy {
        internal_only: raw.internal_only,
        deployments: raw.deployments.as_ref().map(|names| names.iter().cloned().collect()),
        secrets,
        prompts,
        prompt_retention_days: raw.prompt_retention_days.max(1),
    }
}

/// The master keys, when `[encryption] key` is set.
pub(super) fn encryption(
    raw: &EncryptionConfig,
    env: &HashMap<String, String>,
    issues: &mut Issues,
) -> Option<MasterKeys> {
    let mut read = |secret, path: String| {
        let text = resolve_secret(secret, &path, env, issues)?;
        MasterKey::from_text(text.expose_secret()).map_err(|e| issues.add(path, e.to_string())).ok()
    };
    let Some(secret) = &raw.key else {
        if !raw.previous_keys.is_empty() {
            issues.add("encryption.previous_keys", "needs `key`, the master key that replaces them");
        }
        return None;
    };
    let current = read(secret, "encryption.key".into());
    let previous: Vec<MasterKey> = raw
        .previous_keys
        .iter()
        .enumerate()
        .filter_map(|(i, secret)| read(secret, format!("encryption.previous_keys[{i}]")))
        .collect();
    Some(MasterKeys::new(current?, previous))
}

/// The listener's limits, and its certificate (loaded once here, so a bad file is reported
/// with the rest of the config's problems).
pub(super) fn listener(raw: &ServerConfig, issues: &mut Issues) -> crate::listener::ListenerSettings {
    if raw.max_connections == 0 {
        issues.add("server.max_connections", "must be at least 1");
    }
    if raw.max_headers == 0 {
        issues.add("server.max_headers", "must be at least 1");
    }
    if raw.max_header_bytes < 8192 {
        issues.add("server.max_header_bytes", "must be at least 8192");
    }
    for (path, value) in
        [("server.header_read_timeout", raw.header_read_timeout), ("server.body_read_timeout", raw.body_read_timeout)]
    {
        if value.is_zero() {
            issues.add(path, "must be longer than zero");
        }
    }
    let tls = raw.tls.as_ref().map(|tls| crate::listener::TlsSettings {
        cert_file: tls.cert_file.clone().into(),
        key_file: tls.key_file.clone().into(),
        reload_interval: tls.reload_interval.max(std::time::Duration::from_secs(1)),
        hsts_max_age: tls.hsts_max_age,
    });
    if let Some(tls) = &tls
        && let Err(error) = crate::listener::tls::read(&tls.cert_file, &tls.key_file)
    {
        issues.add("server.tls", error);
    }
    crate::listener::ListenerSettings {
        max_connections: raw.max_connections,
        header_read_timeout: raw.header_read_timeout,
        max_headers: raw.max_headers,
        max_header_bytes: raw.max_header_bytes,
        tls,
    }
}
