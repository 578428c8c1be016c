//! `moat secrets`: the master key for encryption at rest.
//!
//! `generate-key` prints a new random master key. `rotate` re-encrypts everything moat keeps
//! encrypted under a fresh data key wrapped by `[encryption] key`, and re-wraps the older data
//! keys under it, after which the keys listed in `previous_keys` can be removed. It runs
//! against the store directly (like `moat migrate`), safely beside running gateways.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

/// `moat secrets` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum SecretsCommand {
    /// Print a new random master key (32 bytes, base64) for `[encryption] key`.
    GenerateKey,
    /// Re-encrypt everything stored encrypted under the current `[encryption] key`, so that
    /// `previous_keys` can then be removed. Safe while gateways run.
    Rotate {
        /// Configuration file (TOML), for the store and the keys.
        #[arg(long, short, env = "MOAT_CONFIG")]
        config: Option<PathBuf>,
    },
}

pub(crate) async fn run(command: SecretsCommand) -> anyhow::Result<()> {
    match command {
        SecretsCommand::GenerateKey => {
            println!("{}", moat_store::sealing::MasterKey::generate_text());
            Ok(())
        }
        SecretsCommand::Rotate { config } => rotate(config).await,
    }
}

async fn rotate(config: Option<PathBuf>) -> anyhow::Result<()> {
    let settings = crate::serve::load(config.as_deref())?;
    let Some(keys) = settings.encryption else {
        anyhow::bail!("no master key: set [encryption] key (and previous_keys, for the keys it replaces)");
    };
    let store = moat_store::Store::open_with(&settings.store_url, moat_store::Migrations::Check)
        .await
        .context("opening the store")?;
    let now_ms = i64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
    )
    .unwrap_or(i64::MAX);
    let rotation = store.rotate_data_keys(&keys, now_ms).await.context("rotating the data keys")?;
    println!(
        "everything is now encrypted under data key {} (master key {}): {} value{} re-encrypted, {} data key{} \
         re-wrapped, {} retired data key{} deleted; previous_keys may now be removed",
        rotation.data_key,
        keys.current().id(),
        rotation.reencrypted,
        plural(rotation.reencrypted),
        rotation.rewrapped,
        plural(rotation.rewrapped),
        rotation.deleted,
        plural(rotation.deleted),
    );
    Ok(())
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}
