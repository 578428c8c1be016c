//! Checking a [`RawConfig`] and turning it into runtime [`Settings`].
//!
//! Every check runs, and every failure is reported with its path, so one `moat config check`
//! shows all that needs fixing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use moat_core::{
    BreakerPolicy, CachePolicy, CacheScope, DeploymentId, Dialect, Member, ModelCatalog, ModelRoute, Price, Strategy,
};
use moat_store::UsageWriterConfig;
use moat_upstream::{DeploymentSpec, UpstreamTls};
use secrecy::{ExposeSecret, SecretString};

use super::load::ConfigIssue;
use super::raw::{
    CostConfig, DeploymentConfig, ModelDeployment, PriceConfig, RawConfig, RoutingConfig, SecretRef, TlsConfig,
};

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
    /// How long shutdown keeps accepting with `/readyz` failing.
    pub drain_delay: Duration,
    /// Database URL.
    pub store_url: String,
    /// Whether start-up applies migrations or only checks.
    pub store_migrations: moat_store::Migrations,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter directive.
    pub log_level: String,
    /// Usage writer sizes.
    pub usage_writer: UsageWriterConfig,
    /// How long usage records are kept; `None` keeps them.
    pub usage_retention: Option<Duration>,
    /// How long hourly rollups are kept; `None` keeps them.
    pub rollup_retention: Option<Duration>,
    /// Deployments, indexed by [`DeploymentId`].
    pub deployments: Vec<DeploymentSpec>,
    /// Public model names and their deployments.
    pub catalog: ModelCatalog,
    /// Retries and health.
    pub routing: RoutingSettings,
    /// The SCIM bearer token; `/scim/v2` is served only with one.
    pub scim_token: Option<SecretString>,
    /// Browser sign-in and the device flow.
    pub sign_in: moat_identity::web::WebConfig,
    /// Single sign-on, when configured.
    pub sso: Option<moat_identity::sso::SsoConfig>,
    /// Outgoing mail, when configured.
    pub smtp: Option<moat_identity::mail::MailConfig>,
    /// Redis fan-out, when configured.
    pub redis: Option<crate::fanout::RedisSettings>,
    /// Trace export, when configured.
    pub telemetry: Option<crate::telemetry::TelemetrySettings>,
    /// The shipped price catalog with the config's `[[prices]]` applied.
    pub price_catalog: crate::price_catalog::PriceCatalog,
    /// How budgets and limits are enforced.
    pub admission: super::raw::AdmissionConfig,
    /// Where budget alerts are posted.
    pub webhooks: Vec<crate::alerts::Webhook>,
    /// The frontier models savings are measured against; the first is priced on every record.
    pub references: Vec<crate::price_catalog::Reference>,
    /// The data policy of teams without their own.
    pub policy: moat_core::Policy,
    /// Where sign-on and alert webhooks may connect.
    pub egress: moat_identity::egress::EgressPolicy,
    /// Connection limits and TLS.
    pub listener: crate::listener::ListenerSettings,
    /// Longest a client may take to send a request body.
    pub body_read_timeout: Duration,
    /// The master keys for encryption at rest, when configured.
    pub encryption: Option<moat_store::sealing::MasterKeys>,
}

/// Retries and deployment health.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingSettings {
    /// Most attempts per request, the first included.
    pub max_attempts: u32,
    /// No retry starts after this much time since the request arrived.
    pub retry_deadline: Duration,
    /// First backoff before retrying a deployment already tried.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// When deployments are marked down and for how long.
    pub breaker: BreakerPolicy,
    /// How often active health checks run, if they do.
    pub health_check_interval: Option<Duration>,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        let raw = RoutingConfig::default();
        RoutingSettings {
            max_attempts: raw.max_attempts,
            retry_deadline: raw.retry_deadline,
            backoff_base: raw.backoff_base,
            backoff_max: raw.backoff_max,
            breaker: BreakerPolicy::default(),
            health_check_interval: raw.health_check_interval,
        }
    }
}

pub(super) struct Issues(Vec<ConfigIssue>);

