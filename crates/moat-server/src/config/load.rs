//! Reading configuration from a file and the environment into checked [`Settings`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use super::env::apply_overrides;
use super::raw::RawConfig;
use super::validate::{Settings, validate};

/// One problem in the configuration, at a path such as `deployments[1].url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Where: a field path, or an environment variable's name.
    pub path: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or `built-in defaults`) the problems were found in.
    pub source: String,
    /// The problems, in the order found.
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        writeln!(f, "{} has {n} problem{}:", self.source, if n == 1 { "" } else { "s" })?;
        for issue in &self.issues {
            if issue.path.is_empty() {
                writeln!(f, "  - {}", issue.message)?;
            } else {
                writeln!(f, "  - {}: {}", issue.path, issue.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Loads the file at `path` (or only defaults when `None`), applies `MOAT__*` overrides from
/// `env`, resolves secrets from `env`, and validates the result.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    match path {
        None => load_from_str("", "built-in defaults", env),
        Some(path) => {
            let source = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
                source: source.clone(),
                issues: vec![ConfigIssue { path: String::new(), message: format!("cannot read the file: {e}") }],
            })?;
            load_from_str(&text, &source, env)
        }
    }
}

/// Like [`load`], from TOML text; `source` names it in errors.
pub fn load_from_str(text: &str, source: &str, env: &HashMap<String, String>) -> Result<Settings, ConfigError> {
    let fail = |issues| ConfigError { source: source.to_owned(), issues };
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        fail(vec![ConfigIssue { path: String::new(), message: e.to_string().trim().to_owned() }])
    })?;
    let problems = apply_overrides(&mut table, env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if !problems.is_empty() {
        return Err(fail(problems.into_iter().map(|(path, message)| ConfigIssue { path, message }).collect()));
    }
    let raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        fail(vec![ConfigIssue { path, message: e.into_inner().message().to_owned() }])
    })?;
    validate(raw, env).map_err(fail)
}
