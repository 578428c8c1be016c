//! People, teams and what each may do in the admin API.
//!
//! Every user has one organisation role; team memberships add a team role. The admin API asks
//! [`Actor::may`] before every action, and the rules live only here, as a pure function of the
//! actor and the target, so the whole role × action matrix is tested in one place. Two rules
//! hold throughout: nobody acts above their own rank (an admin cannot make an owner, or touch
//! one), and nobody changes their own role.

/// A user's role in the organisation, highest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OrgRole {
    /// Reads everything it may see; changes nothing but its own keys (none, in fact: read only).
    Viewer,
    /// Uses models with their own and their teams' keys.
    Member,
    /// Manages users, teams and keys, short of owners.
    Admin,
    /// Everything, including other owners and admins.
    Owner,
}

impl OrgRole {
    /// The stored and shown name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrgRole::Owner => "owner",
            OrgRole::Admin => "admin",
            OrgRole::Member => "member",
            OrgRole::Viewer => "viewer",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(OrgRole::Owner),
            "admin" => Some(OrgRole::Admin),
            "member" => Some(OrgRole::Member),
            "viewer" => Some(OrgRole::Viewer),
            _ => None,
        }
    }

    fn manages_org(self) -> bool {
        self >= OrgRole::Admin
    }
}

/// A member's role in one team.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TeamRole {
    /// Uses the team's keys.
    Member,
    /// Manages the team's members and keys.
    TeamAdmin,
}

impl TeamRole {
    /// The stored and shown name.
    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::TeamAdmin => "team-admin",
            TeamRole::Member => "member",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "team-admin" => Some(TeamRole::TeamAdmin),
            "member" => Some(TeamRole::Member),
            _ => None,
        }
    }
}

/// Whether a user is a person or a service account (a workload that holds keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UserKind {
    /// A person, who may sign in.
    Person,
    /// A service account: keys only, never a sign-in.
    Service,
}

impl UserKind {
    /// The stored and shown name.
    pub const fn as_str(self) -> &'static str {
        match self {
            UserKind::Person => "person",
            UserKind::Service => "service",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "person" => Some(UserKind::Person),
            "service" => Some(UserKind::Service),
            _ => None,
        }
    }
}

/// Who calls the admin API: a user with their roles, or the break-glass key from the
/// environment (and keys made before users existed), which act as an owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The user; `None` for the break-glass key.
    pub user_id: Option<String>,
    /// Organisation role.
    pub org_role: OrgRole,
    /// (team id, role) for each team the user belongs to.
    pub teams: Vec<(String, TeamRole)>,
}

/// Whose a key is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    /// A user's personal key (or a service account's).
    User {
        /// The user.
        id: String,
        /// Their organisation role (a key never carries more than its owner has).
        role: OrgRole,
    },
    /// A team's shared key.
    Team(String),
    /// A key from before users existed: only owners and admins manage it.
    Unowned,
}

