//! Checking a [`RawConfig`] and turning it into runtime [`Settings`].
//!
//! Every check runs, and every failure is reported with its path, so one `moat config check`
//! shows all that needs fixing.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use moat_core::Dialect;
use moat_core::{DeploymentId, ModelCatalog};
use moat_store::UsageWriterConfig;
use moat_upstream::DeploymentSpec;
use secrecy::SecretString;

use super::load::ConfigIssue;
use super::raw::{DeploymentConfig, RawConfig, SecretRef};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The checked configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listening address.
    pub listen: SocketAddr,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Silence after which a stream gets a keep-alive comment.
    pub stream_keepalive: Duration,
    /// How long in-flight requests may run after shutdown begins.
    pub shutdown_grace: Duration,
    /// Database URL.
    pub store_url: String,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_level: String,
    /// Usage writer sizes.
    pub usage_writer: UsageWriterConfig,
    /// Deployments, indexed by [`DeploymentId`].
    pub deployments: Vec<DeploymentSpec>,
    /// Public model names and their deployments.
    pub catalog: ModelCatalog,
}

struct Issues(Vec<ConfigIssue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigIssue { path: path.into(), message: message.into() });
    }
}

pub(super) fn validate(raw: RawConfig, env: &HashMap<String, String>) -> Result<Settings, Vec<ConfigIssue>> {
    let mut issues = Issues(Vec::new());

    let listen = raw.server.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        issues.add("server.listen", format!("`{}` is not an IP:port address (e.g. 127.0.0.1:4000)", raw.server.listen));
        SocketAddr::from(([127, 0, 0, 1], 4000))
    });
    let max_body_bytes = match usize::try_from(raw.server.max_body_bytes) {
        Ok(0) | Err(_) => {
            issues.add("server.max_body_bytes", "must be at least 1");
            0
        }
        Ok(n) => n,
    };
    if raw.server.stream_keepalive.is_zero() {
        issues.add("server.stream_keepalive", "must be longer than zero");
    }
    if !raw.store.url.starts_with("sqlite:") {
        issues.add("store.url", "only `sqlite://PATH` is supported by this build");
    }
    let log_format = match raw.log.format.as_str() {
        "pretty" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            issues.add("log.format", format!("`{other}` is not one of `pretty`, `json`"));
            LogFormat::Pretty
        }
    };
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&raw.log.level) {
        issues.add("log.level", format!("not a valid filter: {e}"));
    }
    if raw.usage.channel_capacity == 0 {
        issues.add("usage.channel_capacity", "must be at least 1");
    }
    if raw.usage.max_batch == 0 {
        issues.add("usage.max_batch", "must be at least 1");
    }

    let mut deployments = Vec::with_capacity(raw.deployments.len());
    // Every declared name, valid deployment or not, so a model naming an invalid deployment
    // is not reported a second time as naming a missing one.
    let mut declared = HashSet::new();
    let mut deployment_ids = HashMap::new();
    for (i, deployment) in raw.deployments.iter().enumerate() {
        let path = format!("deployments[{i}]");
        if !declared.insert(deployment.name.as_str()) {
            issues.add(format!("{path}.name"), format!("`{}` is used by another deployment", deployment.name));
            continue;
        }
        if let Some(spec) = validate_deployment(deployment, &path, env, &mut issues) {
            deployment_ids.insert(spec.name.clone(), DeploymentId(deployments.len()));
            deployments.push(spec);
        }
    }

    let mut catalog = ModelCatalog::default();
    let mut model_names = HashSet::new();
    for (i, model) in raw.models.iter().enumerate() {
        let path = format!("models[{i}]");
        if model.name.trim().is_empty() {
            issues.add(format!("{path}.name"), "must not be empty");
        } else if !model_names.insert(model.name.as_str()) {
            issues.add(format!("{path}.name"), format!("`{}` is defined twice", model.name));
        }
        if model.deployments.is_empty() {
            issues.add(format!("{path}.deployments"), "needs at least one deployment");
        }
        let mut ids = Vec::new();
        for (j, name) in model.deployments.iter().enumerate() {
            match deployment_ids.get(name) {
                Some(id) => ids.push(*id),
                None if declared.contains(name.as_str()) => {}
                None => issues.add(format!("{path}.deployments[{j}]"), format!("no deployment is named `{name}`")),
            }
        }
        catalog.insert(model.name.clone(), ids);
        for (j, pattern) in model.aliases.iter().enumerate() {
            if pattern.trim().is_empty() {
                issues.add(format!("{path}.aliases[{j}]"), "must not be empty");
            } else {
                catalog.alias(pattern.clone(), model.name.clone());
            }
        }
    }

    if !issues.0.is_empty() {
        return Err(issues.0);
    }
    Ok(Settings {
        listen,
        max_body_bytes,
        stream_keepalive: raw.server.stream_keepalive,
        shutdown_grace: raw.server.shutdown_grace,
        store_url: raw.store.url,
        log_format,
        log_level: raw.log.level,
        usage_writer: UsageWriterConfig {
            capacity: raw.usage.channel_capacity,
            max_batch: raw.usage.max_batch,
            ..UsageWriterConfig::default()
        },
        deployments,
        catalog,
    })
}

