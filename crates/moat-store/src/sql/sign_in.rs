//! Sign-in state (passwords, SSO logins, browser sessions, device grants) and invitations,
//! on every SQL backend.

use moat_core::{OrgRole, TeamRole};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::statement::Statement;
use super::{Dialect, SqlStore};
use crate::invitations::Invitation;
use crate::sign_in::{DeviceGrant, SessionRecord, SsoLogin, grant_status};
use crate::{StoreError, UserRecord};

const INVITATION_COLUMNS: &str =
    "id, token_hash, email, org_role, team_id, team_role, invited_by, created_at, expires_at, accepted_at, revoked_at";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    pub(crate) async fn insert_sso_login(&self, login: &SsoLogin) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO sso_logins (state_hash, nonce, verifier, next, expires_at) VALUES ($1, $2, $3, $4, $5)",
        )
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
            "DELETE FROM sso_logins WHERE state_hash = $1 RETURNING state_hash, nonce, verifier, next, expires_at",
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
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn user_for_sign_in(
        &self,
        email: &str,
    ) -> Result<Option<(UserRecord, Option<String>)>, StoreError> {
        let (before, after) = DB::nocase_eq("email");
        let row = sqlx::query(&format!("SELECT id, password_hash FROM users WHERE {before}$1{after}"))
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
            "INSERT INTO sessions (id_hash, user_id, csrf, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
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
            "SELECT id_hash, user_id, csrf, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = $1",
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
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
            .bind(now_ms)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1").bind(id_hash).execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn insert_grant(&self, grant: &DeviceGrant) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_grants (device_code_hash, user_code, client_name, created_at, expires_at, interval_secs, \
             status) VALUES ($1, $2, $3, $4, $5, $6, 'pending')",
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
        let query = format!("SELECT * FROM device_grants WHERE {column} = $1");
        let row = if column == "user_code" {
            sqlx::query(&query).bind(String::from_utf8_lossy(value).into_owned()).fetch_optional(&self.pool).await?
        } else {
            sqlx::query(&query).bind(value).fetch_optional(&self.pool).await?
        };
        row.as_ref().map(Self::grant_from_row).transpose()
    }

    pub(crate) async fn move_grant(
        &self,
        device_code_hash: &[u8],
        from: &str,
        to: &str,
        user_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE device_grants SET status = $1, user_id = COALESCE($2, user_id) WHERE device_code_hash = $3 AND status = $4",
        )
        .bind(to)
        .bind(user_id)
        .bind(device_code_hash)
        .bind(from)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    pub(crate) async fn poll_grant(&self, device_code_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE device_grants SET last_polled_at = $1 WHERE device_code_hash = $2")
            .bind(now_ms)
            .bind(device_code_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub(crate) async fn insert_invitation(&self, i: &Invitation) -> Result<(), StoreError> {
        sqlx::query(&format!(
            "INSERT INTO invitations ({INVITATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)"
        ))
        .bind(&i.id)
        .bind(&i.token_hash)
        .bind(&i.email)
        .bind(i.org_role.as_str())
        .bind(i.team.as_ref().map(|(team, _)| team.clone()))
        .bind(i.team.as_ref().map(|(_, role)| role.as_str()))
        .bind(&i.invited_by)
        .bind(i.created_at_ms)
        .bind(i.expires_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn invitation_where(
        &self,
        column: &'static str,
        value: Vec<u8>,
    ) -> Result<Option<Invitation>, StoreError> {
        let query = format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE {column} = $1");
        let row = if column == "id" {
            sqlx::query(&query).bind(String::from_utf8_lossy(&value).into_owned()).fetch_optional(&self.pool).await?
        } else {
            sqlx::query(&query).bind(value).fetch_optional(&self.pool).await?
        };
        row.as_ref().map(Self::invitation_from_row).transpose()
    }

    pub(crate) async fn open_invitation_for(&self, email: &str, now_ms: i64) -> Result<Option<Invitation>, StoreError> {
        let (before, after) = DB::nocase_eq("email");
        let row = sqlx::query(&format!(
            "SELECT {INVITATION_COLUMNS} FROM invitations WHERE {before}$1{after} AND accepted_at IS NULL AND revoked_at IS NULL \
             AND expires_at > $2 ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(email)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::invitation_from_row).transpose()
    }

    pub(crate) async fn list_invitations(
        &self,
        open_at: Option<i64>,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut query = Statement::new(format!("SELECT {INVITATION_COLUMNS} FROM invitations WHERE 1 = 1"));
        if let Some(now) = open_at {
            query.push(" AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > ").bind(now);
        }
        if let Some(before) = before_id {
            query.push(" AND id < ").bind(before.to_owned());
        }
        query.push(" ORDER BY id DESC LIMIT ").bind(i64::from(limit));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        rows.iter().map(Self::invitation_from_row).collect()
    }

    pub(crate) async fn close_invitation(&self, id: &str, now_ms: i64, revoke: bool) -> Result<bool, StoreError> {
        let column = if revoke { "revoked_at" } else { "accepted_at" };
        let done = sqlx::query(&format!(
            "UPDATE invitations SET {column} = $1 WHERE id = $2 AND accepted_at IS NULL AND revoked_at IS NULL"
        ))
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) == 1)
    }

    fn grant_from_row(row: &DB::Row) -> Result<DeviceGrant, StoreError> {
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

    fn invitation_from_row(row: &DB::Row) -> Result<Invitation, StoreError> {
        let corrupt = |detail: String| StoreError::Corrupt { table: "invitations", detail };
        let role: String = row.try_get("org_role")?;
        let team_id: Option<String> = row.try_get("team_id")?;
        let team_role: Option<String> = row.try_get("team_role")?;
        let team = match (team_id, team_role) {
            (Some(team), Some(role)) => {
                Some((team, TeamRole::parse(&role).ok_or_else(|| corrupt(format!("team role `{role}`")))?))
            }
            _ => None,
        };
        Ok(Invitation {
            id: row.try_get("id")?,
            token_hash: row.try_get("token_hash")?,
            email: row.try_get("email")?,
            org_role: OrgRole::parse(&role).ok_or_else(|| corrupt(format!("role `{role}`")))?,
            team,
            invited_by: row.try_get("invited_by")?,
            created_at_ms: row.try_get("created_at")?,
            expires_at_ms: row.try_get("expires_at")?,
            accepted_at_ms: row.try_get("accepted_at")?,
            revoked_at_ms: row.try_get("revoked_at")?,
        })
    }
}
