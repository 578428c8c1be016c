//! The `[server]` section: the listener, its limits and TLS.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Loopback by default; use `0.0.0.0:4000` to accept
    /// connections from other machines.
    pub listen: String,
    /// Largest request body accepted, in bytes. Coding agents send multi-megabyte
    /// conversations, so the default is generous (32 MiB).
    pub max_body_bytes: u64,
    /// After this long without a byte from the upstream, a stream gets an SSE comment line
    /// (`: keep-alive`), which every client ignores, so proxies and load balancers between
    /// moat and the client do not drop it while a long prompt is processed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub stream_keepalive: Duration,
    /// On shutdown, how long in-flight requests and streams may run before they are cut.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub shutdown_grace: Duration,
    /// On shutdown, how long moat keeps accepting requests while `/readyz` already answers
    /// 503, so a load balancer takes it out of rotation before it stops accepting (no client
    /// then meets a refused or reset connection). Set it to the balancer's health-check
    /// interval times its failure threshold; behind none, leave it at zero.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub drain_delay: Duration,
    /// Most client connections open at once; one more is closed as soon as it is accepted
    /// (and counted in `moat_connections_refused_total`), so a flood cannot exhaust memory or
    /// file descriptors. Streams hold a connection each: size it above your peak of concurrent
    /// agents.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers (and, over TLS, to finish the
    /// handshake) before its connection is closed: a slow-headers (slowloris) client cannot
    /// hold a connection open.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body; a slower one gets 408
    /// `request_timeout`. Generous by default: coding agents send multi-megabyte bodies.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub body_read_timeout: Duration,
    /// Most header fields in one request; more is answered 431.
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes; larger is answered 431
    /// (HTTP/1) or refused (HTTP/2). At least 8192.
    pub max_header_bytes: usize,
    /// TLS termination in moat. Without it moat speaks plain HTTP (put it behind a
    /// TLS-terminating proxy, or keep it on loopback).
    pub tls: Option<ServerTlsConfig>,
}

/// `[server.tls]`: the certificate moat serves HTTPS with.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM file of the server certificate, followed by any intermediates.
    pub cert_file: String,
    /// PEM file of its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// How often the two files are checked for a renewed certificate (cert-manager, certbot),
    /// which then serves new connections without a restart; SIGHUP checks at once. A renewal
    /// that does not load (a bad file, a key that does not match) is logged and the current
    /// certificate kept.
    #[serde(default = "default_tls_reload_interval", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub reload_interval: Duration,
    /// `Strict-Transport-Security` max-age sent on every response, telling browsers to use
    /// only HTTPS for this host; zero sends none.
    #[serde(default = "default_hsts_max_age", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub hsts_max_age: Duration,
}

fn default_tls_reload_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_hsts_max_age() -> Duration {
    Duration::from_secs(365 * 24 * 3600)
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:4000".into(),
            max_body_bytes: 32 * 1024 * 1024,
            stream_keepalive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
            drain_delay: Duration::ZERO,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(300),
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            tls: None,
        }
    }
}