fn validate_deployment(
    raw: &DeploymentConfig,
    path: &str,
    env: &HashMap<String, String>,
    issues: &mut Issues,
) -> Option<DeploymentSpec> {
    let before = issues.0.len();
    if raw.name.is_empty() || !raw.name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        issues.add(format!("{path}.name"), "must be non-empty and use only letters, digits, `-`, `_` and `.`");
    }
    let base_url = raw.url.trim_end_matches('/').to_owned();
    check_http_url(&base_url, &format!("{path}.url"), issues);
    let mut dialects = Vec::new();
    let mut native_responses = false;
    if raw.dialects.is_empty() {
        issues.add(format!("{path}.dialects"), "needs at least one dialect");
    }
    for (j, dialect) in raw.dialects.iter().enumerate() {
        match dialect.as_str() {
            "openai" => dialects.push(Dialect::OpenAi),
            "anthropic" => dialects.push(Dialect::Anthropic),
            "responses" => native_responses = true,
            other => issues.add(
                format!("{path}.dialects[{j}]"),
                format!("`{other}` is not a supported dialect (supported: `openai`, `anthropic`, `responses`)"),
            ),
        }
    }
    if raw.upstream_model.trim().is_empty() {
        issues.add(format!("{path}.upstream_model"), "must not be empty");
    }
    let api_key =
        raw.api_key.as_ref().and_then(|secret| resolve_secret(secret, &format!("{path}.api_key"), env, issues));
    for (name, value) in &raw.headers {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            issues.add(format!("{path}.headers.{name}"), "is not a valid header name");
        }
        if http::HeaderValue::from_str(value).is_err() {
            issues.add(format!("{path}.headers.{name}"), "is not a valid header value");
        }
    }
    if raw.timeout.is_zero() {
        issues.add(format!("{path}.timeout"), "must be longer than zero");
    }
    if raw.connect_timeout.is_zero() {
        issues.add(format!("{path}.connect_timeout"), "must be longer than zero");
    }
    if let Some(url) = &raw.tokenize_url {
        check_http_url(url, &format!("{path}.tokenize_url"), issues);
    }
    (issues.0.len() == before).then(|| DeploymentSpec {
        name: raw.name.clone(),
        base_url,
        dialects,
        native_responses,
        upstream_model: raw.upstream_model.clone(),
        api_key,
        headers: raw.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        timeout: raw.timeout,
        connect_timeout: raw.connect_timeout,
        stop: raw.stop.clone(),
        anthropic_beta: raw.anthropic_beta.clone(),
        reasoning_effort: raw.reasoning_effort,
        tokenize_url: raw.tokenize_url.clone(),
    })
}

fn check_http_url(url: &str, path: &str, issues: &mut Issues) {
    match url.parse::<http::Uri>() {
        Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => {
            if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                issues.add(path, "must not carry credentials; use `api_key`");
            }
        }
        _ => issues.add(path, format!("`{url}` is not an http:// or https:// URL")),
    }
}

fn resolve_secret(
    secret: &SecretRef,
    path: &str,
    env: &HashMap<String, String>,
    issues: &mut Issues,
) -> Option<SecretString> {
    let value = match secret {
        SecretRef::Env(var) => match env.get(var) {
            Some(value) if !value.is_empty() => value.clone(),
            _ => {
                issues.add(path, format!("environment variable `{var}` is not set"));
                return None;
            }
        },
        SecretRef::File(file) => match std::fs::read_to_string(file) {
            Ok(value) => value.trim_end_matches(['\n', '\r']).to_owned(),
            Err(e) => {
                issues.add(path, format!("cannot read `{file}`: {e}"));
                return None;
            }
        },
    };
    if http::HeaderValue::from_str(&format!("Bearer {value}")).is_err() {
        issues.add(path, "the secret contains characters not allowed in an HTTP header");
        return None;
    }
    Some(SecretString::from(value))
}
