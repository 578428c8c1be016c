//! Configuration: the file's shape ([`raw`]), where values come from ([`load`]), and the
//! checked runtime form ([`validate`]).
//!
//! The config file holds topology (listener, store, deployments, models); keys and usage are
//! data in the store. Layers apply in order: built-in defaults, the TOML file, then environment
//! variables `MOAT__SECTION__KEY`. Validation reports every problem at once, each with its path.

mod env;
mod load;
pub mod raw;
mod raw_security;
mod raw_server;
pub mod summary;
mod validate;
mod validate_security;

pub use load::{ConfigError, ConfigIssue, load, load_from_str};
pub use raw::RawConfig;
pub use validate::{LogFormat, RoutingSettings, Settings};

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret as _;

    use super::*;

    /// The configuration the public contract promises to accept as written.
    const CONTRACT: &str = r#"
[server]
listen = "127.0.0.1:4000"

[[deployments]]
name = "local-gemma"
url = "http://127.0.0.1:8080/v1"      # OpenAI-compatible base URL
dialects = ["openai"]
upstream_model = "gemma"              # the name sent upstream
# api_key = { env = "UPSTREAM_KEY" }

[[models]]
name = "gemma-3-270m"                 # the name clients ask for
deployments = ["local-gemma"]
"#;

    fn issues(text: &str, env: &[(&str, &str)]) -> Vec<(String, String)> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        match load_from_str(text, "test", &env) {
            Ok(_) => Vec::new(),
            Err(e) => e.issues.into_iter().map(|i| (i.path, i.message)).collect(),
        }
    }

    #[test]
    fn the_contract_config_is_accepted_as_written() {
        let settings = load_from_str(CONTRACT, "contract", &HashMap::new()).expect("accepted");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(settings.deployments[0].base_url, "http://127.0.0.1:8080/v1");
        assert_eq!(settings.deployments[0].upstream_model, "gemma");
        assert_eq!(settings.catalog.names().collect::<Vec<_>>(), ["gemma-3-270m"]);
    }

    /// The routing example in the README, exactly as printed there.
    fn readme_routing_example() -> String {
        let readme = include_str!("../../../../README.md");
        let start = readme.find("```toml\n[routing]").expect("the README has a routing example");
        let block = &readme[start + "```toml\n".len()..];
        block[..block.find("```").expect("closed block")].to_owned()
    }

    #[test]
    fn the_readme_routing_example_is_accepted_and_means_what_it_says() {
        let env = HashMap::from([("PROVIDER_KEY".to_owned(), "secret".to_owned())]);
        let settings = load_from_str(&readme_routing_example(), "README", &env).expect("accepted");
        let route = settings.catalog.route("qwen3-coder").expect("model");
        assert_eq!(route.strategy, moat_core::Strategy::LeastInFlight);
        let shape: Vec<(u32, u32)> = route.members.iter().map(|m| (m.weight, m.tier)).collect();
        assert_eq!(shape, [(3, 0), (1, 0), (1, 1)]);
        assert_eq!(route.fallbacks, ["qwen3-small"]);
        assert_eq!(settings.deployments[0].context_window, Some(131_072));
        assert_eq!(settings.deployments[0].price.input, 50_000, "$0.05 per Mtok in micro-dollars");
        assert_eq!(settings.deployments[2].price.output, 1_200_000);
        assert_eq!(settings.routing.max_attempts, 3);
        assert_eq!(settings.routing.breaker.consecutive_failures, 5);
    }

    #[test]
    fn routing_mistakes_are_reported_with_their_paths() {
        let text = r#"
[routing]
max_attempts = 0
breaker_failure_rate = 1.5
[[deployments]]
name = "a"
url = "http://127.0.0.1:1/v1"
upstream_model = "x"
idle_timeout = "0s"
price = { input = -1 }
[[models]]
name = "m"
strategy = "fastest"
fallbacks = ["nope", "m"]
deployments = [{ name = "a", weight = 0 }]
"#;
        let paths: Vec<String> = issues(text, &[]).into_iter().map(|(path, _)| path).collect();
        for expected in [
            "routing.max_attempts",
            "routing.breaker_failure_rate",
            "deployments[0].idle_timeout",
            "deployments[0].price.input",
            "models[0].strategy",
            "models[0].fallbacks[0]",
            "models[0].fallbacks[1]",
            "models[0].deployments[0].weight",
        ] {
            assert!(paths.iter().any(|p| p == expected), "{expected} missing from {paths:?}");
        }
    }

    #[test]
    fn no_file_means_defaults() {
        let settings = load(None, &HashMap::new()).expect("defaults are valid");
        assert_eq!(settings.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(settings.store_url, "sqlite://moat-data/moat.db");
        assert!(settings.deployments.is_empty());
        assert_eq!(settings.max_body_bytes, 32 * 1024 * 1024);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let text = r#"
[server]
listen = "not-an-address"
[log]
format = "xml"
[[deployments]]
name = "a"
url = "ftp://x"
dialects = ["openai", "grpc"]
upstream_model = ""
api_key = { env = "MISSING_KEY" }
[[deployments]]
name = "a"
url = "http://ok/v1"
upstream_model = "m"
[[models]]
name = "m"
deployments = ["a", "ghost"]
[[models]]
name = "m"
deployments = []
"#;
        let found = issues(text, &[]);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "server.listen",
                "log.format",
                "deployments[0].url",
                "deployments[0].dialects[1]",
                "deployments[0].upstream_model",
                "deployments[0].api_key",
                "deployments[1].name",
                "models[0].deployments[1]",
                "models[1].name",
                "models[1].deployments",
            ],
            "{found:#?}"
        );
        let message = |path: &str| found.iter().find(|(p, _)| p == path).map(|(_, m)| m.clone()).unwrap_or_default();
        assert_eq!(message("deployments[0].api_key"), "environment variable `MISSING_KEY` is not set");
        assert_eq!(message("models[0].deployments[1]"), "no deployment is named `ghost`");
    }

    #[test]
    fn unknown_fields_are_rejected_with_their_path() {
        let found = issues(
            "[[deployments]]\nname = \"a\"\nurl = \"http://x/v1\"\nupstream_model = \"m\"\ncolour = \"red\"\n",
            &[],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "deployments[0].colour");
        assert!(found[0].1.contains("unknown field `colour`"), "{found:?}");
        let found = issues("[sever]\nlisten = \"x\"\n", &[]);
        assert!(found[0].1.contains("unknown field `sever`"), "{found:?}");
        let found = issues("[server]\nmax_body_bytes = \"big\"\n", &[]);
        assert_eq!(found[0].0, "server.max_body_bytes");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let found = issues("[server\nlisten = 1", &[]);
        assert!(found[0].1.contains("line 1"), "{found:?}");
    }

    #[test]
    fn environment_overrides_win_over_the_file() {
        let env: HashMap<String, String> = [
            ("MOAT__SERVER__LISTEN", "0.0.0.0:9999"),
            ("MOAT__DEPLOYMENTS__0__UPSTREAM_MODEL", "other"),
            ("UPSTREAM_KEY", "s3cret"),
            ("MOAT__DEPLOYMENTS__0__API_KEY__ENV", "UPSTREAM_KEY"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let settings = load_from_str(CONTRACT, "contract", &env).expect("valid");
        assert_eq!(settings.listen.to_string(), "0.0.0.0:9999");
        assert_eq!(settings.deployments[0].upstream_model, "other");
        assert!(settings.deployments[0].api_key.is_some());
    }

    #[test]
    fn secrets_do_not_print() {
        let env: HashMap<String, String> = [("K".to_string(), "very-secret".to_string())].into();
        let text = CONTRACT.replace("# api_key = { env = \"UPSTREAM_KEY\" }", "api_key = { env = \"K\" }");
        let settings = load_from_str(&text, "contract", &env).expect("valid");
        assert!(!format!("{settings:?}").contains("very-secret"));
    }

    #[test]
    fn secrets_can_come_from_files() {
        let dir = std::env::temp_dir().join(format!("moat-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("key");
        std::fs::write(&file, "from-file\n").expect("write");
        let text = CONTRACT.replace(
            "# api_key = { env = \"UPSTREAM_KEY\" }",
            &format!("api_key = {{ file = \"{}\" }}", file.display()),
        );
        let settings = load_from_str(&text, "contract", &HashMap::new()).expect("valid");
        use secrecy::ExposeSecret;
        assert_eq!(
            settings.deployments[0].api_key.as_ref().map(|k| k.expose_secret().to_owned()).as_deref(),
            Some("from-file")
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn telemetry_is_checked_and_its_header_secrets_resolved_but_never_printed() {
        let good = format!(
            "{CONTRACT}\n[telemetry]\nendpoint = \"http://collector:4318/\"\nheaders = {{ authorization = {{ env = \"T\" }} }}\n"
        );
        let env: HashMap<String, String> = [("T".to_string(), "otlp-secret".to_string())].into();
        let settings = load_from_str(&good, "telemetry", &env).expect("valid");
        let telemetry = settings.telemetry.as_ref().expect("telemetry configured");
        assert_eq!(telemetry.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(telemetry.service_name, "moat");
        assert!((telemetry.sample_ratio - 1.0).abs() < f64::EPSILON);
        assert!(!format!("{settings:?}").contains("otlp-secret"));

        let bad = format!(
            "{CONTRACT}\n[telemetry]\nendpoint = \"collector:4318\"\nsample_ratio = 1.5\nexport_interval = \"0s\"\nheaders = {{ authorization = {{ env = \"MISSING\" }} }}\n"
        );
        let found = issues(&bad, &[]);
        for path in [
            "telemetry.endpoint",
            "telemetry.sample_ratio",
            "telemetry.export_interval",
            "telemetry.headers.authorization",
        ] {
            assert!(found.iter().any(|(p, _)| p == path), "{path} not reported: {found:?}");
        }
    }

    #[test]
    fn a_model_cache_needs_a_lifetime_and_a_known_scope() {
        let with = |cache: &str| {
            CONTRACT.replace(
                "deployments = [\"local-gemma\"]",
                &format!("deployments = [\"local-gemma\"]\ncache = {cache}"),
            )
        };
        let settings = load_from_str(&with("{ ttl = \"10m\" }"), "cache", &HashMap::new()).expect("valid");
        let route = settings.catalog.route("gemma-3-270m").expect("model");
        assert_eq!(
            route.cache,
            Some(moat_core::CachePolicy {
                ttl: std::time::Duration::from_secs(600),
                scope: moat_core::CacheScope::Team
            })
        );
        let found = issues(&with("{ ttl = \"0s\", scope = \"everyone\" }"), &[]);
        assert!(found.iter().any(|(p, _)| p == "models[0].cache.ttl"), "{found:?}");
        assert!(found.iter().any(|(p, m)| p == "models[0].cache.scope" && m.contains("`everyone`")), "{found:?}");
    }

    #[test]
    fn a_price_row_with_an_unknown_kind_is_refused_where_it_is() {
        let text = format!(
            "{CONTRACT}\n[[prices]]\nmodel = \"x\"\nprovider = \"y\"\nkind = \"closed\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n"
        );
        let found = issues(&text, &[]);
        assert!(found.iter().any(|(p, m)| p == "prices" && m.contains("`closed`")), "{found:?}");
    }

    #[test]
    fn a_self_hosted_cost_model_prices_the_deployment_from_the_gpu_catalog() {
        let with_cost = |cost: &str| {
            CONTRACT.replace("upstream_model = \"gemma\" ", &format!("upstream_model = \"gemma\"\ncost = {cost}\n"))
        };
        let settings = load_from_str(
            &with_cost(r#"{ gpus = 2, gpu = "H100 80GB SXM", gpu_provider = "runpod (community cloud)", tokens_per_hour = 9000000 }"#),
            "gpu",
            &HashMap::new(),
        )
        .expect("accepted");
        // The catalog's $2.69 an hour, twice, over 9 M tokens: $0.597778 per million.
        assert_eq!(settings.deployments[0].price.input, 597_778);
        assert_eq!(settings.deployments[0].price.output, 597_778);
        let own = load_from_str(
            &with_cost("{ gpus = 1, gpu_hour_usd = 1.0, tokens_per_hour = 1000000 }"),
            "own",
            &HashMap::new(),
        )
        .expect("accepted");
        assert_eq!(own.deployments[0].price.input, 1_000_000);
        let flat = load_from_str(&with_cost("{ per_mtok = 0.2 }"), "flat", &HashMap::new()).expect("accepted");
        assert_eq!(flat.deployments[0].cost_model, Some(moat_core::CostModel::PerMillionTokens(200_000)));

        let found = issues(&with_cost(r#"{ gpus = 0, gpu = "Abacus 9000" }"#), &[]);
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert!(paths.contains(&"deployments[0].cost.gpus"), "{found:?}");
        assert!(paths.contains(&"deployments[0].cost.tokens_per_hour"), "{found:?}");
        assert!(found.iter().any(|(p, m)| p == "deployments[0].cost.gpu" && m.contains("H100 80GB SXM")), "{found:?}");
        let both = with_cost("{ per_mtok = 0.2 }").replace("cost =", "price = { input = 1.0 }\ncost =");
        assert!(issues(&both, &[]).iter().any(|(p, m)| p == "deployments[0].cost" && m.contains("not both")));
    }

    #[test]
    fn a_webhook_url_can_be_a_secret_and_must_be_http() {
        let hooks = "\n[[alerts.webhooks]]\nurl = { env = \"SLACK_URL\" }\nformat = \"slack\"\n";
        let settings = load_from_str(
            &format!("{CONTRACT}{hooks}"),
            "hooks",
            &HashMap::from([("SLACK_URL".to_owned(), "https://hooks.slack.test/services/T/B/secret".to_owned())]),
        )
        .expect("accepted");
        assert_eq!(settings.webhooks[0].url.expose_secret(), "https://hooks.slack.test/services/T/B/secret");
        assert!(!format!("{:?}", settings.webhooks).contains("hooks.slack.test"), "a webhook URL never prints");
        let found = issues(&format!("{CONTRACT}\n[[alerts.webhooks]]\nurl = \"ftp://x\"\nformat = \"teams\"\n"), &[]);
        assert!(found.iter().any(|(p, _)| p == "alerts.webhooks[0].url"), "{found:?}");
        assert!(found.iter().any(|(p, _)| p == "alerts.webhooks[0].format"), "{found:?}");
        let missing = issues(&format!("{CONTRACT}{hooks}"), &[]);
        assert!(missing.iter().any(|(p, _)| p == "alerts.webhooks[0].url"), "{missing:?}");
    }

    #[test]
    fn outbound_urls_to_internal_addresses_need_their_network_allowed() {
        let metadata = "\n[[alerts.webhooks]]\nurl = \"http://169.254.169.254/latest/meta-data/\"\n";
        let found = issues(&format!("{CONTRACT}{metadata}"), &[]);
        assert!(found.iter().any(|(p, m)| p == "alerts.webhooks[0].url" && m.contains("link-local")), "{found:?}");
        let sso = "\n[sso]\nissuer = \"http://10.1.2.3:8080\"\nclient_id = \"moat\"\nredirect_url = \"https://moat.test/sso/callback\"\n";
        let found = issues(&format!("{CONTRACT}{sso}"), &[]);
        assert!(found.iter().any(|(p, m)| p == "sso.issuer" && m.contains("private")), "{found:?}");
        let allowed = "\n[egress]\nallowed_networks = [\"10.0.0.0/8\", \"127.0.0.1\"]\n";
        let settings =
            load_from_str(&format!("{CONTRACT}{sso}{allowed}"), "allowed", &HashMap::new()).expect("accepted");
        assert_eq!(settings.egress.refuses("10.9.9.9".parse().expect("ip")), None);
        assert!(settings.egress.refuses("192.168.1.1".parse().expect("ip")).is_some());
        let bad = issues(&format!("{CONTRACT}\n[egress]\nallowed_networks = [\"10.0.0.0/33\"]\n"), &[]);
        assert!(bad.iter().any(|(p, _)| p == "egress.allowed_networks[0]"), "{bad:?}");
    }
}
