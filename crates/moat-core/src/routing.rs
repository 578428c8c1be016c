//! Route plans: which deployments serve a public model name, in what order.
//!
//! This is the sans-IO half of routing. The catalog knows each model's members (deployment,
//! weight, priority tier), its strategy and its fallback models; the caller supplies what is
//! known of each deployment right now ([`DeploymentView`]: health, load, latency, price,
//! context size) and a source of randomness, and gets back the ordered deployments to try.
//! Tiers are tried in order, so a lower tier only serves when the one above has nothing
//! available; fallback models follow the model's own deployments.

use std::collections::{HashMap, HashSet};

/// Index of a deployment in the runtime configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeploymentId(pub usize);

/// How deployments within one tier are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Random, in proportion to weight: spreads load as configured.
    #[default]
    Weighted,
    /// Fewest requests in flight first: evens out servers of different speeds.
    LeastInFlight,
    /// Lowest moving average of time to first token first; unmeasured deployments first, so
    /// they get measured.
    LowestLatency,
    /// Cheapest first: own GPUs before paid overflow.
    LowestCost,
}

impl Strategy {
    /// The name the configuration uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Weighted => "weighted",
            Strategy::LeastInFlight => "least_in_flight",
            Strategy::LowestLatency => "lowest_latency",
            Strategy::LowestCost => "lowest_cost",
        }
    }
}

/// One deployment serving a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The deployment.
    pub deployment: DeploymentId,
    /// Relative share of traffic within its tier (at least 1).
    pub weight: u32,
    /// Priority: tier 0 serves first, tier 1 only when tier 0 has nothing available, …
    pub tier: u32,
}

/// How one public model is served.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelRoute {
    /// Its deployments.
    pub members: Vec<Member>,
    /// How each tier is ordered.
    pub strategy: Strategy,
    /// Models tried, in order, after this model's own deployments.
    pub fallbacks: Vec<String>,
    /// Whether and how its answers are cached; `None` never caches.
    pub cache: Option<crate::CachePolicy>,
}

/// What is known of a deployment at the moment a request is routed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeploymentView {
    /// Its circuit breaker admits requests (closed, or ready for a probe).
    pub available: bool,
    /// Requests moat has in flight to it.
    pub in_flight: u64,
    /// Moving average of time to first token, when measured.
    pub latency_ms: Option<f64>,
    /// Its price, in micro-dollars per million tokens (input and output added); 0 if unpriced.
    pub cost: u64,
    /// Largest prompt it accepts, in tokens, when declared.
    pub context_window: Option<u64>,
}

/// The ordered deployments to try for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// First is tried first.
    pub deployments: Vec<DeploymentId>,
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// No model of that name.
    #[error("no such model")]
    UnknownModel,
    /// Every deployment (fallbacks included) declares a context smaller than the prompt.
    #[error("the prompt needs about {needed} tokens; the largest context available is {largest}")]
    ContextTooLong {
        /// The prompt's estimated tokens.
        needed: u64,
        /// The largest declared context window among the model's deployments.
        largest: u64,
    },
    /// Every deployment that could take the prompt is down.
    #[error("every deployment is down")]
    AllDown,
}

/// Public model names and the deployments behind each.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    models: HashMap<String, ModelRoute>,
    order: Vec<String>,
    /// (pattern, public model name), in configuration order.
    aliases: Vec<(String, String)>,
}

/// How many models a fallback chain may visit, cycles aside.
const MAX_MODELS_PER_PLAN: usize = 8;

impl ModelCatalog {
    /// Adds a model; later entries with the same name replace earlier ones (config validation
    /// rejects duplicates before this is reached).
    pub fn insert(&mut self, name: String, route: ModelRoute) {
        if !self.models.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.models.insert(name, route);
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

    /// `(pattern, public model)` aliases, in configuration order.
    pub fn aliases(&self) -> &[(String, String)] {
        &self.aliases
    }

    /// Model names in configuration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// A model's route, if it is configured.
    pub fn route(&self, model: &str) -> Option<&ModelRoute> {
        self.models.get(model)
    }

    /// The deployments to try for a prompt of about `prompt_tokens` tokens to `model`: its own
    /// tiers in order, then each fallback model's, skipping deployments that are down or whose
    /// context is too small, each deployment once. `view` says what is known of a deployment;
    /// `random` returns numbers in `[0, 1)`.
    pub fn plan(
        &self,
        model: &str,
        prompt_tokens: u64,
        view: &dyn Fn(DeploymentId) -> DeploymentView,
        random: &mut dyn FnMut() -> f64,
    ) -> Result<RoutePlan, PlanError> {
        if !self.models.contains_key(model) {
            return Err(PlanError::UnknownModel);
        }
        let mut visited = HashSet::new();
        let mut queue = vec![model];
        let mut seen = HashSet::new();
        let mut deployments = Vec::new();
        let (mut fitting, mut largest) = (0usize, 0u64);
        let mut next = 0;
        while let Some(&name) = queue.get(next) {
            next += 1;
            if !visited.insert(name) || visited.len() > MAX_MODELS_PER_PLAN {
                continue;
            }
            let Some(route) = self.models.get(name) else { continue };
            let mut tiers: Vec<u32> = route.members.iter().map(|m| m.tier).collect();
            tiers.sort_unstable();
            tiers.dedup();
            for tier in tiers {
                let mut ranked = Vec::new();
                for member in route.members.iter().filter(|m| m.tier == tier) {
                    let now = view(member.deployment);
                    largest = largest.max(now.context_window.unwrap_or(u64::MAX));
                    if now.context_window.is_some_and(|window| window < prompt_tokens) {
                        continue;
                    }
                    fitting += 1;
                    if now.available && seen.insert(member.deployment) {
                        ranked.push((rank(route.strategy, &now, member.weight, random), member.deployment));
                    }
                }
                ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
                deployments.extend(ranked.into_iter().map(|(_, id)| id));
            }
            queue.extend(route.fallbacks.iter().map(String::as_str));
        }
        if deployments.is_empty() {
            return Err(if fitting == 0 && largest < u64::MAX {
                PlanError::ContextTooLong { needed: prompt_tokens, largest }
            } else {
                PlanError::AllDown
            });
        }
        Ok(RoutePlan { deployments })
    }
}

/// A deployment's sort key within its tier: lower goes first. The weighted part is the
/// Efraimidis–Spirakis key (`-ln(u) / weight`, an exponential with rate `weight`), so sorting
/// by it is sampling without replacement in proportion to weight; other strategies use it to
/// break ties.
fn rank(strategy: Strategy, view: &DeploymentView, weight: u32, random: &mut dyn FnMut() -> f64) -> f64 {
    let u = random().clamp(f64::MIN_POSITIVE, 1.0 - f64::EPSILON);
    let weighted = -(1.0 - u).ln() / f64::from(weight.max(1));
    // Keeps the tie-breaker below 1, so it never outweighs a whole unit of the primary key.
    let tie = weighted / (1.0 + weighted);
    match strategy {
        Strategy::Weighted => weighted,
        Strategy::LeastInFlight => view.in_flight as f64 + tie,
        Strategy::LowestLatency => view.latency_ms.unwrap_or(0.0).floor() + tie,
        Strategy::LowestCost => view.cost as f64 + tie,
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
#[path = "routing_tests.rs"]
mod tests;
