//! Logged prompts and completions, sealed at rest, and the data keys that seal them.
//!
//! Only teams whose data policy says `prompts = "full"` have their exchanges logged. Each log
//! is sealed (see [`crate::sealing`]) before it is written, kept until its retention ends, and
//! opened only for an admin who asks for that request.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::sealing::{DataKey, MasterKeys};
use crate::{Store, StoreError, on_backend};

/// One request's logged exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLog {
    /// The request id (the usage record's).
    pub request_id: String,
    /// The team whose policy logged it.
    pub team_id: Option<String>,
    /// When the request arrived, Unix milliseconds.
    pub created_at_ms: i64,
    /// When retention ends and the log is deleted, Unix milliseconds.
    pub expires_at_ms: i64,
    /// The request body as the client sent it.
    pub request: String,
    /// The text the model generated.
    pub completion: String,
}

/// What is sealed: the content, apart from the columns that say when and whose. Borrowed
/// when sealed (a request may be megabytes), owned when opened.
#[derive(Serialize, Deserialize)]
pub(crate) struct Content<'a> {
    pub(crate) request: Cow<'a, str>,
    pub(crate) completion: Cow<'a, str>,
}

/// What `moat secrets rotate` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// The fresh data key everything is now sealed under.
    pub data_key: String,
    /// Stored values re-encrypted under it.
    pub reencrypted: u64,
    /// Older data keys re-wrapped under the current master key (kept until nothing uses them).
    pub rewrapped: u64,
    /// Retired data keys deleted because nothing uses them any more.
    pub deleted: u64,
}

/// Where a prompt log's sealed content belongs: opening it anywhere else fails.
pub(crate) fn context(request_id: &str) -> String {
    format!("prompt_logs:{request_id}")
}

impl Store {
    /// The data key new values are sealed with: the newest one not retired, created (wrapped
    /// under the current master key) when there is none.
    pub async fn active_data_key(&self, keys: &MasterKeys, now_ms: i64) -> Result<DataKey, StoreError> {
        on_backend!(self, s => s.active_data_key(keys, now_ms))
    }

    /// Seals and stores one exchange (once: a second log for the same request is ignored).
    pub async fn insert_prompt_log(&self, key: &DataKey, log: &PromptLog) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_prompt_log(key, log))
    }

    /// The exchange logged for `request_id`, opened, if one was logged and is still kept.
    pub async fn prompt_log(&self, keys: &MasterKeys, request_id: &str) -> Result<Option<PromptLog>, StoreError> {
        on_backend!(self, s => s.prompt_log(keys, request_id))
    }

    /// Deletes logs whose retention ended at or before `now_ms`; returns how many went.
    pub async fn prune_prompt_logs(&self, now_ms: i64) -> Result<u64, StoreError> {
        on_backend!(self, s => s.prune_prompt_logs(now_ms))
    }

    /// Seals everything under a fresh data key wrapped by the current master key, re-wraps
    /// the older data keys under it too (so a previous master key can then be dropped), and
    /// deletes retired data keys nothing uses any more that were retired over an hour ago
    /// (a running gateway may still seal with one for up to a minute after a rotation).
    pub async fn rotate_data_keys(&self, keys: &MasterKeys, now_ms: i64) -> Result<Rotation, StoreError> {
        on_backend!(self, s => s.rotate_data_keys(keys, now_ms))
    }
}
