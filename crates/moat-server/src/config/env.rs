//! Environment overrides: `MOAT__SECTION__KEY=value` sets `[section] key = value`.
//!
//! Segments are lower-cased; a numeric segment indexes an array of tables
//! (`MOAT__DEPLOYMENTS__0__URL`). A value that parses as TOML (a number, a boolean, a quoted
//! string, an array) is taken as such; anything else is taken as a plain string.

use toml::{Table, Value};

/// The prefix of override variables.
pub const ENV_PREFIX: &str = "MOAT__";

/// Applies every override in `vars` to `table`; returns the problems found.
pub fn apply_overrides(table: &mut Table, vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut vars: Vec<_> = vars.into_iter().filter(|(name, _)| name.starts_with(ENV_PREFIX)).collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(str::to_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push((name, "empty path segment".into()));
            continue;
        }
        if let Err(message) = set(table, &path, parse_value(&raw)) {
            problems.push((name, message));
        }
    }
    problems
}

fn parse_value(raw: &str) -> Value {
    format!("v = {raw}")
        .parse::<Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_owned()))
}

fn set(table: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty path")?;
    let mut current = table;
    let mut i = 0;
    while i < parents.len() {
        let key = &parents[i];
        let entry = current.entry(key.clone()).or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(t) => t,
            Value::Array(items) => {
                let index_segment = parents.get(i + 1).map_or(last, |s| s);
                let index: usize = index_segment
                    .parse()
                    .map_err(|_| format!("`{key}` is a list; the next segment must be an index"))?;
                if index > items.len() {
                    return Err(format!("`{key}` has {} entries; index {index} would leave a gap", items.len()));
                }
                if index == items.len() {
                    items.push(Value::Table(Table::new()));
                }
                i += 1;
                if i == parents.len() {
                    return Err(format!("`{key}[{index}]` needs a field name after the index"));
                }
                match &mut items[index] {
                    Value::Table(t) => t,
                    _ => return Err(format!("`{key}[{index}]` is not a table")),
                }
            }
            _ => return Err(format!("`{key}` is not a table")),
        };
        i += 1;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(toml: &str, vars: &[(&str, &str)]) -> (Table, Vec<(String, String)>) {
        let mut table: Table = toml.parse().expect("valid toml");
        let problems = apply_overrides(&mut table, vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        (table, problems)
    }

    #[test]
    fn overrides_sections_and_array_entries() {
        let (table, problems) = apply(
            "[server]\nlisten = \"a\"\n[[deployments]]\nname = \"d\"\n",
            &[
                ("MOAT__SERVER__LISTEN", "0.0.0.0:9000"),
                ("MOAT__SERVER__MAX_BODY_BYTES", "1024"),
                ("MOAT__DEPLOYMENTS__0__URL", "http://x/v1"),
                ("MOAT__LOG__FORMAT", "json"),
                ("OTHER", "ignored"),
            ],
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(table["server"]["listen"].as_str(), Some("0.0.0.0:9000"));
        assert_eq!(table["server"]["max_body_bytes"].as_integer(), Some(1024));
        assert_eq!(table["deployments"][0]["url"].as_str(), Some("http://x/v1"));
        assert_eq!(table["deployments"][0]["name"].as_str(), Some("d"));
        assert_eq!(table["log"]["format"].as_str(), Some("json"));
    }

    #[test]
    fn reports_impossible_paths() {
        let (_, problems) = apply(
            "[[deployments]]\nname = \"d\"\n[server]\nlisten = \"a\"\n",
            &[("MOAT__DEPLOYMENTS__5__URL", "x"), ("MOAT__SERVER__LISTEN__X", "y"), ("MOAT__DEPLOYMENTS__NAME", "z")],
        );
        let names: Vec<_> = problems.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["MOAT__DEPLOYMENTS__5__URL", "MOAT__DEPLOYMENTS__NAME", "MOAT__SERVER__LISTEN__X"]);
    }
}
