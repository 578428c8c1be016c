//! Project rules checked on every `cargo test`.

use std::path::Path;

use crate::{config_docs, project_root};

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn config_docs_are_up_to_date() {
    let path = project_root().join("docs/config.md");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == config_docs::render(),
        "docs/config.md is stale: run `cargo xtask config-docs` and commit the result"
    );
}

#[test]
fn one_tls_stack_rustls() {
    let lock = read(&project_root().join("Cargo.lock"));
    for banned in ["name = \"openssl-sys\"", "name = \"native-tls\"", "name = \"openssl\""] {
        assert!(!lock.contains(banned), "{banned} is in Cargo.lock: moat uses rustls only (see deny.toml)");
    }
}

#[test]
fn every_crate_root_says_what_it_is_for() {
    let crates = project_root().join("crates");
    for entry in std::fs::read_dir(&crates).expect("crates/") {
        let dir = entry.expect("entry").path();
        for root in ["src/lib.rs", "src/main.rs"] {
            let file = dir.join(root);
            if file.exists() {
                let text = read(&file);
                assert!(text.trim_start().starts_with("//!"), "{} must start with a `//!` doc comment", file.display());
            }
        }
    }
}

#[test]
fn no_source_file_grows_past_a_thousand_lines() {
    fn walk(dir: &Path, offenders: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, offenders);
            } else if path.extension().is_some_and(|e| e == "rs") && read(&path).lines().count() > 1000 {
                offenders.push(path.display().to_string());
            }
        }
    }
    let mut offenders = Vec::new();
    walk(&project_root().join("crates"), &mut offenders);
    assert!(offenders.is_empty(), "split these along their seams: {offenders:?}");
}

#[test]
fn scripts_parse() {
    let root = project_root();
    for script in [
        "scripts/test",
        "scripts/quickstart",
        "scripts/install-e2e-deps",
        "scripts/fuzz",
        "scripts/check-log-capture",
        ".ci/run",
    ] {
        let status = std::process::Command::new("bash").arg("-n").arg(root.join(script)).status().expect("bash");
        assert!(status.success(), "{script} has a syntax error");
    }
}

#[test]
fn ci_runs_exactly_the_readme_test_command() {
    let root = project_root();
    let readme = read(&root.join("README.md"));
    let ci = read(&root.join(".ci/run"));
    assert!(readme.contains("scripts/test"), "the README names the test command");
    assert!(ci.lines().any(|l| l.trim() == "exec scripts/test"), ".ci/run runs the README's test command");
}
