//! The data policies in force: the config's default and each team's own, as the request path
//! reads them.
//!
//! Team policies are data (`PUT /admin/v1/teams/{id}/policy`): a change applies at once on
//! the replica that made it and on the others at their next refresh (`[admission]
//! refresh_interval`, with budgets and limits). Reading one is a lock-free load; with no team
//! policy set, every request shares the default without allocating.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use moat_core::Policy;
use moat_store::{Store, StoreError};

/// The default policy and the teams' own.
#[derive(Debug)]
pub(crate) struct DataPolicies {
    default: ArcSwap<Policy>,
    teams: ArcSwap<HashMap<String, Arc<Policy>>>,
}

impl DataPolicies {
    pub(crate) fn new(default: Policy) -> Self {
        DataPolicies { default: ArcSwap::from_pointee(default), teams: ArcSwap::from_pointee(HashMap::new()) }
    }

    /// The policy of teams without their own (a config reload may change it).
    pub(crate) fn default_policy(&self) -> Arc<Policy> {
        self.default.load_full()
    }

    pub(crate) fn set_default(&self, policy: Policy) {
        self.default.store(Arc::new(policy));
    }

    /// A team's own policy, if it has one.
    pub(crate) fn team(&self, team_id: &str) -> Option<Arc<Policy>> {
        self.teams.load().get(team_id).cloned()
    }

    /// Records a team's policy as just written (`None`: cleared).
    pub(crate) fn set_team(&self, team_id: &str, policy: Option<Policy>) {
        self.teams.rcu(|teams| {
            let mut teams = HashMap::clone(teams);
            match &policy {
                Some(policy) => teams.insert(team_id.to_owned(), Arc::new(policy.clone())),
                None => teams.remove(team_id),
            };
            teams
        });
    }

    /// Re-reads every team's policy from the store.
    pub(crate) async fn refresh(&self, store: &Store) -> Result<(), StoreError> {
        let teams = store.team_policies().await?.into_iter().map(|(id, policy)| (id, Arc::new(policy))).collect();
        self.teams.store(Arc::new(teams));
        Ok(())
    }

    /// The policy a request counting toward `teams` follows: each team's own or the default,
    /// and the strictest of them when there are several (so belonging to one more team never
    /// loosens what another team's policy promised).
    pub(crate) fn for_teams(&self, teams: &[String]) -> Arc<Policy> {
        let own = self.teams.load();
        let default = self.default.load_full();
        if own.is_empty() || teams.is_empty() {
            return default;
        }
        let mut each = teams.iter().map(|team| own.get(team).cloned().unwrap_or_else(|| default.clone()));
        let Some(first) = each.next() else { return default };
        each.fold(
            first,
            |strictest, next| {
                if *next == *strictest { strictest } else { Arc::new(strictest.strictest(&next)) }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use moat_core::SecretAction;

    use super::*;

    #[test]
    fn teams_follow_their_own_policy_or_the_default_and_several_the_strictest() {
        let policies = DataPolicies::new(Policy::default());
        let internal = Policy { internal_only: true, secrets: SecretAction::Allow, ..Policy::default() };
        policies.set_team("team_a", Some(internal.clone()));
        let teams = |ids: &[&str]| ids.iter().map(|id| (*id).to_owned()).collect::<Vec<_>>();
        assert_eq!(*policies.for_teams(&teams(&["team_a"])), internal);
        assert_eq!(*policies.for_teams(&teams(&["team_b"])), Policy::default());
        assert_eq!(*policies.for_teams(&[]), Policy::default());
        assert_eq!(
            *policies.for_teams(&teams(&["team_a", "team_b"])),
            Policy { internal_only: true, secrets: SecretAction::Redact, ..Policy::default() }
        );
        policies.set_team("team_a", None);
        assert_eq!(*policies.for_teams(&teams(&["team_a"])), Policy::default());
    }
}
