//! Full prompt logging: sealing each exchange of a team whose policy asks for it, and opening
//! one for an admin.
//!
//! The vault exists only when `[encryption] key` is configured, so a prompt is never stored in
//! the clear. Sealing happens in the request's settlement task, after its usage record is
//! queued, so logging never delays a response. The data key in use is re-read with the data
//! policies (`[admission] refresh_interval`), which is how a `moat secrets rotate` reaches
//! running replicas.

use std::time::Duration;

use arc_swap::ArcSwap;
use moat_store::sealing::{DataKey, MasterKeys};
use moat_store::{PromptLog, Store, StoreError};

/// Attempts to store one exchange before it is given up (and counted) as lost: with the
/// backoff doubling from [`FIRST_BACKOFF`], about eight seconds of a database that is down
/// (a failover, a restart), well inside shutdown's drain deadline.
const ATTEMPTS: u32 = 6;
/// The wait after the first failed attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);

/// The master keys and the data key exchanges are sealed with now.
#[derive(Debug)]
pub(crate) struct PromptVault {
    keys: MasterKeys,
    active: ArcSwap<DataKey>,
}

impl PromptVault {
    /// Unwraps (or creates) the data key in use. Fails when a stored data key needs a master
    /// key that is not configured.
    pub(crate) async fn open(store: &Store, keys: MasterKeys) -> Result<Self, StoreError> {
        let active = store.active_data_key(&keys, crate::time::now_ms()).await?;
        Ok(PromptVault { keys, active: ArcSwap::from_pointee(active) })
    }

    /// Picks up the data key a rotation made.
    pub(crate) async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let active = store.active_data_key(&self.keys, crate::time::now_ms()).await?;
        if active.id() != self.active.load().id() {
            self.active.store(std::sync::Arc::new(active));
        }
        Ok(())
    }

    /// Seals and stores one exchange, retrying with backoff while the database is
    /// unavailable. Whether it was stored.
    pub(crate) async fn keep(&self, store: &Store, log: &PromptLog) -> bool {
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            let key = self.active.load_full();
            match store.insert_prompt_log(&key, log).await {
                Ok(()) => return true,
                Err(error) if attempt == ATTEMPTS => {
                    tracing::error!(request_id = %log.request_id, %error, "a prompt log could not be stored");
                }
                Err(error) => {
                    tracing::warn!(request_id = %log.request_id, %error, "storing a prompt log failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
            }
        }
        false
    }

    /// The exchange logged for `request_id`, opened, unless there is none or its retention
    /// has ended.
    pub(crate) async fn read(
        &self,
        store: &Store,
        request_id: &str,
        now_ms: i64,
    ) -> Result<Option<PromptLog>, StoreError> {
        Ok(store.prompt_log(&self.keys, request_id).await?.filter(|log| log.expires_at_ms > now_ms))
    }
}
