//! Users, teams, memberships and the audit log: the records, and the [`Store`] operations on
//! them.

use moat_core::audit::{AuditEvent, AuditRecord};
use moat_core::{OrgRole, TeamRole, UserKind};

use crate::{Store, StoreError, on_backend};

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// `usr_…`.
    pub id: String,
    /// Unique, case-insensitively.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Person or service account.
    pub kind: UserKind,
    /// Organisation role.
    pub org_role: OrgRole,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The identity provider's id (SCIM `externalId`).
    pub external_id: Option<String>,
}

/// A stored user (never a password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `usr_…`.
    pub id: String,
    /// E-mail address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Person or service account.
    pub kind: UserKind,
    /// Organisation role.
    pub org_role: OrgRole,
    /// Whether the user may act and their keys work.
    pub active: bool,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// When deactivated, Unix milliseconds.
    pub deactivated_at_ms: Option<i64>,
    /// The identity provider's id for the user (SCIM `externalId`).
    pub external_id: Option<String>,
}

/// A stored team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamRecord {
    /// `team_…`.
    pub id: String,
    /// Unique, case-insensitively.
    pub name: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// The identity provider's id for the group (SCIM `externalId`).
    pub external_id: Option<String>,
}

/// Which users or teams to find: every given field must match (e-mail and name without
/// regard to case).
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// The e-mail (users) or name (teams).
    pub name: Option<String>,
    /// The identity provider's id.
    pub external_id: Option<String>,
    /// moat's id.
    pub id: Option<String>,
}

/// A user's identity fields as an identity provider sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserProfile {
    /// E-mail, which is also the SCIM `userName`.
    pub email: String,
    /// Display name.
    pub name: String,
    /// The identity provider's id.
    pub external_id: Option<String>,
}

/// A user's membership of a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    /// The team.
    pub team_id: String,
    /// The user.
    pub user_id: String,
    /// Their role in the team.
    pub role: TeamRole,
    /// Unix milliseconds.
    pub created_at_ms: i64,
}

/// Which audit records to return, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this actor's.
    pub actor_user_id: Option<String>,
    /// Only this action (`user.update`) or, ending in `.`, this family (`user.`).
    pub action: Option<String>,
    /// Only records about this kind of object.
    pub target_type: Option<String>,
    /// Only records about this object.
    pub target_id: Option<String>,
    /// From this time, Unix milliseconds.
    pub from_ms: Option<i64>,
    /// Before this time.
    pub to_ms: Option<i64>,
    /// Records before this position (the next page).
    pub before_seq: Option<i64>,
    /// Most records returned.
    pub limit: u32,
}

/// What deactivating a user did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deactivation {
    /// The user afterwards.
    pub user: UserRecord,
    /// Keys revoked with them.
    pub revoked_keys: u64,
}

impl Store {
    /// Inserts a user; an e-mail already taken is [`StoreError::Conflict`].
    pub async fn insert_user(&self, user: &NewUser) -> Result<UserRecord, StoreError> {
        on_backend!(self, s => s.insert_user(user))
    }