/// Something an actor wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<'a> {
    /// List or read users, teams, usage and deployments across the organisation.
    ReadOrg,
    /// Create a user with a role.
    CreateUser(OrgRole),
    /// Change a user's role from `from` to `to`.
    SetRole {
        /// The user.
        user: &'a str,
        /// Their role now.
        from: OrgRole,
        /// The role asked for.
        to: OrgRole,
    },
    /// Deactivate or reactivate a user with this role.
    SetActive {
        /// The user.
        user: &'a str,
        /// Their role.
        role: OrgRole,
    },
    /// Change a user's details (their name): anyone their own, admins those up to their rank.
    EditUser {
        /// The user.
        user: &'a str,
        /// Their role.
        role: OrgRole,
    },
    /// Create or delete a team.
    ManageTeams,
    /// Read one team (its members).
    ReadTeam(&'a str),
    /// Add, remove or change a member of a team.
    ManageMembers {
        /// The team.
        team: &'a str,
        /// The member concerned.
        user: &'a str,
    },
    /// Create a key for this owner; `admin_scope` when the key may call the admin API.
    CreateKey {
        /// For whom.
        owner: &'a KeyOwner,
        /// Whether it may call the admin API.
        admin_scope: bool,
    },
    /// See or revoke a key of this owner.
    ManageKey(&'a KeyOwner),
    /// Read the audit log.
    ReadAudit,
    /// Set, change, reset or delete budgets and limits.
    ManageBudgets,
    /// Set or clear a team's data policy. Not a team admin's: a policy binds the team to the
    /// company's rules, so those it binds do not get to loosen it.
    ManagePolicies,
    /// Read a logged prompt and completion. Admins and owners only: content is more
    /// sensitive than anything a viewer reads, and each read is audited.
    ReadPrompts,
}

/// Why an action is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Denied(pub &'static str);

impl Actor {
    /// The break-glass actor: an owner without a user.
    pub fn break_glass() -> Self {
        Actor { user_id: None, org_role: OrgRole::Owner, teams: Vec::new() }
    }

    fn is(&self, user: &str) -> bool {
        self.user_id.as_deref() == Some(user)
    }

    fn team_role(&self, team: &str) -> Option<TeamRole> {
        self.teams.iter().find(|(id, _)| id == team).map(|(_, role)| *role)
    }

    /// Whether the actor belongs to `team`.
    pub fn in_team(&self, team: &str) -> bool {
        self.team_role(team).is_some()
    }

    /// Decides `action`.
    pub fn may(&self, action: &Action<'_>) -> Result<(), Denied> {
        let role = self.org_role;
        let allow = |ok: bool, why: &'static str| if ok { Ok(()) } else { Err(Denied(why)) };
        match action {
            Action::ReadOrg | Action::ReadAudit => {
                allow(role >= OrgRole::Admin || role == OrgRole::Viewer, "needs the admin, owner or viewer role")
            }
            Action::CreateUser(new) => {
                allow(role.manages_org(), "needs the admin or owner role")?;
                allow(*new <= role, "cannot create a user above your own role")
            }
            Action::SetRole { user, from, to } => {
                allow(!self.is(user), "nobody changes their own role")?;
                allow(role.manages_org(), "needs the admin or owner role")?;
                allow(*from <= role && *to <= role, "cannot change a role above your own")
            }
            Action::SetActive { user, role: target } => {
                allow(!self.is(user), "nobody deactivates themselves")?;
                allow(role.manages_org(), "needs the admin or owner role")?;
                allow(*target <= role, "cannot change a user above your own role")
            }
            Action::EditUser { user, role: target } => {
                if self.is(user) {
                    return Ok(());
                }
                allow(role.manages_org(), "needs the admin or owner role")?;
                allow(*target <= role, "cannot change a user above your own role")
            }
            Action::ManageTeams | Action::ManageBudgets | Action::ManagePolicies | Action::ReadPrompts => {
                allow(role.manages_org(), "needs the admin or owner role")
            }
            Action::ReadTeam(team) => {
                allow(role.manages_org() || role == OrgRole::Viewer || self.in_team(team), "not a member of this team")
            }
            Action::ManageMembers { team, user } => {
                if role.manages_org() {
                    return Ok(());
                }
                allow(self.team_role(team) == Some(TeamRole::TeamAdmin), "needs the team-admin role in this team")?;
                allow(!self.is(user), "nobody changes their own membership")
            }
            Action::CreateKey { owner, admin_scope } => self.may_own_key(owner, *admin_scope),
            Action::ManageKey(owner) => self.may_own_key(owner, false),
        }
    }

    fn may_own_key(&self, owner: &KeyOwner, admin_scope: bool) -> Result<(), Denied> {
        let role = self.org_role;
        match owner {
            KeyOwner::User { id, .. } if self.is(id) => {
                let team_admin = self.teams.iter().any(|(_, r)| *r == TeamRole::TeamAdmin);
                if admin_scope && !(role.manages_org() || role == OrgRole::Viewer || team_admin) {
                    return Err(Denied("an admin-scope key is for owners, admins, viewers and team-admins"));
                }
                if !admin_scope && role == OrgRole::Viewer {
                    return Err(Denied("viewers read; they hold no model keys"));
                }
                Ok(())
            }
            KeyOwner::User { role: owner_role, .. } => {
                if !role.manages_org() {
                    return Err(Denied("keys of other users are managed by admins"));
                }
                if *owner_role > role {
                    return Err(Denied("cannot manage the keys of a user above your own role"));
                }
                Ok(())
            }
            KeyOwner::Team(team) => {
                if role.manages_org() || self.team_role(team) == Some(TeamRole::TeamAdmin) {
                    return Ok(());
                }
                Err(Denied("a team's keys are managed by its team-admins"))
            }
            KeyOwner::Unowned => {
                if role.manages_org() {
                    Ok(())
                } else {
                    Err(Denied("needs the admin or owner role"))
                }
            }
        }
    }

    /// Whether the actor may see a key of `owner` (its name and owner, never its secret).
    /// Those who read the organisation see every key, so an admin or an auditor can find any
    /// key that spends; members see their own and their teams'. Seeing is not managing:
    /// [`Action::ManageKey`] decides who revokes.
    pub fn sees_key(&self, owner: &KeyOwner) -> bool {
        if self.may(&Action::ReadOrg).is_ok() {
            return true;
        }
        match owner {
            KeyOwner::Team(team) => self.in_team(team),
            other => self.may(&Action::ManageKey(other)).is_ok(),
        }
    }
}

#[cfg(test)]
#[path = "identity_tests.rs"]
mod tests;