impl Issues {
    pub(super) fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
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
    if !["sqlite:", "postgres:", "postgresql:"].iter().any(|scheme| raw.store.url.starts_with(scheme)) {
        issues.add("store.url", "must be `sqlite://PATH` or `postgres://USER:PASSWORD@HOST:PORT/DATABASE`");
    }
    let store_migrations = match raw.store.migrate.as_str() {
        "auto" => moat_store::Migrations::Apply,
        "check" => moat_store::Migrations::Check,
        other => {
            issues.add("store.migrate", format!("`{other}` is not one of `auto`, `check`"));
            moat_store::Migrations::Apply
        }
    };
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
    if raw.usage.retention.is_some_and(|r| r < Duration::from_secs(86_400)) {
        issues.add("usage.retention", "must be at least a day (e.g. `90d`), or unset to keep every record");
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
    let price_catalog = crate::price_catalog::PriceCatalog::load(raw.prices.clone()).unwrap_or_else(|error| {
        issues.add("prices", error);
        crate::price_catalog::PriceCatalog::default()
    });
    let mut declared = HashSet::new();
    let mut deployment_ids = HashMap::new();
    for (i, deployment) in raw.deployments.iter().enumerate() {
        let path = format!("deployments[{i}]");
        if !declared.insert(deployment.name.as_str()) {
            issues.add(format!("{path}.name"), format!("`{}` is used by another deployment", deployment.name));
            continue;
        }
        if let Some(spec) = validate_deployment(deployment, &path, env, &price_catalog, &mut issues) {
            deployment_ids.insert(spec.name.clone(), DeploymentId(deployments.len()));
            deployments.push(spec);
        }
    }

    let listener = super::validate_security::listener(&raw.server, &mut issues);
    let encryption = super::validate_security::encryption(&raw.encryption, env, &mut issues);
    let policy = super::validate_security::policy(&raw.policy, &declared, encryption.is_some(), &mut issues);
    let egress = super::validate_security::egress(&raw.egress, &mut issues);

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
        let mut members = Vec::new();
        for (j, entry) in model.deployments.iter().enumerate() {
            let name = entry.name();
            let (weight, tier) = match entry {
                ModelDeployment::Name(_) => (1, 0),
                ModelDeployment::Weighted { weight, tier, .. } => (*weight, *tier),
            };
            if weight == 0 {
                issues.add(format!("{path}.deployments[{j}].weight"), "must be at least 1");
            }
            match deployment_ids.get(name) {
                Some(id) => members.push(Member { deployment: *id, weight, tier }),
                None if declared.contains(name) => {}
                None => issues.add(format!("{path}.deployments[{j}]"), format!("no deployment is named `{name}`")),
            }
        }
        let strategy = match model.strategy.as_str() {
            "weighted" => Strategy::Weighted,
            "least_in_flight" => Strategy::LeastInFlight,
            "lowest_latency" => Strategy::LowestLatency,
            "lowest_cost" => Strategy::LowestCost,
            other => {
                issues.add(
                    format!("{path}.strategy"),
                    format!("`{other}` is not one of `weighted`, `least_in_flight`, `lowest_latency`, `lowest_cost`"),
                );
                Strategy::Weighted
            }
        };
        let cache = model.cache.as_ref().and_then(|cache| {
            if cache.ttl.is_zero() {
                issues.add(format!("{path}.cache.ttl"), "must be longer than zero");
            }
            let scope = CacheScope::parse(&cache.scope);
            if scope.is_none() {
                issues.add(
                    format!("{path}.cache.scope"),
                    format!("`{}` is not one of `key`, `user`, `team`, `org`", cache.scope),
                );
            }
            Some(CachePolicy { ttl: cache.ttl, scope: scope? })
        });
        catalog.insert(model.name.clone(), ModelRoute { members, strategy, fallbacks: model.fallbacks.clone(), cache });
        for (j, pattern) in model.aliases.iter().enumerate() {
            if pattern.trim().is_empty() {
                issues.add(format!("{path}.aliases[{j}]"), "must not be empty");
            } else {
                catalog.alias(pattern.clone(), model.name.clone());
            }
        }
    }

