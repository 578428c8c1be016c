//! SQLite: users, teams, memberships and the audit chain.

use moat_core::audit::{AuditEvent, AuditRecord, GENESIS, chain_hash};
use moat_core::{OrgRole, TeamRole, UserKind};
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Row};

use crate::StoreError;
use crate::identity::{AuditFilter, Deactivation, Match, MemberRecord, NewUser, TeamRecord, UserProfile, UserRecord};
use crate::sqlite::SqliteStore;

const USER_COLUMNS: &str = "id, email, name, kind, org_role, active, created_at, deactivated_at, external_id";
const TEAM_COLUMNS: &str = "id, name, created_at, external_id";
const AUDIT_COLUMNS: &str =
    "seq, id, at, actor_user_id, actor_key_id, source, action, target_type, target_id, before, after, prev_hash, hash";

/// A unique-constraint failure becomes a conflict naming `what`; anything else stays a
/// database error.
fn conflict_or(error: sqlx::Error, what: String) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}

fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, StoreError> {
    let kind: String = row.try_get("kind")?;
    let role: String = row.try_get("org_role")?;
    Ok(UserRecord {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        kind: UserKind::parse(&kind).ok_or_else(|| corrupt("users", format!("kind `{kind}`")))?,
        org_role: OrgRole::parse(&role).ok_or_else(|| corrupt("users", format!("role `{role}`")))?,
        active: row.try_get("active")?,
        created_at_ms: row.try_get("created_at")?,
        deactivated_at_ms: row.try_get("deactivated_at")?,
        external_id: row.try_get("external_id")?,
    })
}

fn team_from_row(row: &SqliteRow) -> Result<TeamRecord, StoreError> {
    Ok(TeamRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at_ms: row.try_get("created_at")?,
        external_id: row.try_get("external_id")?,
    })
}

fn member_from_row(row: &SqliteRow) -> Result<MemberRecord, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(MemberRecord {
        team_id: row.try_get("team_id")?,
        user_id: row.try_get("user_id")?,
        role: TeamRole::parse(&role).ok_or_else(|| corrupt("memberships", format!("role `{role}`")))?,
        created_at_ms: row.try_get("created_at")?,
    })
}

fn hash_from(row: &SqliteRow, column: &str) -> Result<[u8; 32], StoreError> {
    let bytes: Vec<u8> = row.try_get(column)?;
    bytes.try_into().map_err(|_| corrupt("audit_log", format!("{column} is not 32 bytes")))
}

fn audit_from_row(row: &SqliteRow) -> Result<AuditRecord, StoreError> {
    Ok(AuditRecord {
        seq: row.try_get("seq")?,
        event: AuditEvent {
            id: row.try_get("id")?,
            at_ms: row.try_get("at")?,
            actor_user_id: row.try_get("actor_user_id")?,
            actor_key_id: row.try_get("actor_key_id")?,
            source: row.try_get("source")?,
            action: row.try_get("action")?,
            target_type: row.try_get("target_type")?,
            target_id: row.try_get("target_id")?,
            before: row.try_get("before")?,
            after: row.try_get("after")?,
        },
        prev_hash: hash_from(row, "prev_hash")?,
        hash: hash_from(row, "hash")?,
    })
}

