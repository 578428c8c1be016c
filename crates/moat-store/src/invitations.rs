//! Invitations to join moat.

use moat_core::{OrgRole, TeamRole};

use crate::{Store, StoreError, on_backend};

/// An invitation (its token is never stored, only the token's hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// `inv_…`.
    pub id: String,
    /// SHA-256 of the link's token.
    pub token_hash: Vec<u8>,
    /// Who is invited.
    pub email: String,
    /// The role they join with.
    pub org_role: OrgRole,
    /// The team they join, if any, and their role in it.
    pub team: Option<(String, TeamRole)>,
    /// The user who invited them.
    pub invited_by: Option<String>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// After this the link is dead.
    pub expires_at_ms: i64,
    /// When it was used.
    pub accepted_at_ms: Option<i64>,
    /// When it was withdrawn.
    pub revoked_at_ms: Option<i64>,
}

impl Invitation {
    /// Whether the link still works at `now_ms`.
    pub fn is_open(&self, now_ms: i64) -> bool {
        self.accepted_at_ms.is_none() && self.revoked_at_ms.is_none() && now_ms < self.expires_at_ms
    }
}

impl Store {
    /// Stores an invitation.
    pub async fn insert_invitation(&self, invitation: &Invitation) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_invitation(invitation))
    }

    /// An invitation by its link's token hash.
    pub async fn invitation_by_token(&self, token_hash: &[u8]) -> Result<Option<Invitation>, StoreError> {
        on_backend!(self, s => s.invitation_where("token_hash", token_hash.to_vec()))
    }

    /// An invitation by id.
    pub async fn invitation_by_id(&self, id: &str) -> Result<Option<Invitation>, StoreError> {
        on_backend!(self, s => s.invitation_where("id", id.as_bytes().to_vec()))
    }

    /// The newest open invitation for `email`, if any.
    pub async fn open_invitation_for(&self, email: &str, now_ms: i64) -> Result<Option<Invitation>, StoreError> {
        on_backend!(self, s => s.open_invitation_for(email, now_ms))
    }

    /// Invitations, newest first, a page at a time: those older than `before_id` (ids grow
    /// with time), at most `limit`, and with `open_at` only those still open at that instant.
    pub async fn list_invitations(
        &self,
        open_at: Option<i64>,
        before_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError> {
        on_backend!(self, s => s.list_invitations(open_at, before_id, limit))
    }

    /// Marks an open invitation used (or, with `revoke`, withdrawn); whether it was open.
    pub async fn close_invitation(&self, id: &str, now_ms: i64, revoke: bool) -> Result<bool, StoreError> {
        on_backend!(self, s => s.close_invitation(id, now_ms, revoke))
    }
}
