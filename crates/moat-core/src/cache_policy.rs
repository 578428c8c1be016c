//! Which answers the response cache keeps, and who may be served them.
//!
//! Caching is opt-in per model: an identical request from the same tenant within the policy's
//! time to live gets the stored answer instead of a new generation. The tenant is the widest
//! circle of callers allowed to see each other's answers; it is part of every cache key, so an
//! answer never crosses it. One moat installation is one organization: `org` is the widest
//! scope there is, and separate installations keep separate key prefixes.

use std::time::Duration;

use crate::Principal;

/// A model's cache settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// How long an answer is served from the cache.
    pub ttl: Duration,
    /// Who shares answers.
    pub scope: CacheScope,
}

/// The circle of callers who may be served each other's cached answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// Only the key that asked.
    Key,
    /// Every key of one user; a team's key is its own circle.
    User,
    /// Every key of one team (an app's keys); a personal key shares with its user's other keys.
    Team,
    /// Everyone in the organization.
    Org,
}

impl CacheScope {
    /// Parses a configured scope name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "key" => Some(CacheScope::Key),
            "user" => Some(CacheScope::User),
            "team" => Some(CacheScope::Team),
            "org" => Some(CacheScope::Org),
            _ => None,
        }
    }

    /// The name the configuration uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheScope::Key => "key",
            CacheScope::User => "user",
            CacheScope::Team => "team",
            CacheScope::Org => "org",
        }
    }

    /// The tenant `principal` belongs to under this scope, as part of a cache key. Each kind is
    /// prefixed so a user id can never equal a team id.
    pub fn tenant(self, principal: &Principal) -> String {
        let key = || format!("key:{}", principal.key_id.as_deref().unwrap_or("bootstrap-admin"));
        let user = || principal.user_id.as_ref().map(|u| format!("user:{u}"));
        let team = || principal.team_id.as_ref().map(|t| format!("team:{t}"));
        match self {
            CacheScope::Key => key(),
            CacheScope::User => user().unwrap_or_else(key),
            CacheScope::Team => team().or_else(user).unwrap_or_else(key),
            CacheScope::Org => "org".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ModelAccess, Role};

    fn principal(key: &str, user: Option<&str>, team: Option<&str>) -> Principal {
        Principal {
            teams: team.into_iter().map(str::to_owned).collect(),
            key_id: Some(key.into()),
            user_id: user.map(Into::into),
            team_id: team.map(Into::into),
            role: Role::Client,
            models: ModelAccess::All,
        }
    }

    #[test]
    fn each_scope_shares_answers_only_inside_its_circle() {
        let ana_laptop = principal("k1", Some("ana"), None);
        let ana_ci = principal("k2", Some("ana"), None);
        let app = principal("k3", None, Some("search"));
        let app_other_key = principal("k4", None, Some("search"));
        let tenants = |scope: CacheScope| [&ana_laptop, &ana_ci, &app, &app_other_key].map(|p| scope.tenant(p));
        let [a, b, c, d] = tenants(CacheScope::Key);
        assert!(a != b && c != d, "keys never share");
        let [a, b, c, d] = tenants(CacheScope::User);
        assert_eq!(a, b, "one user's keys share");
        assert!(c != d, "a team key has no user: it is its own circle");
        let [a, b, c, d] = tenants(CacheScope::Team);
        assert_eq!((a.as_str(), c.as_str()), (b.as_str(), d.as_str()), "a team's keys share; a user's keys share");
        assert_ne!(a, c, "a user and a team never share");
        let [a, _, c, _] = tenants(CacheScope::Org);
        assert_eq!(a, c);
    }

    #[test]
    fn ids_of_different_kinds_never_collide() {
        let user = principal("k1", Some("x"), None);
        let team = principal("k2", None, Some("x"));
        assert_ne!(CacheScope::Team.tenant(&user), CacheScope::Team.tenant(&team));
    }

    #[test]
    fn scope_names_parse() {
        assert_eq!(CacheScope::parse("team"), Some(CacheScope::Team));
        assert_eq!(CacheScope::parse("everyone"), None);
    }
}
