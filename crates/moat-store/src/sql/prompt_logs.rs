//! Prompt logs and data keys, on every SQL backend.

use std::collections::HashMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Dialect, SqlStore, corrupt};
use crate::StoreError;
use crate::prompt_logs::{Content, PromptLog, Rotation, context};
use crate::sealing::{DataKey, MasterKeys};

/// Rows re-encrypted per read during a rotation.
const ROTATION_BATCH: i64 = 200;

/// How long a retired data key is kept even when nothing uses it: long enough for every
/// running gateway to have picked up the new one.
const RETIRED_KEY_GRACE_MS: i64 = 60 * 60 * 1000;

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    pub(crate) async fn active_data_key(&self, keys: &MasterKeys, now_ms: i64) -> Result<DataKey, StoreError> {
        let row = sqlx::query(
            "SELECT id, master_key_id, wrapped FROM data_keys WHERE retired_at_ms IS NULL \
             ORDER BY created_at_ms DESC, id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            let (id, master, wrapped): (String, String, Vec<u8>) =
                (row.try_get("id")?, row.try_get("master_key_id")?, row.try_get("wrapped")?);
            return Ok(keys.unwrap(&id, &master, &wrapped)?);
        }
        let key = DataKey::generate();
        self.insert_data_key(keys, &key, now_ms).await?;
        Ok(key)
    }

    async fn insert_data_key(&self, keys: &MasterKeys, key: &DataKey, now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO data_keys (id, master_key_id, wrapped, created_at_ms) VALUES ($1, $2, $3, $4)")
            .bind(key.id())
            .bind(keys.current().id())
            .bind(keys.wrap(key))
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every data key, unwrapped, by id.
    async fn all_data_keys(&self, keys: &MasterKeys) -> Result<HashMap<String, (DataKey, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, master_key_id, wrapped FROM data_keys").fetch_all(&self.pool).await?;
        let mut all = HashMap::new();
        for row in rows {
            let (id, master, wrapped): (String, String, Vec<u8>) =
                (row.try_get("id")?, row.try_get("master_key_id")?, row.try_get("wrapped")?);
            let key = keys.unwrap(&id, &master, &wrapped)?;
            all.insert(id, (key, master));
        }
        Ok(all)
    }

    pub(crate) async fn insert_prompt_log(&self, key: &DataKey, log: &PromptLog) -> Result<(), StoreError> {
        let content = Content { request: log.request.as_str().into(), completion: log.completion.as_str().into() };
        let plaintext =
            serde_json::to_vec(&content).map_err(|e| corrupt("prompt_logs", format!("{}: {e}", log.request_id)))?;
        sqlx::query(
            "INSERT INTO prompt_logs (request_id, team_id, created_at_ms, expires_at_ms, data_key_id, sealed) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(log.request_id.as_str())
        .bind(log.team_id.clone())
        .bind(log.created_at_ms)
        .bind(log.expires_at_ms)
        .bind(key.id())
        .bind(key.seal(&context(&log.request_id), &plaintext))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn prompt_log(
        &self,
        keys: &MasterKeys,
        request_id: &str,
    ) -> Result<Option<PromptLog>, StoreError> {
        let row = sqlx::query(
            "SELECT p.request_id, p.team_id, p.created_at_ms, p.expires_at_ms, p.sealed, \
             k.id AS key_id, k.master_key_id, k.wrapped \
             FROM prompt_logs p JOIN data_keys k ON k.id = p.data_key_id WHERE p.request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let (key_id, master, wrapped): (String, String, Vec<u8>) =
            (row.try_get("key_id")?, row.try_get("master_key_id")?, row.try_get("wrapped")?);
        let key = keys.unwrap(&key_id, &master, &wrapped)?;
        let sealed: Vec<u8> = row.try_get("sealed")?;
        let content: Content<'static> = serde_json::from_slice(&key.open(&context(request_id), &sealed)?)
            .map_err(|e| corrupt("prompt_logs", format!("{request_id}: {e}")))?;
        Ok(Some(PromptLog {
            request_id: row.try_get("request_id")?,
            team_id: row.try_get("team_id")?,
            created_at_ms: row.try_get("created_at_ms")?,
            expires_at_ms: row.try_get("expires_at_ms")?,
            request: content.request.into_owned(),
            completion: content.completion.into_owned(),
        }))
    }

    pub(crate) async fn prune_prompt_logs(&self, now_ms: i64) -> Result<u64, StoreError> {
        let done =
            sqlx::query("DELETE FROM prompt_logs WHERE expires_at_ms <= $1").bind(now_ms).execute(&self.pool).await?;
        Ok(DB::rows_affected(&done))
    }

    pub(crate) async fn rotate_data_keys(&self, keys: &MasterKeys, now_ms: i64) -> Result<Rotation, StoreError> {
        // Every existing key must unwrap before anything changes: a missing previous master
        // key stops the rotation here, with nothing half done.
        let mut existing = self.all_data_keys(keys).await?;
        let fresh = DataKey::generate();
        self.insert_data_key(keys, &fresh, now_ms).await?;
        sqlx::query("UPDATE data_keys SET retired_at_ms = $1 WHERE retired_at_ms IS NULL AND id <> $2")
            .bind(now_ms)
            .bind(fresh.id())
            .execute(&self.pool)
            .await?;
        let mut rotation = Rotation { data_key: fresh.id().to_owned(), ..Rotation::default() };
        loop {
            let rows = sqlx::query(
                "SELECT request_id, data_key_id, sealed FROM prompt_logs WHERE data_key_id <> $1 \
                 ORDER BY request_id LIMIT $2",
            )
            .bind(fresh.id())
            .bind(ROTATION_BATCH)
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let (request_id, key_id, sealed): (String, String, Vec<u8>) =
                    (row.try_get("request_id")?, row.try_get("data_key_id")?, row.try_get("sealed")?);
                // A key written by a gateway after `existing` was read: read them all again.
                if !existing.contains_key(&key_id) {
                    existing = self.all_data_keys(keys).await?;
                }
                let (key, _) = existing
                    .get(&key_id)
                    .ok_or_else(|| corrupt("prompt_logs", format!("{request_id}: no data key {key_id}")))?;
                let resealed = fresh.seal(&context(&request_id), &key.open(&context(&request_id), &sealed)?);
                sqlx::query(
                    "UPDATE prompt_logs SET data_key_id = $1, sealed = $2 WHERE request_id = $3 AND data_key_id = $4",
                )
                .bind(fresh.id())
                .bind(resealed)
                .bind(request_id.as_str())
                .bind(key_id.as_str())
                .execute(&self.pool)
                .await?;
                rotation.reencrypted += 1;
            }
        }
        for (id, (key, master)) in self.all_data_keys(keys).await? {
            if master != keys.current().id() {
                sqlx::query("UPDATE data_keys SET master_key_id = $1, wrapped = $2 WHERE id = $3")
                    .bind(keys.current().id())
                    .bind(keys.wrap(&key))
                    .bind(id.as_str())
                    .execute(&self.pool)
                    .await?;
                rotation.rewrapped += 1;
            }
        }
        let deleted = sqlx::query(
            "DELETE FROM data_keys WHERE retired_at_ms IS NOT NULL AND retired_at_ms <= $1 \
             AND NOT EXISTS (SELECT 1 FROM prompt_logs p WHERE p.data_key_id = data_keys.id)",
        )
        .bind(now_ms - RETIRED_KEY_GRACE_MS)
        .execute(&self.pool)
        .await?;
        rotation.deleted = DB::rows_affected(&deleted);
        Ok(rotation)
    }
}
