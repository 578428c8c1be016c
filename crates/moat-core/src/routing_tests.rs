use super::*;

fn member(id: usize, weight: u32, tier: u32) -> Member {
    Member { deployment: DeploymentId(id), weight, tier }
}

fn route(members: Vec<Member>, strategy: Strategy, fallbacks: &[&str]) -> ModelRoute {
    ModelRoute { members, strategy, fallbacks: fallbacks.iter().map(|s| (*s).to_owned()).collect(), cache: None }
}

fn up() -> DeploymentView {
    DeploymentView { available: true, in_flight: 0, latency_ms: None, cost: 0, context_window: None }
}

/// A small deterministic generator (xorshift), so statistical tests are reproducible.
fn rng(seed: u64) -> impl FnMut() -> f64 {
    let mut state = seed.max(1);
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn ids(plan: Result<RoutePlan, PlanError>) -> Vec<usize> {
    plan.map(|p| p.deployments.into_iter().map(|d| d.0).collect()).unwrap_or_default()
}

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
    catalog.insert("qwen3-coder".into(), route(vec![member(0, 1, 0)], Strategy::Weighted, &[]));
    catalog.insert("claude-haiku-4".into(), route(vec![member(1, 1, 0)], Strategy::Weighted, &[]));
    catalog.alias("*-haiku-*".into(), "qwen3-coder".into());
    catalog.alias("claude-*".into(), "qwen3-coder".into());
    assert_eq!(catalog.resolve("claude-haiku-4"), Some("claude-haiku-4"), "a configured name is never aliased");
    assert_eq!(catalog.resolve("claude-opus-4-5"), Some("qwen3-coder"));
    assert_eq!(catalog.resolve("gpt-5"), None);
    assert_eq!(catalog.names().collect::<Vec<_>>(), ["qwen3-coder", "claude-haiku-4"], "config order");
}

#[test]
fn weights_three_to_one_split_first_picks_three_to_one() {
    let mut catalog = ModelCatalog::default();
    catalog.insert("m".into(), route(vec![member(0, 3, 0), member(1, 1, 0)], Strategy::Weighted, &[]));
    let mut random = rng(7);
    let runs = 20_000;
    let first_is_heavy =
        (0..runs).filter(|_| ids(catalog.plan("m", 10, &|_| up(), &mut random))[0] == 0).count() as f64 / runs as f64;
    // Expected 0.75; 20,000 draws put four standard deviations at about ±0.012.
    assert!((first_is_heavy - 0.75).abs() < 0.012, "{first_is_heavy}");
    assert_eq!(ids(catalog.plan("m", 10, &|_| up(), &mut random)).len(), 2, "the other stays as a retry target");
}

#[test]
fn lower_tiers_serve_only_when_the_tier_above_has_nothing_available() {
    let mut catalog = ModelCatalog::default();
    catalog
        .insert("m".into(), route(vec![member(0, 1, 0), member(1, 1, 0), member(2, 100, 1)], Strategy::Weighted, &[]));
    let mut random = rng(3);
    for _ in 0..100 {
        let plan = ids(catalog.plan("m", 10, &|_| up(), &mut random));
        assert_eq!(plan[2], 2, "tier 1 comes after all of tier 0, whatever its weight: {plan:?}");
    }
    let tier0_down = |id: DeploymentId| DeploymentView { available: id.0 == 2, ..up() };
    assert_eq!(ids(catalog.plan("m", 10, &tier0_down, &mut random)), [2]);
}

#[test]
fn strategies_order_by_load_latency_and_price() {
    let views = |id: DeploymentId| match id.0 {
        0 => DeploymentView { in_flight: 5, latency_ms: Some(900.0), cost: 2_000_000, ..up() },
        1 => DeploymentView { in_flight: 1, latency_ms: Some(200.0), cost: 9_000_000, ..up() },
        _ => DeploymentView { in_flight: 3, latency_ms: None, cost: 0, ..up() },
    };
    let mut random = rng(11);
    let mut order = |strategy| {
        let mut catalog = ModelCatalog::default();
        catalog.insert("m".into(), route(vec![member(0, 1, 0), member(1, 1, 0), member(2, 1, 0)], strategy, &[]));
        ids(catalog.plan("m", 10, &views, &mut random))
    };
    assert_eq!(order(Strategy::LeastInFlight), [1, 2, 0]);
    assert_eq!(order(Strategy::LowestLatency), [2, 1, 0], "the unmeasured deployment is tried first");
    assert_eq!(order(Strategy::LowestCost), [2, 0, 1]);
}

#[test]
fn fallback_models_follow_once_each_without_cycles() {
    let mut catalog = ModelCatalog::default();
    catalog.insert("deepseek".into(), route(vec![member(0, 1, 0)], Strategy::Weighted, &["qwen", "deepseek"]));
    catalog.insert("qwen".into(), route(vec![member(1, 1, 0), member(0, 1, 0)], Strategy::Weighted, &["deepseek"]));
    let mut random = rng(5);
    assert_eq!(ids(catalog.plan("deepseek", 10, &|_| up(), &mut random)), [0, 1]);
    let down0 = |id: DeploymentId| DeploymentView { available: id.0 != 0, ..up() };
    assert_eq!(ids(catalog.plan("deepseek", 10, &down0, &mut random)), [1], "a down model falls back");
    let all_down = |_| DeploymentView { available: false, ..up() };
    assert_eq!(catalog.plan("deepseek", 10, &all_down, &mut random), Err(PlanError::AllDown));
    assert_eq!(catalog.plan("nope", 10, &|_| up(), &mut random), Err(PlanError::UnknownModel));
}

#[test]
fn long_prompts_go_to_deployments_with_room_for_them() {
    let mut catalog = ModelCatalog::default();
    catalog.insert("small".into(), route(vec![member(0, 1, 0)], Strategy::Weighted, &["large"]));
    catalog.insert("large".into(), route(vec![member(1, 1, 0)], Strategy::Weighted, &[]));
    let windows = |id: DeploymentId| DeploymentView { context_window: Some([8_192, 131_072][id.0]), ..up() };
    let mut random = rng(9);
    assert_eq!(ids(catalog.plan("small", 4_000, &windows, &mut random)), [0, 1]);
    assert_eq!(ids(catalog.plan("small", 50_000, &windows, &mut random)), [1], "too long for 8k: the 128k model");
    assert_eq!(
        catalog.plan("small", 200_000, &windows, &mut random),
        Err(PlanError::ContextTooLong { needed: 200_000, largest: 131_072 })
    );
}