    for (i, model) in raw.models.iter().enumerate() {
        for (j, fallback) in model.fallbacks.iter().enumerate() {
            if !model_names.contains(fallback.as_str()) {
                issues.add(format!("models[{i}].fallbacks[{j}]"), format!("no model is named `{fallback}`"));
            } else if *fallback == model.name {
                issues.add(format!("models[{i}].fallbacks[{j}]"), "a model cannot fall back to itself");
            }
        }
    }
    let routing = validate_routing(&raw.routing, &mut issues);
    for (field, value) in [
        ("sign_in.session_idle", raw.sign_in.session_idle),
        ("sign_in.session_lifetime", raw.sign_in.session_lifetime),
        ("sign_in.device_poll_interval", raw.sign_in.device_poll_interval),
        ("sign_in.device_code_lifetime", raw.sign_in.device_code_lifetime),
        ("sign_in.login_key_lifetime", raw.sign_in.login_key_lifetime),
    ] {
        if value.is_zero() {
            issues.add(field, "must be longer than zero");
        }
    }
    let sso = raw.sso.as_ref().and_then(|sso| validate_sso(sso, env, &egress, &mut issues));
    let redis = raw.redis.as_ref().and_then(|redis| {
        if !(redis.url.starts_with("redis://") || redis.url.starts_with("rediss://")) {
            issues.add("redis.url", "must start with `redis://` or `rediss://`");
            return None;
        }
        if redis.key_prefix.trim().is_empty() {
            issues.add("redis.key_prefix", "must not be empty");
        }
        Some(crate::fanout::RedisSettings {
            url: redis.url.clone(),
            channel: redis.channel.clone(),
            key_prefix: redis.key_prefix.clone(),
        })
    });
    let smtp = raw.smtp.as_ref().and_then(|smtp| {
        use moat_identity::mail::{MailConfig, SmtpSecurity};
        let security = match smtp.security.as_str() {
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            "none" => SmtpSecurity::None,
            other => {
                issues.add("smtp.security", format!("`{other}` is not one of `starttls`, `tls`, `none`"));
                return None;
            }
        };
        if !smtp.from.contains('@') {
            issues.add("smtp.from", "must be an e-mail address, e.g. `moat <moat@acme.com>`");
        }
        let password = smtp
            .password
            .as_ref()
            .and_then(|p| resolve_secret(p, "smtp.password", env, &mut issues))
            .map(|p| p.expose_secret().to_owned());
        Some(MailConfig {
            host: smtp.host.clone(),
            port: smtp.port,
            security,
            username: smtp.username.clone(),
            password,
            from: smtp.from.clone(),
        })
    });
    let sign_in = moat_identity::web::WebConfig {
        session_idle: raw.sign_in.session_idle,
        session_lifetime: raw.sign_in.session_lifetime,
        secure_cookies: raw.sign_in.secure_cookies,
        device_poll_interval: raw.sign_in.device_poll_interval,
        device_grant_lifetime: raw.sign_in.device_code_lifetime,
        device_key_lifetime: raw.sign_in.login_key_lifetime,
    };
    let admission = raw.admission.clone();
    for (field, value) in [
        ("admission.reservation_ttl", admission.reservation_ttl),
        ("admission.counter_timeout", admission.counter_timeout),
        ("admission.refresh_interval", admission.refresh_interval),
    ] {
        if value.is_zero() {
            issues.add(field, "must be longer than zero");
        }
    }
    let mut references = Vec::new();
    for (index, reference) in raw.savings.references.iter().enumerate() {
        match price_catalog.get(&reference.model, &reference.provider) {
            Some(row) => references.push(crate::price_catalog::Reference {
                model: row.model.clone(),
                provider: row.provider.clone(),
                price: row.price,
            }),
            None => issues.add(
                format!("savings.references[{index}]"),
                format!(
                    "the price catalog has no `{}` from `{}`; `GET /admin/v1/prices?kind=frontier` lists them, and \
                     `[[prices]]` adds one",
                    reference.model, reference.provider
                ),
            ),
        }
    }
    let mut webhooks = Vec::new();
    for (index, hook) in raw.alerts.webhooks.iter().enumerate() {
        let path = format!("alerts.webhooks[{index}]");
        let url = match &hook.url {
            super::raw::WebhookUrl::Plain(url) => Some(SecretString::from(url.clone())),
            super::raw::WebhookUrl::Secret(secret) => resolve_secret(secret, &format!("{path}.url"), env, &mut issues),
        };
        let url = url.filter(|url| {
            let url = url.expose_secret();
            let ok = url.starts_with("https://") || url.starts_with("http://");
            if !ok {
                issues.add(format!("{path}.url"), "must be an `https://` or `http://` URL");
            } else if let Err(refused) = egress.check_url(url) {
                issues.add(format!("{path}.url"), refused);
                return false;
            }
            ok
        });
        let format = match hook.format.as_str() {
            "json" => crate::alerts::Format::Json,
            "slack" => crate::alerts::Format::Slack,
            _ => {
                issues.add(format!("{path}.format"), "must be `json` or `slack`");
                crate::alerts::Format::Json
            }
        };
        let secret =
            hook.secret.as_ref().and_then(|secret| resolve_secret(secret, &format!("{path}.secret"), env, &mut issues));
        if let Some(url) = url {
            webhooks.push(crate::alerts::Webhook { url, format, secret });
        }
    }
    let telemetry = raw.telemetry.as_ref().and_then(|telemetry| validate_telemetry(telemetry, env, &mut issues));
    let scim_token = raw.scim.token.as_ref().and_then(|secret| resolve_secret(secret, "scim.token", env, &mut issues));
    if scim_token.as_ref().is_some_and(|t| t.expose_secret().len() < 16) {
        issues.add("scim.token", "must have at least 16 characters");
    }

