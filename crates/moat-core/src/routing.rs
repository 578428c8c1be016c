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
    /// (pattern, public model name), in configuration order.
    aliases: Vec<(String, String)>,
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

    /// Makes requests for names matching `pattern` (`*` matches any run of characters) go to
    /// the public model `model`. Clients send their own names (Claude Code asks for
    /// `claude-sonnet-4-5-20250929`); aliases map them to the company's models.
    pub fn alias(&mut self, pattern: String, model: String) {
        self.aliases.push((pattern, model));
    }

    /// The public model a requested name resolves to: itself when configured, else the first
    /// alias whose pattern matches.
    pub fn resolve<'a>(&'a self, requested: &'a str) -> Option<&'a str> {
        if self.models.contains_key(requested) {
            return Some(requested);
        }
        self.aliases.iter().find(|(pattern, _)| glob_matches(pattern, requested)).map(|(_, model)| model.as_str())
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

/// Whether `text` matches `pattern`, where `*` matches any run of characters (none included)
/// and everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else { return text.is_empty() };
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = parts.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_shell_patterns() {
        let cases = [
            ("claude-*", "claude-sonnet-4-5", true),
            ("claude-*", "claude-", true),
            ("claude-*", "gpt-4", false),
            ("*-haiku-*", "claude-haiku-4-5-20251001", true),
            ("*-haiku-*", "claude-sonnet-4", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "a-b-b-c", true),
            ("a*b*c", "acb", false),
            ("ab*ba", "aba", false),
            ("*", "", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} vs {text}");
        }
    }

    #[test]
    fn exact_names_win_then_aliases_in_order() {
        let mut catalog = ModelCatalog::default();
        catalog.insert("qwen3-coder".into(), vec![DeploymentId(0)]);
        catalog.insert("claude-haiku-4".into(), vec![DeploymentId(1)]);
        catalog.alias("*-haiku-*".into(), "qwen3-coder".into());
        catalog.alias("claude-*".into(), "qwen3-coder".into());
        assert_eq!(catalog.resolve("claude-haiku-4"), Some("claude-haiku-4"), "a configured name is never aliased");
        assert_eq!(catalog.resolve("claude-opus-4-5"), Some("qwen3-coder"));
        assert_eq!(catalog.resolve("gpt-5"), None);
    }

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
