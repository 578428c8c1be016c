//! Teams' data policies: the [`Store`] operations on them.

use moat_core::Policy;

use crate::{Store, StoreError, on_backend};

impl Store {
    /// Every team's own policy, by team id. Teams without one follow the config's default.
    pub async fn team_policies(&self) -> Result<Vec<(String, Policy)>, StoreError> {
        on_backend!(self, s => s.team_policies())
    }

    /// Sets (`Some`) or clears (`None`) a team's policy. Whether anything changed: `false`
    /// when the team does not exist (set) or had no policy (clear).
    pub async fn set_team_policy(
        &self,
        team_id: &str,
        policy: Option<&Policy>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.set_team_policy(team_id, policy, now_ms))
    }
}
