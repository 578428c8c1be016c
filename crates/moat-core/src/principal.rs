//! Who is calling: the resolved key behind a request and what it may do.

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// May call the admin API, and every model.
    Admin,
    /// May call the model endpoints only.
    Client,
}

impl Role {
    /// The name stored and shown for this role.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Client => "client",
        }
    }

    /// Parses a stored role name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Role::Admin),
            "client" => Some(Role::Client),
            _ => None,
        }
    }
}

/// Which models a key may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelAccess {
    /// Every configured model.
    All,
    /// Only these public model names.
    Only(Vec<String>),
}

impl ModelAccess {
    /// Whether `model` (a public model name) is allowed.
    pub fn allows(&self, model: &str) -> bool {
        match self {
            ModelAccess::All => true,
            ModelAccess::Only(models) => models.iter().any(|m| m == model),
        }
    }
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id; `None` for the bootstrap admin key from the environment, which has no row.
    pub key_id: Option<String>,
    /// The user the key belongs to.
    pub user_id: Option<String>,
    /// The team the key belongs to.
    pub team_id: Option<String>,
    /// Every team the request counts toward (budgets, limits): the key's team for a team key,
    /// the user's teams for a personal key.
    pub teams: Vec<String>,
    /// What the key may do.
    pub role: Role,
    /// Which models it may call.
    pub models: ModelAccess,
}

impl Principal {
    /// Whether this principal may call `model`.
    pub fn may_use(&self, model: &str) -> bool {
        self.role == Role::Admin || self.models.allows(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_use_every_model_clients_only_theirs() {
        let client = Principal {
            key_id: Some("k".into()),
            user_id: None,
            team_id: None,
            teams: Vec::new(),
            role: Role::Client,
            models: ModelAccess::Only(vec!["a".into()]),
        };
        assert!(client.may_use("a"));
        assert!(!client.may_use("b"));
        let admin = Principal { role: Role::Admin, ..client };
        assert!(admin.may_use("b"));
    }

    #[test]
    fn roles_round_trip() {
        for role in [Role::Admin, Role::Client] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
