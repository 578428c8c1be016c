//! Route plans: which deployments serve a public model name, in what order.
//!
//! This is the sans-IO half of routing: given the catalog and a rotation counter it returns the
//! ordered list of deployments to try. Weights, tiers, health and fallbacks extend this type
//! rather than the request pipeline.

use std::collections::HashMap;

/// Index of a deployment in the runtime configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub usize);

/// The ordered deployments to try for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// First is tried first.
    pub deployments: Vec<DeploymentId>,
}

/// Public model names and the deployments behind each.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    models: HashMap<String, Vec<DeploymentId>>,
    order: Vec<String>,
}

impl ModelCatalog {
    /// Adds a model; later entries with the same name replace earlier ones (config validation
    /// rejects duplicates before this is reached).
    pub fn insert(&mut self, name: String, deployments: Vec<DeploymentId>) {
        if !self.models.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.models.insert(name, deployments);
    }

    /// Model names in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The plan for `model`, rotated by `turn` so that successive requests spread across a
    /// model's deployments. `None` when no such model is configured.
    pub fn plan(&self, model: &str, turn: usize) -> Option<RoutePlan> {
        let deployments = self.models.get(model)?;
        if deployments.is_empty() {
            return None;
        }
        let start = turn % deployments.len();
        let mut ordered = Vec::with_capacity(deployments.len());
        ordered.extend_from_slice(&deployments[start..]);
        ordered.extend_from_slice(&deployments[..start]);
        Some(RoutePlan { deployments: ordered })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_rotate_through_every_deployment() {
        let mut catalog = ModelCatalog::default();
        catalog.insert("m".into(), vec![DeploymentId(0), DeploymentId(1), DeploymentId(2)]);
        let plan = |turn| catalog.plan("m", turn).map(|p| p.deployments);
        assert_eq!(plan(0), Some(vec![DeploymentId(0), DeploymentId(1), DeploymentId(2)]));
        assert_eq!(plan(1), Some(vec![DeploymentId(1), DeploymentId(2), DeploymentId(0)]));
        assert_eq!(plan(5), Some(vec![DeploymentId(2), DeploymentId(0), DeploymentId(1)]));
        assert_eq!(catalog.plan("other", 0), None);
    }

    #[test]
    fn names_keep_config_order() {
        let mut catalog = ModelCatalog::default();
        catalog.insert("b".into(), vec![DeploymentId(0)]);
        catalog.insert("a".into(), vec![DeploymentId(0)]);
        assert_eq!(catalog.names().collect::<Vec<_>>(), ["b", "a"]);
    }
}
