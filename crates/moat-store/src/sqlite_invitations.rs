//! SQLite: invitations.

use moat_core::{OrgRole, TeamRole};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::StoreError;
use crate::invitations::Invitation;
use crate::sqlite::SqliteStore;

const COLUMNS: &str =
    "id, token_hash, email, org_role, team_id, team_role, invited_by, created_at, expires_at, accepted_at, revoked_at";

fn from_row(row: &SqliteRow) -> Result<Invitation, StoreError> {
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

impl SqliteStore {
    pub(crate) async fn insert_invitation(&self, i: &Invitation) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO invitations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)"))
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
        let query = format!("SELECT {COLUMNS} FROM invitations WHERE {column} = ?");
        let row = if column == "id" {
            sqlx::query(&query).bind(String::from_utf8_lossy(&value).into_owned()).fetch_optional(&self.pool).await?
        } else {
            sqlx::query(&query).bind(value).fetch_optional(&self.pool).await?
        };
        row.as_ref().map(from_row).transpose()
    }

    pub(crate) async fn open_invitation_for(&self, email: &str, now_ms: i64) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM invitations WHERE email = ? AND accepted_at IS NULL AND revoked_at IS NULL \
             AND expires_at > ? ORDER BY created_at DESC LIMIT 1"
        ))
        .bind(email)
        .bind(now_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    pub(crate) async fn list_invitations(&self) -> Result<Vec<Invitation>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM invitations ORDER BY created_at DESC, id DESC"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub(crate) async fn close_invitation(&self, id: &str, now_ms: i64, revoke: bool) -> Result<bool, StoreError> {
        let column = if revoke { "revoked_at" } else { "accepted_at" };
        let done = sqlx::query(&format!(
            "UPDATE invitations SET {column} = ? WHERE id = ? AND accepted_at IS NULL AND revoked_at IS NULL"
        ))
        .bind(now_ms)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
