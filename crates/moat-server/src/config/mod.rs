//! Configuration: the file's shape ([`raw`]), where values come from ([`load`]), and the
//! checked runtime form ([`validate`]).
//!
//! The config file holds topology (listener, store, deployments, models); keys and usage are
//! data in the store. Layers apply in order: built-in defaults, the TOML file, then environment
//! variables `MOAT__SECTION__KEY`. Validation reports every problem at once, each with its path.

mod env;
mod load;
pub mod raw;
mod validate;

pub use load::{ConfigError, ConfigIssue, load, load_from_str};
pub use raw::RawConfig;
pub use validate::{LogFormat, RoutingSettings, Settings};

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

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
}
