//! Virtual key rows.

use moat_core::{ModelAccess, OrgRole, Role};

/// A key to insert. The caller generates the secret and passes only its hash.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// Key id, e.g. `key_01J...`.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// A free-text label of who holds it.
    pub owner: Option<String>,
    /// The user it belongs to.
    pub user_id: Option<String>,
    /// The team it belongs to.
    pub team_id: Option<String>,
    /// What the key may do.
    pub role: Role,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// The first characters of the secret, so people can tell keys apart.
    pub prefix: String,
    /// Which models it may call.
    pub models: ModelAccess,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: Option<i64>,
}

/// A stored key (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// Key id.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// A free-text label of who holds it.
    pub owner: Option<String>,
    /// The user it belongs to.
    pub user_id: Option<String>,
    /// The team it belongs to.
    pub team_id: Option<String>,
    /// The owning user's state, when the key has one: (active, organisation role).
    pub user_state: Option<(bool, OrgRole)>,
    /// What the key may do.
    pub role: Role,
    /// The first characters of the secret.
    pub prefix: String,
    /// Which models it may call.
    pub models: ModelAccess,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Expiry, Unix milliseconds.
    pub expires_at_ms: Option<i64>,
    /// Revocation time, Unix milliseconds.
    pub revoked_at_ms: Option<i64>,
}

/// Which keys a page of the key list holds, newest first. Every field narrows the result.
#[derive(Debug, Clone, Default)]
pub struct KeyFilter {
    /// Revoked keys too; active ones only when false.
    pub include_revoked: bool,
    /// Only this user's keys.
    pub user_id: Option<String>,
    /// Only this team's keys.
    pub team_id: Option<String>,
    /// Only keys a person without the right to read the whole organisation may see: their own
    /// and their teams'. Applied in the query so such a person's pages fill however many keys
    /// others hold.
    pub visible_to: Option<KeyReader>,
    /// Only keys with an id below this one (the cursor for the next page; key ids grow with
    /// time).
    pub before_id: Option<String>,
    /// At most this many keys.
    pub limit: u32,
}

/// Someone who sees only their own keys and their teams'.
#[derive(Debug, Clone, Default)]
pub struct KeyReader {
    /// Their user, when they have one.
    pub user_id: Option<String>,
    /// The teams they belong to.
    pub team_ids: Vec<String>,
}