    if !issues.0.is_empty() {
        return Err(issues.0);
    }
    Ok(Settings {
        listen,
        max_body_bytes,
        stream_keepalive: raw.server.stream_keepalive,
        shutdown_grace: raw.server.shutdown_grace,
        drain_delay: raw.server.drain_delay,
        store_url: raw.store.url,
        store_migrations,
        log_format,
        log_level: raw.log.level,
        usage_writer: UsageWriterConfig {
            capacity: raw.usage.channel_capacity,
            max_batch: raw.usage.max_batch,
            batch_delay: raw.usage.batch_delay,
            spool: Some(raw.usage.spool.trim()).filter(|s| !s.is_empty()).map(std::path::PathBuf::from),
            journal: Some(raw.usage.journal.trim()).filter(|s| !s.is_empty()).map(std::path::PathBuf::from),
            journal_fsync: raw.usage.journal_fsync,
            ..UsageWriterConfig::default()
        },
        usage_retention: raw.usage.retention,
        rollup_retention: raw.usage.rollup_retention,
        deployments,
        catalog,
        routing,
        scim_token,
        sign_in,
        sso,
        smtp,
        redis,
        telemetry,
        price_catalog,
        admission,
        webhooks,
        references,
        policy,
        egress,
        encryption,
        listener,
        body_read_timeout: raw.server.body_read_timeout,
    })
}

/// Where a deployment runs: as configured, or presumed from its URL's host.
fn deployment_location(raw: &DeploymentConfig, path: &str, issues: &mut Issues) -> moat_core::Location {
    match raw.location.as_deref() {
        Some("internal") => moat_core::Location::Internal,
        Some("external") => moat_core::Location::External,
        Some(other) => {
            issues.add(format!("{path}.location"), format!("`{other}` is not one of `internal`, `external`"));
            moat_core::Location::External
        }
        None => match raw.url.parse::<http::Uri>() {
            Ok(uri) => uri.host().map_or(moat_core::Location::External, moat_core::Location::presumed_for_host),
            Err(_) => moat_core::Location::External,
        },
    }
}