    /// One user by id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, s => s.user_by_id(id))
    }

    /// Users in id order after `after_id`, at most `limit`.
    pub async fn list_users(&self, after_id: Option<&str>, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
        on_backend!(self, s => s.list_users(after_id, limit))
    }

    /// Changes a user's name and organisation role.
    pub async fn update_user(&self, id: &str, name: &str, role: OrgRole) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, s => s.update_user(id, name, role))
    }

    /// Deactivates a user and revokes every key they own, in one transaction; or reactivates
    /// them (their keys stay revoked).
    pub async fn set_user_active(
        &self,
        id: &str,
        active: bool,
        now_ms: i64,
    ) -> Result<Option<Deactivation>, StoreError> {
        on_backend!(self, s => s.set_user_active(id, active, now_ms))
    }

    /// The users with these ids, in no particular order (ids without a user are skipped):
    /// e-mails for the people a page shows, without reading every user.
    pub async fn users_by_ids(&self, ids: &[String]) -> Result<Vec<UserRecord>, StoreError> {
        on_backend!(self, s => s.users_by_ids(ids))
    }

    /// Users matching `matching`, in id order from the `offset`-th, at most `limit`; and how
    /// many match in all.
    pub async fn find_users(
        &self,
        matching: &Match,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<UserRecord>, u64), StoreError> {
        on_backend!(self, s => s.find_users(matching, offset, limit))
    }

    /// Sets a user's e-mail, name and external id; a taken e-mail is [`StoreError::Conflict`].
    pub async fn set_user_profile(&self, id: &str, profile: &UserProfile) -> Result<Option<UserRecord>, StoreError> {
        on_backend!(self, s => s.set_user_profile(id, profile))
    }

    /// Teams matching `matching`, by name from the `offset`-th, at most `limit`; and how many
    /// match in all.
    pub async fn find_teams(
        &self,
        matching: &Match,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<TeamRecord>, u64), StoreError> {
        on_backend!(self, s => s.find_teams(matching, offset, limit))
    }

    /// Renames a team and sets its external id; a taken name is [`StoreError::Conflict`].
    pub async fn update_team(
        &self,
        id: &str,
        name: &str,
        external_id: Option<&str>,
    ) -> Result<Option<TeamRecord>, StoreError> {
        on_backend!(self, s => s.update_team(id, name, external_id))
    }

    /// Deletes a team: its memberships go, and its keys are revoked at `now_ms` (they keep
    /// their rows, so usage stays attributable). Whether it existed.
    pub async fn delete_team(&self, id: &str, now_ms: i64) -> Result<bool, StoreError> {
        on_backend!(self, s => s.delete_team(id, now_ms))
    }

    /// Inserts a team; a name already taken is [`StoreError::Conflict`].
    pub async fn insert_team(&self, team: &TeamRecord) -> Result<TeamRecord, StoreError> {
        on_backend!(self, s => s.insert_team(team))
    }

    /// One team by id.
    pub async fn team_by_id(&self, id: &str) -> Result<Option<TeamRecord>, StoreError> {
        on_backend!(self, s => s.team_by_id(id))
    }

    /// Every team, by name.
    pub async fn list_teams(&self) -> Result<Vec<TeamRecord>, StoreError> {
        on_backend!(self, s => s.list_teams())
    }

    /// Adds a user to a team, or changes their role there.
    pub async fn put_member(&self, member: &MemberRecord) -> Result<(), StoreError> {
        on_backend!(self, s => s.put_member(member))
    }

    /// Removes a user from a team; whether they were in it.
    pub async fn remove_member(&self, team_id: &str, user_id: &str) -> Result<bool, StoreError> {
        on_backend!(self, s => s.remove_member(team_id, user_id))
    }

    /// A team's members.
    pub async fn members_of_team(&self, team_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        on_backend!(self, s => s.members_of_team(team_id))
    }

    /// A team's members by user id, a page at a time: those after `after_user`, at most
    /// `limit` (a team the size of the company lists as fast as a small one).
    pub async fn members_page(
        &self,
        team_id: &str,
        after_user: Option<&str>,
        limit: u32,
    ) -> Result<Vec<MemberRecord>, StoreError> {
        on_backend!(self, s => s.members_page(team_id, after_user, limit))
    }

    /// One person's membership of one team, if they are in it.
    pub async fn membership(&self, team_id: &str, user_id: &str) -> Result<Option<MemberRecord>, StoreError> {
        on_backend!(self, s => s.membership(team_id, user_id))
    }

    /// A user's memberships.
    pub async fn memberships_of_user(&self, user_id: &str) -> Result<Vec<MemberRecord>, StoreError> {
        on_backend!(self, s => s.memberships_of_user(user_id))
    }

    /// Appends an event to the audit chain and returns the stored record.
    pub async fn append_audit(&self, event: &AuditEvent) -> Result<AuditRecord, StoreError> {
        on_backend!(self, s => s.append_audit(event))
    }

    /// Audit records matching `filter`, newest first.
    pub async fn query_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        on_backend!(self, s => s.query_audit(filter))
    }

    /// Every audit record in chain order, for verification.
    pub async fn audit_chain(&self) -> Result<Vec<AuditRecord>, StoreError> {
        on_backend!(self, s => s.audit_chain())
    }
}
