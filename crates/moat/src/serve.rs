//! `moat serve` and `moat config check`.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use moat_server::Gateway;
use moat_server::config::{self, Settings};

/// The environment variable holding the bootstrap admin key.
pub(crate) const ADMIN_KEY_ENV: &str = "MOAT_ADMIN_KEY";

fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(config::load(path, &env)?)
}

pub(crate) fn check(path: &Path) -> anyhow::Result<()> {
    let settings = load(Some(path))?;
    println!(
        "{}: ok ({} deployment{}, {} model{})",
        path.display(),
        settings.deployments.len(),
        if settings.deployments.len() == 1 { "" } else { "s" },
        settings.catalog.names().count(),
        if settings.catalog.names().count() == 1 { "" } else { "s" },
    );
    Ok(())
}

pub(crate) async fn run(path: Option<&Path>) -> anyhow::Result<()> {
    let settings = load(path)?;
    crate::logging::init(settings.log_format, &settings.log_level);
    let listen = settings.listen;
    let admin_key = std::env::var(ADMIN_KEY_ENV).ok().filter(|k| !k.is_empty());
    let (gateway, bootstrap_key) = Gateway::start(settings, admin_key.as_deref()).await.context("starting moat")?;
    if let Some(secret) = bootstrap_key {
        // Shown once, on the terminal only: it is never logged or stored in clear.
        eprintln!(
            "\n  No admin key existed, so moat created one. It is shown only this once:\n\n    {secret}\n\n  \
             Use it as MOAT_ADMIN_KEY with `moat keys ...`, or set MOAT_ADMIN_KEY before `moat serve`.\n"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    gateway.serve(listener, shutdown_signal()?).await.context("serving")?;
    Ok(())
}

/// A future that completes on SIGINT or SIGTERM. The handlers are installed here, before the
/// server announces it is listening, so a signal sent right after start-up is never lost.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
