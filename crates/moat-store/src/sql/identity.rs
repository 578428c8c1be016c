//! Users, teams, memberships and the audit chain, on every SQL backend.

use moat_core::audit::{AuditEvent, AuditRecord, GENESIS, chain_hash};
use moat_core::{OrgRole, TeamRole, UserKind};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::statement::{Param, Statement};
use super::{Dialect, IDS_PER_LOOKUP, SqlStore, conflict_or, corrupt};
use crate::StoreError;
use crate::identity::{AuditFilter, Deactivation, Match, MemberRecord, NewUser, TeamRecord, UserProfile, UserRecord};

const USER_COLUMNS: &str = "id, email, name, kind, org_role, active, created_at, deactivated_at, external_id";
const TEAM_COLUMNS: &str = "id, name, created_at, external_id";
const AUDIT_COLUMNS: &str =
    "seq, id, at, actor_user_id, actor_key_id, source, action, target_type, target_id, before, after, prev_hash, hash";

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
    pub(crate) async fn insert_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        sqlx::query(
            "INSERT INTO users (id, email, name, kind, org_role, created_at, external_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_from_row).transpose()
    }

    pub(crate) async fn list_users(&self, after_id: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2"))
            .bind(after_id.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::user_from_row).collect()
    }

    pub(crate) async fn update_user(
        &self,
        id: &str,
        name: &str,
        role: OrgRole,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("UPDATE users SET name = $1, org_role = $2 WHERE id = $3")
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
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        let changed = sqlx::query(
            "UPDATE users SET active = $1, deactivated_at = CASE WHEN $2 THEN NULL ELSE COALESCE(deactivated_at, $3) END \
             WHERE id = $4",
        )
        .bind(active)
        .bind(active)
        .bind(now_ms)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if DB::rows_affected(&changed) == 0 {
            return Ok(None);
        }
        let revoked_keys = if active {
            0
        } else {
            let done = sqlx::query("UPDATE keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                .bind(now_ms)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            DB::rows_affected(&done)
        };
        tx.commit().await?;
        let user = self.user_by_id(id).await?.ok_or_else(|| corrupt("users", format!("`{id}` vanished")))?;
        Ok(Some(Deactivation { user, revoked_keys }))
    }

    pub(crate) async fn insert_team(&self, team: &TeamRecord) -> Result<TeamRecord, StoreError> {
        sqlx::query("INSERT INTO teams (id, name, created_at, external_id) VALUES ($1, $2, $3, $4)")
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
        let row = sqlx::query(&format!("SELECT {TEAM_COLUMNS} FROM teams WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::team_from_row).transpose()
    }

    pub(crate) async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {TEAM_COLUMNS} FROM teams ORDER BY lower(name), id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::team_from_row).collect()
    }

    pub(crate) async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<UserRecord>, StoreError> {
        let mut users = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_LOOKUP) {
            let mut query = Statement::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id IN "));
            query.row(chunk.iter().map(|id| Param::Text(id.clone())));
            for row in Self::bound(&query).fetch_all(&self.pool).await? {
                users.push(Self::user_from_row(&row)?);
            }
        }
        Ok(users)
    }

    pub(crate) async fn find_users(
        &self,
        matching: &Match,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<UserRecord>, u64), StoreError> {
        let filter = |query: &mut Statement| {
            if let Some(email) = &matching.name {
                let (before, after) = DB::nocase_eq("email");
                query.push(" AND ").push(&before).bind(email.clone()).push(after);
            }
            if let Some(external) = &matching.external_id {
                query.push(" AND external_id = ").bind(external.clone());
            }
            if let Some(id) = &matching.id {
                query.push(" AND id = ").bind(id.clone());
            }
        };
        let mut count = Statement::new("SELECT COUNT(*) FROM users WHERE 1 = 1");
        filter(&mut count);
        let total: i64 = Self::bound(&count).fetch_one(&self.pool).await?.try_get(0)?;
        let mut query = Statement::new(format!("SELECT {USER_COLUMNS} FROM users WHERE 1 = 1"));
        filter(&mut query);
        query.push(" ORDER BY id LIMIT ").bind(i64::from(limit)).push(" OFFSET ").bind(i64::from(offset));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        let users = rows.iter().map(Self::user_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((users, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn set_user_profile(
        &self,
        id: &str,
        profile: &UserProfile,
    ) -> Result<Option<UserRecord>, StoreError> {
        sqlx::query("UPDATE users SET email = $1, name = $2, external_id = $3 WHERE id = $4")
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
        let filter = |query: &mut Statement| {
            if let Some(name) = &matching.name {
                let (before, after) = DB::nocase_eq("name");
                query.push(" AND ").push(&before).bind(name.clone()).push(after);
            }
            if let Some(external) = &matching.external_id {
                query.push(" AND external_id = ").bind(external.clone());
            }
            if let Some(id) = &matching.id {
                query.push(" AND id = ").bind(id.clone());
            }
        };
        let mut count = Statement::new("SELECT COUNT(*) FROM teams WHERE 1 = 1");
        filter(&mut count);
        let total: i64 = Self::bound(&count).fetch_one(&self.pool).await?.try_get(0)?;
        let mut query = Statement::new(format!("SELECT {TEAM_COLUMNS} FROM teams WHERE 1 = 1"));
        filter(&mut query);
        query.push(" ORDER BY lower(name), id LIMIT ").bind(i64::from(limit)).push(" OFFSET ").bind(i64::from(offset));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        let teams = rows.iter().map(Self::team_from_row).collect::<Result<Vec<_>, _>>()?;
        Ok((teams, u64::try_from(total).unwrap_or(0)))
    }

    pub(crate) async fn update_team(
        &self,
        id: &str,
        name: &str,
        external_id: Option<&str>,
    ) -> Result<Option<TeamRecord>, StoreError> {
        sqlx::query("UPDATE teams SET name = $1, external_id = $2 WHERE id = $3")
            .bind(name)
            .bind(external_id)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict_or(e, format!("the team name `{name}`")))?;
        self.team_by_id(id).await
    }

    pub(crate) async fn delete_team(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        sqlx::query("DELETE FROM memberships WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("UPDATE keys SET revoked_at = COALESCE(revoked_at, $1), team_id = NULL WHERE team_id = $2")
            .bind(now_ms)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM teams WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn put_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO memberships (team_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
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
        let done = sqlx::query("DELETE FROM memberships WHERE team_id = $1 AND user_id = $2")
            .bind(team_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    pub(crate) async fn members_of_team(&self, team_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, user_id, role, created_at FROM memberships WHERE team_id = $1 ORDER BY user_id",
        )
        .bind(team_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::member_from_row).collect()
    }

    pub(crate) async fn members_page(
        &self,
        team_id: &str,
        after_user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        let mut query = Statement::new("SELECT team_id, user_id, role, created_at FROM memberships WHERE team_id = ");
        query.bind(team_id.to_owned());
        if let Some(after) = after_user {
            query.push(" AND user_id > ").bind(after.to_owned());
        }
        query.push(" ORDER BY user_id LIMIT ").bind(i64::from(limit));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        rows.iter().map(Self::member_from_row).collect()
    }

    pub(crate) async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<MemberRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT team_id, user_id, role, created_at FROM memberships WHERE team_id = $1 AND user_id = $2",
        )
        .bind(team_id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::member_from_row).transpose()
    }

    pub(crate) async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT team_id, user_id, role, created_at FROM memberships WHERE user_id = $1 ORDER BY team_id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::member_from_row).collect()
    }

    pub(crate) async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError> {
        // One appender at a time keeps the chain linear: this process's appenders queue here,
        // and other replicas' wait on the dialect's turn inside the transaction.
        let _turn = self.audit_lock.lock().await;
        let mut tx = self.pool.begin_with(DB::BEGIN_WRITE).await?;
        if let Some(turn) = DB::AUDIT_TURN {
            sqlx::query(turn).execute(&mut *tx).await?;
        }
        let last =
            sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_optional(&mut *tx).await?;
        let (seq, prev_hash) = match &last {
            Some(row) => (row.try_get::<i64, _>("seq")? + 1, Self::hash_from(row, "hash")?),
            None => (1, GENESIS),
        };
        let hash = chain_hash(&prev_hash, seq, event);
        sqlx::query(&format!(
            "INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
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
        let mut query = Statement::new(format!("SELECT {AUDIT_COLUMNS} FROM audit_log WHERE 1 = 1"));
        if let Some(actor) = &filter.actor_user_id {
            query.push(" AND actor_user_id = ").bind(actor);
        }
        match filter.action.as_deref() {
            Some(family) if family.ends_with('.') => {
                query.push(" AND substr(action, 1, length(").bind(family).push(")) = ").bind(family);
            }
            Some(action) => {
                query.push(" AND action = ").bind(action);
            }
            None => {}
        }
        if let Some(kind) = &filter.target_type {
            query.push(" AND target_type = ").bind(kind);
        }
        if let Some(id) = &filter.target_id {
            query.push(" AND target_id = ").bind(id);
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND at >= ").bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND at < ").bind(to);
        }
        if let Some(before) = filter.before_seq {
            query.push(" AND seq < ").bind(before);
        }
        query.push(" ORDER BY seq DESC LIMIT ").bind(i64::from(filter.limit));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        rows.iter().map(Self::audit_from_row).collect()
    }

    pub(crate) async fn audit_chain(&self) -> Result<Vec<AuditRecord>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {AUDIT_COLUMNS} FROM audit_log ORDER BY seq")).fetch_all(&self.pool).await?;
        rows.iter().map(Self::audit_from_row).collect()
    }

    fn user_from_row(row: &DB::Row) -> Result<UserRecord, StoreError> {
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

    fn team_from_row(row: &DB::Row) -> Result<TeamRecord, StoreError> {
        Ok(TeamRecord {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at_ms: row.try_get("created_at")?,
            external_id: row.try_get("external_id")?,
        })
    }

    fn member_from_row(row: &DB::Row) -> Result<MemberRecord, StoreError> {
        let role: String = row.try_get("role")?;
        Ok(MemberRecord {
            team_id: row.try_get("team_id")?,
            user_id: row.try_get("user_id")?,
            role: TeamRole::parse(&role).ok_or_else(|| corrupt("memberships", format!("role `{role}`")))?,
            created_at_ms: row.try_get("created_at")?,
        })
    }

    fn hash_from(row: &DB::Row, column: &str) -> Result<[u8; 32], StoreError> {
        let bytes: Vec<u8> = row.try_get(column)?;
        bytes.try_into().map_err(|_| corrupt("audit_log", format!("{column} is not 32 bytes")))
    }

    fn audit_from_row(row: &DB::Row) -> Result<AuditRecord, StoreError> {
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
            prev_hash: Self::hash_from(row, "prev_hash")?,
            hash: Self::hash_from(row, "hash")?,
        })
    }
}
