//! `moat secrets`: a generated master key, and a rotation to a new one that leaves everything
//! readable under the new key alone, run as an operator runs it.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::process::Command;

use moat_store::PromptLog;
use moat_store::sealing::{MasterKey, MasterKeys};

const MOAT: &str = env!("CARGO_BIN_EXE_moat");

fn secrets(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(MOAT);
    command.arg("secrets").args(args).env_remove("MOAT_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("run moat");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn generated() -> String {
    let (ok, stdout, stderr) = secrets(&["generate-key"], &[]);
    assert!(ok, "{stderr}");
    stdout.trim().to_owned()
}

fn log(id: &str) -> PromptLog {
    PromptLog {
        request_id: id.into(),
        team_id: None,
        created_at_ms: 1_800_000_000_000,
        expires_at_ms: 4_000_000_000_000,
        request: format!("the prompt of {id}"),
        completion: "the answer".into(),
    }
}

#[tokio::test]
async fn rotation_moves_everything_to_the_new_master_key() {
    let (old, new) = (generated(), generated());
    assert_ne!(old, new);
    assert_eq!(old.len(), 44, "32 bytes in base64: {old}");
    let old_key = MasterKey::from_text(&old).expect("the printed key reads back");
    let new_key = MasterKey::from_text(&new).expect("the printed key reads back");

    let dir = tempfile::tempdir().expect("tempdir");
    let store_url = format!("sqlite://{}/moat.db", dir.path().display());
    let store = moat_store::Store::open(&store_url).await.expect("store");
    let before = MasterKeys::new(old_key.clone(), vec![]);
    let data_key = store.active_data_key(&before, 1_800_000_000_000).await.expect("data key");
    for i in 0..3 {
        store.insert_prompt_log(&data_key, &log(&format!("req_{i}"))).await.expect("insert");
    }

    let config = dir.path().join("moat.toml");
    let write = |previous: &str| {
        let text = format!(
            "[store]\nurl = \"{store_url}\"\n[encryption]\nkey = {{ env = \"NEW_KEY\" }}\nprevious_keys = [{previous}]\n"
        );
        std::fs::write(&config, text).expect("config");
    };
    let path = config.to_str().expect("utf-8");

    // Without the old key nothing can be re-encrypted; the error names the key it needs.
    write("");
    let (ok, _, stderr) = secrets(&["rotate", "--config", path], &[("NEW_KEY", &new)]);
    assert!(!ok);
    assert!(stderr.contains(old_key.id()) && stderr.contains("previous_keys"), "{stderr}");
    assert!(!stderr.contains(&old) && !stderr.contains(&new), "a key in an error: {stderr}");

    write("{ env = \"OLD_KEY\" }");
    let (ok, stdout, stderr) = secrets(&["rotate", "--config", path], &[("NEW_KEY", &new), ("OLD_KEY", &old)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("3 values re-encrypted") && stdout.contains("1 data key re-wrapped"), "{stdout}");
    assert!(stdout.contains(new_key.id()), "{stdout}");

    // The old key can go: everything opens under the new one alone.
    let after = MasterKeys::new(new_key, vec![]);
    for i in 0..3 {
        let id = format!("req_{i}");
        assert_eq!(store.prompt_log(&after, &id).await.expect("read"), Some(log(&id)));
    }

    let (ok, _, stderr) = secrets(&["rotate"], &[]);
    assert!(!ok && stderr.contains("[encryption] key"), "{stderr}");
}