fn validate_telemetry(
    raw: &super::raw::TelemetryConfig,
    env: &HashMap<String, String>,
    issues: &mut Issues,
) -> Option<crate::telemetry::TelemetrySettings> {
    let endpoint = raw.endpoint.trim_end_matches('/');
    let before = issues.0.len();
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
        issues.add("telemetry.endpoint", "must be an `http://` or `https://` URL, e.g. `http://otel-collector:4318`");
    }
    if !(0.0..=1.0).contains(&raw.sample_ratio) {
        issues.add("telemetry.sample_ratio", "must be between 0.0 and 1.0");
    }
    if raw.service_name.trim().is_empty() {
        issues.add("telemetry.service_name", "must not be empty");
    }
    for (field, value) in
        [("telemetry.export_interval", raw.export_interval), ("telemetry.export_timeout", raw.export_timeout)]
    {
        if value.is_zero() {
            issues.add(field, "must be longer than zero");
        }
    }
    let mut headers = Vec::new();
    for (name, secret) in &raw.headers {
        let path = format!("telemetry.headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            issues.add(path, "is not a valid HTTP header name");
            continue;
        }
        if let Some(value) = resolve_secret(secret, &path, env, issues) {
            headers.push((name.to_ascii_lowercase(), value));
        }
    }
    (issues.0.len() == before).then(|| crate::telemetry::TelemetrySettings {
        traces_url: format!("{endpoint}/v1/traces"),
        service_name: raw.service_name.clone(),
        sample_ratio: raw.sample_ratio,
        headers,
        export_interval: raw.export_interval,
        export_timeout: raw.export_timeout,
    })
}

fn validate_sso(
    raw: &super::raw::SsoConfig,
    env: &HashMap<String, String>,
    egress: &moat_identity::egress::EgressPolicy,
    issues: &mut Issues,
) -> Option<moat_identity::sso::SsoConfig> {
    let before = issues.0.len();
    check_http_url(&raw.issuer, "sso.issuer", issues);
    if let Err(refused) = egress.check_url(&raw.issuer) {
        issues.add("sso.issuer", refused);
    }
    check_http_url(&raw.redirect_url, "sso.redirect_url", issues);
    if raw.client_id.trim().is_empty() {
        issues.add("sso.client_id", "must not be empty");
    }
    if !raw.scopes.iter().any(|s| s == "openid") {
        issues.add("sso.scopes", "must include `openid`");
    }
    let role = |value: &str, path: String, issues: &mut Issues| {
        moat_core::OrgRole::parse(value).or_else(|| {
            issues.add(path, format!("`{value}` is not one of `owner`, `admin`, `member`, `viewer`"));
            None
        })
    };
    let default_role = role(&raw.default_role, "sso.default_role".into(), issues);
    let mut group_roles = BTreeMap::new();
    for (group, value) in &raw.group_roles {
        if let Some(parsed) = role(value, format!("sso.group_roles.{group}"), issues) {
            group_roles.insert(group.clone(), parsed);
        }
    }
    let client_secret = raw
        .client_secret
        .as_ref()
        .and_then(|secret| resolve_secret(secret, "sso.client_secret", env, issues))
        .map(|secret| secret.expose_secret().to_owned());
    (issues.0.len() == before).then(|| moat_identity::sso::SsoConfig {
        issuer: raw.issuer.trim_end_matches('/').to_owned(),
        client_id: raw.client_id.clone(),
        client_secret,
        redirect_url: raw.redirect_url.clone(),
        scopes: raw.scopes.clone(),
        allowed_domains: raw.allowed_domains.clone(),
        groups_claim: raw.groups_claim.clone(),
        default_role: default_role.unwrap_or(moat_core::OrgRole::Member),
        group_roles,
        group_teams: raw.group_teams.clone(),
    })
}

