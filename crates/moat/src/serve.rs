//! `moat serve` and `moat config check`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use moat_server::config::{self, Settings};
use moat_server::{Gateway, Reloader};

/// The environment variable holding the bootstrap admin key.
pub(crate) const ADMIN_KEY_ENV: &str = "MOAT_ADMIN_KEY";

pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Settings> {
    let env: HashMap<String, String> = std::env::vars().collect();
    Ok(config::load(path, &env)?)
}

/// `moat migrate`: applies the store's pending schema migrations (forward only) and says where
/// the schema stands; refuses a schema a newer moat migrated.
pub(crate) async fn migrate(path: Option<&Path>) -> anyhow::Result<()> {
    let settings = load(path)?;
    let before = moat_store::Store::open_with(&settings.store_url, moat_store::Migrations::Check).await;
    let pending = match &before {
        Err(moat_store::StoreError::SchemaBehind(pending)) => pending.clone(),
        Err(other) => anyhow::bail!("{other}"),
        Ok(_) => Vec::new(),
    };
    let store = moat_store::Store::open(&settings.store_url).await.context("migrating the store")?;
    let schema = store.schema().await.context("reading the schema")?;
    let at = schema.applied.last().copied().unwrap_or(0);
    if pending.is_empty() {
        println!("the schema is up to date (migration {at})");
    } else {
        println!("applied migrations {pending:?}; the schema is at migration {at}");
    }
    Ok(())
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
    let shutdown = shutdown_signal()?;
    let watcher = match path {
        Some(path) => Some(config_watcher(path.to_owned(), gateway.reloader())?),
        None => None,
    };
    let served = gateway.serve(listener, shutdown).await.context("serving");
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    served?;
    Ok(())
}

/// How often the config file is compared with what was last loaded.
const CONFIG_POLL: Duration = Duration::from_secs(2);

/// Reloads the config file on SIGHUP and whenever its contents change (polled, which also
/// catches the symlink swaps of mounted Kubernetes ConfigMaps). A file that does not load is
/// rejected with every problem logged, and the running configuration keeps serving.
fn config_watcher(path: PathBuf, reloader: Reloader) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let mut last = std::fs::read(&path).ok();
    #[allow(clippy::disallowed_methods, reason = "the handle is kept, and aborted when serving ends")]
    let task = tokio::spawn(async move {
        let mut poll = tokio::time::interval(CONFIG_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let reason = tokio::select! {
                _ = hangup.recv() => "SIGHUP",
                _ = poll.tick() => "file change",
            };
            #[cfg(not(unix))]
            let reason = {
                poll.tick().await;
                "file change"
            };
            let now = std::fs::read(&path).ok();
            if reason == "file change" && now == last {
                continue;
            }
            last = now;
            match load(Some(&path)) {
                Ok(settings) => match reloader.apply(&settings) {
                    Ok(()) => tracing::info!(
                        reason,
                        deployments = settings.deployments.len(),
                        models = settings.catalog.names().count(),
                        "configuration reloaded"
                    ),
                    Err(error) => {
                        tracing::error!(reason, %error, "config reload rejected; the previous configuration keeps serving");
                    }
                },
                Err(error) => {
                    tracing::error!(reason, %error, "config reload rejected; the previous configuration keeps serving");
                }
            }
        }
    });
    Ok(task)
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
