//! SQLite: passwords, sessions and device grants.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::sign_in::{DeviceGrant, SessionRecord, SsoLogin, grant_status};
use crate::sqlite::SqliteStore;
use crate::{StoreError, UserRecord};

fn grant_from_row(row: &SqliteRow) -> Result<DeviceGrant, StoreError> {
    let status: String = row.try_get("status")?;
    Ok(DeviceGrant {
        device_code_hash: row.try_get("device_code_hash")?,
        user_code: row.try_get("user_code")?,
        client_name: row.try_get("client_name")?,
        created_at_ms: row.try_get("created_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        interval_secs: row.try_get("interval_secs")?,
        last_polled_at_ms: row.try_get("last_polled_at")?,
        status: grant_status(&status)?,
        user_id: row.try_get("user_id")?,
    })
}

impl SqliteStore {
    pub(crate) async fn insert_sso_login(&self, login: &SsoLogin) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sso_logins (state_hash, nonce, verifier, next, expires_at) VALUES (?, ?, ?, ?, ?)")
            .bind(&login.state_hash)
            .bind(&login.nonce)
            .bind(&login.verifier)
            .bind(&login.next)
            .bind(login.expires_at_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn take_sso_login(&self, state_hash: &[u8]) -> Result<Option<SsoLogin>, StoreError> {
        let row = sqlx::query(
            "DELETE FROM sso_logins WHERE state_hash = ? RETURNING state_hash, nonce, verifier, next, expires_at",
        )
        .bind(state_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SsoLogin {
                state_hash: row.try_get("state_hash")?,
                nonce: row.try_get("nonce")?,
                verifier: row.try_get("verifier")?,
                next: row.try_get("next")?,
                expires_at_ms: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn set_password_hash(&self, user_id: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn user_for_sign_in(
        &self,
        email: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>, StoreError> {
        let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = ? COLLATE NOCASE")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id")?;
        let hash: Option<String> = row.try_get("password_hash")?;
        Ok(self.user_by_id(&id).await?.map(|user| (user, hash)))
    }

    pub(crate) async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&session.id_hash)
        .bind(&session.user_id)
        .bind(&session.csrf)
        .bind(session.created_at_ms)
        .bind(session.last_seen_at_ms)
        .bind(session.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id_hash, user_id, csrf, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = ?",
        )
        .bind(id_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SessionRecord {
                id_hash: row.try_get("id_hash")?,
                user_id: row.try_get("user_id")?,
                csrf: row.try_get("csrf")?,
                created_at_ms: row.try_get("created_at")?,
                last_seen_at_ms: row.try_get("last_seen_at")?,
                expires_at_ms: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub(crate) async fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE id_hash = ?")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?").bind(id_hash).execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn insert_grant(&self, grant: &DeviceGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_grants (device_code_hash, user_code, client_name, created_at, expires_at, interval_secs, \
             status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
        )
        .bind(&grant.device_code_hash)
        .bind(&grant.user_code)
        .bind(&grant.client_name)
        .bind(grant.created_at_ms)
        .bind(grant.expires_at_ms)
        .bind(grant.interval_secs)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn grant_by(&self, column: &'static str, value: &[u8]) -> Result<Option<DeviceGrant>, StoreError> {
        let query = format!("SELECT * FROM device_grants WHERE {column} = ?");
        let row = if column == "user_code" {
            sqlx::query(&query).bind(String::from_utf8_lossy(value).into_owned()).fetch_optional(&self.pool).await?
        } else {
            sqlx::query(&query).bind(value).fetch_optional(&self.pool).await?
        };
        row.as_ref().map(grant_from_row).transpose()
    }

    pub(crate) async fn move_grant(
        &self,
        device_code_hash: &[u8],
        from: &str,
        to: &str,
        user_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE device_grants SET status = ?, user_id = COALESCE(?, user_id) WHERE device_code_hash = ? AND status = ?",
        )
        .bind(to)
        .bind(user_id)
        .bind(device_code_hash)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn poll_grant(&self, device_code_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE device_grants SET last_polled_at = ? WHERE device_code_hash = ?")
            .bind(now_ms)
            .bind(device_code_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