fn validate_routing(raw: &RoutingConfig, issues: &mut Issues) -> RoutingSettings {
    if raw.max_attempts == 0 {
        issues.add("routing.max_attempts", "must be at least 1 (1 means no retries)");
    }
    if raw.backoff_max < raw.backoff_base {
        issues.add("routing.backoff_max", "must not be shorter than `backoff_base`");
    }
    if raw.breaker_failures == 0 {
        issues.add("routing.breaker_failures", "must be at least 1");
    }
    if !(raw.breaker_failure_rate > 0.0 && raw.breaker_failure_rate <= 1.0) {
        issues.add("routing.breaker_failure_rate", "must be above 0 and at most 1");
    }
    if raw.breaker_window == 0 || raw.breaker_min_requests > raw.breaker_window {
        issues.add("routing.breaker_window", "must be at least 1 and at least `breaker_min_requests`");
    }
    if raw.health_check_interval.is_some_and(|i| i.is_zero()) {
        issues.add("routing.health_check_interval", "must be longer than zero when set");
    }
    RoutingSettings {
        max_attempts: raw.max_attempts,
        retry_deadline: raw.retry_deadline,
        backoff_base: raw.backoff_base,
        backoff_max: raw.backoff_max,
        breaker: BreakerPolicy {
            consecutive_failures: raw.breaker_failures,
            failure_rate: raw.breaker_failure_rate,
            window: raw.breaker_window,
            min_requests: raw.breaker_min_requests,
            cooldown: raw.breaker_cooldown,
        },
        health_check_interval: raw.health_check_interval,
    }
}

/// Reads a deployment's TLS files; each must hold PEM. The key is kept as a secret.
fn validate_tls(raw: &TlsConfig, path: &str, issues: &mut Issues) -> UpstreamTls {
    let mut read = |file: &Option<String>, field: &str| -> Option<String> {
        let file = file.as_ref()?;
        match std::fs::read_to_string(file) {
            Ok(text) if text.contains("-----BEGIN ") => Some(text),
            Ok(_) => {
                issues.add(format!("{path}.tls.{field}"), format!("`{file}` holds no PEM data"));
                None
            }
            Err(e) => {
                issues.add(format!("{path}.tls.{field}"), format!("cannot read `{file}`: {e}"));
                None
            }
        }
    };
    let ca_pem = read(&raw.ca_file, "ca_file");
    let cert = read(&raw.client_cert_file, "client_cert_file");
    let key = read(&raw.client_key_file, "client_key_file");
    if raw.client_cert_file.is_some() != raw.client_key_file.is_some() {
        issues.add(format!("{path}.tls"), "`client_cert_file` and `client_key_file` go together");
    }
    let client_identity_pem = match (cert, key) {
        (Some(cert), Some(key)) => Some(SecretString::from(format!("{key}\n{cert}"))),
        _ => None,
    };
    UpstreamTls { ca_pem, client_identity_pem }
}

/// Dollars in config, micro-dollars in moat: `None` (reported) unless within 0..=1,000,000.
fn dollars_to_micros(value: f64, field: &str, issues: &mut Issues) -> Option<u64> {
    if !(value.is_finite() && (0.0..=1_000_000.0).contains(&value)) {
        issues.add(field, "must be a number of dollars from 0 to 1000000");
        return None;
    }
    // The range check keeps the product within 0..=10^12, which a u64 holds exactly.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "range checked above")]
    let micros = (value * 1_000_000.0).round() as u64;
    Some(micros)
}

