//! The Helm chart in `deploy/helm/moat`, checked as far as a machine without Helm or a cluster
//! can: its values against its own schema, every `.Values` reference against the values, the
//! template blocks balanced, the embedded moat.toml accepted by this moat, and the timing
//! between probes, drain and grace period that a rolling update needs to fail no request.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

const MOAT: &str = env!("CARGO_BIN_EXE_moat");

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/helm/moat")
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn values() -> Value {
    yaml(&chart().join("values.yaml"))
}

/// The templates, by file name.
fn templates() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(chart().join("templates"))
        .expect("templates")
        .map(|entry| {
            let path = entry.expect("entry").path();
            let name = path.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).expect("read"))
        })
        .collect();
    found.sort();
    found
}

/// Checks `value` against the subset of JSON Schema the chart's schema uses; returns problems.
fn check(schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let is = |t: &str| match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            problems.push(format!("{at}: expected {types:?}, found {value}"));
            return;
        }
    }
    if let (Some(min), Some(n)) = (schema.get("minimum").and_then(Value::as_i64), value.as_i64())
        && n < min
    {
        problems.push(format!("{at}: {n} is below {min}"));
    }
    if let (Some(max), Some(n)) = (schema.get("maximum").and_then(Value::as_i64), value.as_i64())
        && n > max
    {
        problems.push(format!("{at}: {n} is above {max}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(min), Some(s)) = (schema.get("minLength").and_then(Value::as_u64), value.as_str())
        && (s.len() as u64) < min
    {
        problems.push(format!("{at}: shorter than {min}"));
    }
    let Some(object) = value.as_object() else { return };
    let properties = schema.get("properties").and_then(Value::as_object);
    for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        if !object.contains_key(name) {
            problems.push(format!("{at}.{name}: required"));
        }
    }
    for (key, member) in object {
        let path = format!("{at}.{key}");
        match (properties.and_then(|p| p.get(key)), schema.get("additionalProperties")) {
            (Some(sub), _) => check(sub, member, &path, problems),
            (None, Some(Value::Bool(false))) => problems.push(format!("{path}: not in the schema")),
            (None, Some(sub @ Value::Object(_))) => check(sub, member, &path, problems),
            (None, _) => {}
        }
    }
}

#[test]
fn the_values_satisfy_the_charts_schema_and_the_schema_catches_mistakes() {
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(chart().join("values.schema.json")).expect("values.schema.json"))
            .expect("the schema is JSON");
    let values = values();
    let mut problems = Vec::new();
    check(&schema, &values, "values", &mut problems);
    assert!(problems.is_empty(), "{problems:#?}");

    // The same check finds a misspelt key, a wrong type and a value out of range.
    let mut wrong = values.clone();
    wrong["replicaCont"] = Value::from(3);
    wrong["service"]["port"] = Value::from("eighty");
    wrong["autoscaling"]["targetCPUUtilizationPercentage"] = Value::from(250);
    let mut problems = Vec::new();
    check(&schema, &wrong, "values", &mut problems);
    assert_eq!(problems.len(), 3, "{problems:#?}");

    let chart_yaml = yaml(&chart().join("Chart.yaml"));
    assert_eq!(chart_yaml["apiVersion"], "v2");
    assert_eq!(chart_yaml["name"], "moat");
}

#[test]
fn every_values_reference_in_the_templates_exists_and_every_block_is_closed() {
    let values = values();
    let mut missing = Vec::new();
    for (name, text) in templates() {
        for (at, _) in text.match_indices(".Values.") {
            let path: String = text[at + ".Values.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_')
                .collect();
            let found = path.split('.').filter(|p| !p.is_empty()).try_fold(&values, |v, key| v.get(key));
            if found.is_none() {
                missing.push(format!("{name}: .Values.{path}"));
            }
        }
        let actions: Vec<&str> = text.split("{{").skip(1).map(|a| a.trim_start_matches('-').trim_start()).collect();
        let opened =
            actions.iter().filter(|a| ["if ", "range ", "with ", "define "].iter().any(|k| a.starts_with(k))).count();
        let closed = actions.iter().filter(|a| a.starts_with("end")).count();
        assert_eq!(opened, closed, "{name}: {opened} blocks opened, {closed} closed");
        assert_eq!(text.matches("{{").count(), text.matches("}}").count(), "{name}: unbalanced braces");
    }
    assert!(missing.is_empty(), "references to values that do not exist: {missing:#?}");
}

#[test]
fn the_charts_config_passes_moat_config_check_with_the_secrets_it_names() {
    let values = values();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(&config, values["config"].as_str().expect("config is a string")).expect("write");
    let mut check = Command::new(MOAT);
    check.args(["config", "check", config.to_str().expect("utf-8")]);
    for (name, _) in values["secret"]["env"].as_object().expect("secret.env") {
        let stand_in = if name == "MOAT__STORE__URL" { "postgres://moat:pw@postgres:5432/moat" } else { "x" };
        check.env(name, stand_in);
    }
    let out = check.output().expect("run config check");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = values["config"].as_str().unwrap_or_default();
    for needle in ["migrate = \"check\"", "[redis]", "journal = \"/var/lib/moat/", "listen = \"0.0.0.0:4000\""] {
        assert!(text.contains(needle), "the chart's config sets {needle}");
    }
}

/// A rolling update fails no request only if the Service stops routing to a pod before moat
/// stops accepting, and Kubernetes waits for the drain before it kills the pod.
#[test]
fn probes_drain_and_grace_period_fit_together() {
    let values = values();
    let config: String = values["config"].as_str().expect("config").to_owned();
    let setting = |key: &str| -> Duration {
        let line = config.lines().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("{key} is set"));
        let quoted = line.split('"').nth(1).expect("a quoted duration");
        let seconds: u64 = quoted.trim_end_matches('s').parse().expect("whole seconds");
        Duration::from_secs(seconds)
    };
    let (drain, grace) = (setting("drain_delay"), setting("shutdown_grace"));
    let readiness = &values["probes"]["readiness"];
    let noticed = Duration::from_secs(
        readiness["periodSeconds"].as_u64().expect("period")
            * readiness["failureThreshold"].as_u64().expect("threshold"),
    );
    assert!(drain > noticed, "drain_delay {drain:?} must outlast readiness noticing ({noticed:?})");
    let termination = Duration::from_secs(values["terminationGracePeriodSeconds"].as_u64().expect("seconds"));
    assert!(drain + grace + Duration::from_secs(10) <= termination, "Kubernetes would kill moat mid-drain");

    let deployment = templates().into_iter().find(|(n, _)| n == "deployment.yaml").expect("deployment").1;
    for needle in ["path: /readyz", "path: /healthz", "maxUnavailable: 0", "readOnly: true", "checksum/config"] {
        assert!(deployment.contains(needle), "deployment.yaml has {needle}");
    }
    let names: Vec<String> = templates().into_iter().map(|(n, _)| n).collect();
    for file in ["hpa.yaml", "pdb.yaml", "migrate-job.yaml", "secret.yaml", "configmap.yaml", "service.yaml"] {
        assert!(names.iter().any(|n| n == file), "the chart ships {file}");
    }
    assert_eq!(values["podSecurityContext"]["runAsNonRoot"], true);
    assert_eq!(values["podSecurityContext"]["runAsUser"], 65532, "the image's user");
}
