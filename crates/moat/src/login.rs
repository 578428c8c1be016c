//! `moat login --server URL`: the OAuth 2.0 device authorization grant (RFC 8628). moat shows a
//! code and a URL; the person approves in the browser (signed in, through SSO where it is
//! set up); the CLI's poll then receives a personal, expiring key, saved for `moat setup`.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;

use crate::credentials::{self, Credentials};

/// The grant type of RFC 8628 §3.4.
const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `moat login` options.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    /// moat's base URL.
    #[arg(long, env = "MOAT_SERVER")]
    server: String,
}

#[derive(Debug, Deserialize)]
struct DeviceCode {
    device_code: String,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_in: u64,
    interval: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Token {
    access_token: String,
    expires_in: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TokenError {
    error: String,
    error_description: Option<String>,
}

pub(crate) async fn run(args: LoginArgs) -> anyhow::Result<()> {
    let server = args.server.trim_end_matches('/').to_owned();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{server}/oauth/device/code"))
        .form(&[("client_id", "moat CLI")])
        .send()
        .await
        .with_context(|| format!("cannot reach moat at {server}"))?;
    if !response.status().is_success() {
        bail!("moat refused to start a sign-in ({})", response.status());
    }
    let code: DeviceCode = response.json().await.context("moat's answer is not a device code")?;
    let open = code.verification_uri_complete.as_deref().unwrap_or(&code.verification_uri);
    eprintln!(
        "To sign in, open {open}\nand check that it shows the code {}\n(or go to {} and type the code). Waiting…",
        code.user_code, code.verification_uri
    );
    let mut interval = Duration::from_secs(code.interval.unwrap_or(5).max(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(code.expires_in);
    loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() >= deadline {
            bail!("the code expired before it was approved; run `moat login` again");
        }
        let response = http
            .post(format!("{server}/oauth/token"))
            .form(&[("grant_type", DEVICE_GRANT_TYPE), ("device_code", &code.device_code), ("client_id", "moat CLI")])
            .send()
            .await
            .with_context(|| format!("cannot reach moat at {server}"))?;
        if response.status().is_success() {
            let token: Token = response.json().await.context("moat's answer is not a token")?;
            let expires_at = token.expires_in.map(|secs| {
                let at =
                    time::OffsetDateTime::now_utc() + time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX));
                at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            });
            let saved =
                credentials::save(&Credentials { server: server.clone(), key: token.access_token, expires_at })?;
            eprintln!(
                "Signed in. Your personal key is saved in {}.\nNext: `moat setup claude-code` (or codex, opencode, aider, continue, env).",
                saved.display()
            );
            return Ok(());
        }
        let error: TokenError = response.json().await.context("moat's answer is not an OAuth error")?;
        match error.error.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            "access_denied" => bail!("the sign-in was denied in the browser"),
            "expired_token" => bail!("the code expired before it was approved; run `moat login` again"),
            other => bail!("moat refused the sign-in: {other} ({})", error.error_description.unwrap_or_default()),
        }
    }
}