/// A self-hosted cost model: a flat `per_mtok`, or GPUs over their throughput.
fn validate_cost(
    raw: &CostConfig,
    path: &str,
    prices: &crate::price_catalog::PriceCatalog,
    issues: &mut Issues,
) -> Option<moat_core::CostModel> {
    let field = |name: &str| format!("{path}.cost.{name}");
    if let Some(per_mtok) = raw.per_mtok {
        if raw.gpus.is_some() || raw.gpu.is_some() || raw.gpu_hour_usd.is_some() || raw.tokens_per_hour.is_some() {
            issues.add(field("per_mtok"), "a flat `per_mtok` takes no GPU fields");
        }
        return dollars_to_micros(per_mtok, &field("per_mtok"), issues).map(moat_core::CostModel::PerMillionTokens);
    }
    let gpus = raw.gpus.filter(|&n| n > 0);
    if gpus.is_none() {
        issues.add(field("gpus"), "must be at least 1 (or give a flat `per_mtok`)");
    }
    let tokens_per_hour = raw.tokens_per_hour.filter(|&n| n > 0);
    if tokens_per_hour.is_none() {
        issues.add(field("tokens_per_hour"), "must be at least 1: the throughput the GPUs serve, measured");
    }
    let per_gpu_hour = match (&raw.gpu_hour_usd, &raw.gpu) {
        (Some(usd), _) => dollars_to_micros(*usd, &field("gpu_hour_usd"), issues),
        (None, Some(gpu)) => {
            let rates = prices.gpus().iter().filter(|rate| {
                rate.gpu == *gpu && raw.gpu_provider.as_ref().is_none_or(|provider| rate.provider == *provider)
            });
            let cheapest = rates.map(|rate| rate.per_hour).min();
            if cheapest.is_none() {
                let known: std::collections::BTreeSet<&str> = prices.gpus().iter().map(|r| r.gpu.as_str()).collect();
                issues.add(
                    field("gpu"),
                    format!(
                        "the price catalog has no rate for `{gpu}`{}; it knows {}",
                        raw.gpu_provider.as_ref().map(|p| format!(" at `{p}`")).unwrap_or_default(),
                        known.into_iter().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            cheapest
        }
        (None, None) => {
            issues.add(field("gpu"), "name a catalog `gpu` or give `gpu_hour_usd`");
            None
        }
    };
    Some(moat_core::CostModel::Gpu { gpus: gpus?, per_gpu_hour: per_gpu_hour?, tokens_per_hour: tokens_per_hour? })
}

/// Dollars per million tokens in config, micro-dollars in moat.
fn validate_price(raw: Option<&PriceConfig>, path: &str, issues: &mut Issues) -> Price {
    let Some(raw) = raw else { return Price::default() };
    let mut micros =
        |value: f64, field: &str| dollars_to_micros(value, &format!("{path}.price.{field}"), issues).unwrap_or(0);
    Price {
        input: micros(raw.input, "input"),
        output: micros(raw.output, "output"),
        cache_read: micros(raw.cache_read, "cache_read"),
        cache_write: micros(raw.cache_write, "cache_write"),
        reasoning: raw.reasoning.map(|value| micros(value, "reasoning")),
    }
}

fn validate_deployment(
    raw: &DeploymentConfig,
    path: &str,
    env: &HashMap<String, String>,
    prices: &crate::price_catalog::PriceCatalog,
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
    for (field, limit) in [("first_byte_timeout", raw.first_byte_timeout), ("idle_timeout", raw.idle_timeout)] {
        if limit.is_zero() {
            issues.add(format!("{path}.{field}"), "must be longer than zero");
        }
    }
    if raw.context_window == Some(0) {
        issues.add(format!("{path}.context_window"), "must be at least 1 token when set");
    }
    let cost_model = raw.cost.as_ref().and_then(|cost| validate_cost(cost, path, prices, issues));
    if raw.price.is_some() && raw.cost.is_some() {
        issues.add(format!("{path}.cost"), "a deployment has a list `price` or a self-hosted `cost`, not both");
    }
    let price = match cost_model {
        Some(model) => model.price(),
        None => validate_price(raw.price.as_ref(), path, issues),
    };
    let tls = raw.tls.as_ref().map(|tls| validate_tls(tls, path, issues)).unwrap_or_default();
    let location = deployment_location(raw, path, issues);
    if let Some(url) = &raw.tokenize_url {
        check_http_url(url, &format!("{path}.tokenize_url"), issues);
    }
    if let Some(url) = &raw.health_check_url {
        check_http_url(url, &format!("{path}.health_check_url"), issues);
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
        first_byte_timeout: raw.first_byte_timeout,
        idle_timeout: raw.idle_timeout,
        context_window: raw.context_window,
        price,
        cost_model,
        tls,
        health_check_url: Some(
            raw.health_check_url.clone().unwrap_or_else(|| format!("{}/models", raw.url.trim_end_matches('/'))),
        ),
        stop: raw.stop.clone(),
        anthropic_beta: raw.anthropic_beta.clone(),
        reasoning_effort: raw.reasoning_effort,
        tokenize_url: raw.tokenize_url.clone(),
        location,
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

pub(super) fn resolve_secret(
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