impl SqliteStore {
    pub(crate) async fn insert_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, kind, org_role, created_at, external_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.name)
        .bind(user.kind.as_str())
        .bind(user.org_role.as_str())
        .bind(user.created_at_ms)
        .bind(&user.external_id)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict_or(e, format!("the e-mail `{}`", user.email)))?;
        self.user_by_id(&user.id).await?.ok_or_else(|| corrupt("users", format!("`{}` vanished", user.id)))
    }

    pub(crate) async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub(crate) async fn list_users(&self, after_id: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id > ? ORDER BY id LIMIT ?"))
            .bind(after_id.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    pub(crate) async fn update_user(
        &self,
        id: &str,
        name: &str,
        role: OrgRole,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("UPDATE users SET name = ?, org_role = ? WHERE id = ?")
            .bind(name)
            .bind(role.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.user_by_id(id).await
    }

    pub(crate) async fn set_user_active(
        &self,
        id: &str,
        active: bool,
        now_ms: i64,
    ) -> Result<Option<Deactivation>, StoreError> {
        // IMMEDIATE takes the write lock up front: a transaction that reads before it writes
        // would otherwise fail outright when another connection wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let changed = sqlx::query(
            "UPDATE users SET active = ?, deactivated_at = CASE WHEN ? THEN NULL ELSE COALESCE(deactivated_at, ?) END \
             WHERE id = ?",
        )
        .bind(active)
        .bind(active)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        let revoked_keys = if active {
            0
        } else {
            sqlx::query("UPDATE keys SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
        };
        tx.commit().await?;
        let user = self.user_by_id(id).await?.ok_or_else(|| corrupt("users", format!("`{id}` vanished")))?;
        Ok(Some(Deactivation { user, revoked_keys }))
    }

    pub(crate) async fn insert_team(&self, team: &TeamRecord) -> Result<TeamRecord, StoreError> {
        sqlx::query("INSERT INTO teams (id, name, created_at, external_id) VALUES (?, ?, ?, ?)")
            .bind(&team.id)
            .bind(&team.name)
            .bind(team.created_at_ms)
            .bind(&team.external_id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, format!("the team name `{}`", team.name)))?;
        Ok(team.clone())
    }

    pub(crate) async fn team_by_id(&self, id: &str) -> Result<Option<TeamRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(team_from_row).transpose()
    }

    pub(crate) async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {TEAM_COLUMNS} FROM teams ORDER BY name")).fetch_all(&self.pool).await?;
        rows.iter().map(team_from_row).collect()
    }

    pub(crate) async fn find_users(
        &self,
        matching: &Match,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<UserRecord>, u64), StoreError> {
        let filter = |query: &mut QueryBuilder<'_, sqlx::Sqlite>| {
            if let Some(email) = &matching.name {
                query.push(" AND email = ").push_bind(email.clone()).push(" COLLATE NOCASE");
            }
            if let Some(external) = &matching.external_id {
                query.push(" AND external_id = ").push_bind(external.clone());
            }
            if let Some(id) = &matching.id {
                query.push(" AND id = ").push_bind(id.clone());
            }
        };
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM users WHERE 1 = 1");
        filter(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut query = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
        filter(&mut query);
        query.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(i64::from(offset));
        let rows = query.build().fetch_all(&self.pool).await?;
        let users = rows.iter().map(user_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn set_user_profile(
        &self,
        id: &str,
        profile: &UserProfile,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("UPDATE users SET email = ?, name = ?, external_id = ? WHERE id = ?")
            .bind(&profile.email)
            .bind(&profile.name)
            .bind(&profile.external_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, format!("the e-mail `{}`", profile.email)))?;
        self.user_by_id(id).await
    }

    pub(crate) async fn find_teams(
        &self,
        matching: &Match,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<TeamRecord>, u64), StoreError> {
        let filter = |query: &mut QueryBuilder<'_, sqlx::Sqlite>| {
            if let Some(name) = &matching.name {
                query.push(" AND name = ").push_bind(name.clone()).push(" COLLATE NOCASE");
            }
            if let Some(external) = &matching.external_id {
                query.push(" AND external_id = ").push_bind(external.clone());
            }
            if let Some(id) = &matching.id {
                query.push(" AND id = ").push_bind(id.clone());
            }
        };
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM teams WHERE 1 = 1");
        filter(&mut count);
        let total: i64 = count.build_query_scalar().fetch_one(&self.pool).await?;
        let mut query = QueryBuilder::new(format!("SELECT {TEAM_COLUMNS} FROM teams WHERE 1 = 1"));
        filter(&mut query);
        query.push(" ORDER BY name LIMIT ").push_bind(i64::from(limit)).push(" OFFSET ").push_bind(i64::from(offset));
        let rows = query.build().fetch_all(&self.pool).await?;
        let teams = rows.iter().map(team_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((teams, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn update_team(
        &self,
        id: &str,
        name: &str,
        external_id: Option<&str>,
    ) -> Result<Option<TeamRecord>, StoreError> {
        sqlx::query("UPDATE teams SET name = ?, external_id = ? WHERE id = ?")
            .bind(name)
            .bind(external_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, format!("the team name `{name}`")))?;
        self.team_by_id(id).await
    }

    pub(crate) async fn delete_team(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        // IMMEDIATE takes the write lock up front: a transaction that reads before it writes
        // would otherwise fail outright when another connection wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM memberships WHERE team_id = ?").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE keys SET revoked_at = COALESCE(revoked_at, ?), team_id = NULL WHERE team_id = ?")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM teams WHERE id = ?").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn put_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (team_id, user_id, role, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (team_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(&member.team_id)
        .bind(&member.user_id)
        .bind(member.role.as_str())
        .bind(member.created_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn remove_member(&self, team_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM memberships WHERE team_id = ? AND user_id = ?")
            .bind(team_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn members_of_team(&self, team_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, user_id, role, created_at FROM memberships WHERE team_id = ? ORDER BY user_id",
        )
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub(crate) async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, user_id, role, created_at FROM memberships WHERE user_id = ? ORDER BY team_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    pub(crate) async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError> {
        // One appender at a time keeps the chain linear; SQLite has one writer anyway.
        let _turn = self.audit_lock.lock().await;
        // IMMEDIATE takes the write lock up front: a transaction that reads before it writes
        // would otherwise fail outright when another connection wrote in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let last =
            sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
        let (seq, prev_hash) = match &last {
            Some(row) => (row.try_get::<i64, _>("seq")? + 1, hash_from(row, "hash")?),
            None => (1, GENESIS),
        };
        let hash = chain_hash(&prev_hash, seq, event);
        sqlx::query(&format!("INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"))
            .bind(seq)
            .bind(&event.id)
            .bind(event.at_ms)
            .bind(&event.actor_user_id)
            .bind(&event.actor_key_id)
            .bind(&event.source)
            .bind(&event.action)
            .bind(&event.target_type)
            .bind(&event.target_id)
            .bind(&event.before)
            .bind(&event.after)
            .bind(prev_hash.as_slice())
            .bind(hash.as_slice())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(AuditRecord { seq, event: event.clone(), prev_hash, hash })
    }

    pub(crate) async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let mut query = QueryBuilder::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
        if let Some(actor) = &filter.actor_user_id {
            query.push(" AND actor_user_id = ").push_bind(actor);
        }
        match filter.action.as_deref() {
            Some(family) if family.ends_with('.') => {
                query.push(" AND substr(action, 1, length(").push_bind(family).push(")) = ").push_bind(family);
            }
            Some(action) => {
                query.push(" AND action = ").push_bind(action);
            }
            None => {}
        }
        if let Some(kind) = &filter.target_type {
            query.push(" AND target_type = ").push_bind(kind);
        }
        if let Some(id) = &filter.target_id {
            query.push(" AND target_id = ").push_bind(id);
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND at >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND at < ").push_bind(to);
        }
        if let Some(before) = filter.before_seq {
            query.push(" AND seq < ").push_bind(before);
        }
        query.push(" ORDER BY seq DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }

    pub(crate) async fn audit_chain(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq")).fetch_all(&self.pool).await?;
        rows.iter().map(audit_from_row).collect()
    }
}
