//! Encryption at rest against a real SQLite file and a real PostgreSQL server: prompt logs are
//! unreadable in the database, open only with the master key, expire, and survive rotation.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod common;
use common::TestDb;
use moat_store::sealing::{MasterKey, MasterKeys, SealError};
use moat_store::{PromptLog, StoreError};

const HOUR_MS: i64 = 3_600_000;

fn master() -> MasterKey {
    MasterKey::from_text(&MasterKey::generate_text()).expect("a generated key reads back")
}

fn log(id: &str, now_ms: i64) -> PromptLog {
    PromptLog {
        request_id: id.into(),
        team_id: Some("team_a".into()),
        created_at_ms: now_ms,
        expires_at_ms: now_ms + 24 * HOUR_MS,
        request: format!(r#"{{"messages":[{{"role":"user","content":"quarterly numbers {id}"}}]}}"#),
        completion: format!("Revenue grew, {id}."),
    }
}

/// Every stored byte of the prompt log tables and data keys, to search for plaintext.
async fn stored_bytes(db: &TestDb) -> Vec<Vec<u8>> {
    use sqlx::{Connection, Row};
    let sql = "SELECT sealed AS b FROM prompt_logs UNION ALL SELECT wrapped AS b FROM data_keys";
    let rows: Vec<Vec<u8>> = if db.is_postgres() {
        let mut c = sqlx::PgConnection::connect(&db.url).await.expect("connect");
        sqlx::query(sql).fetch_all(&mut c).await.expect(sql).iter().map(|r| r.get("b")).collect()
    } else {
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.expect("connect");
        sqlx::query(sql).fetch_all(&mut c).await.expect(sql).iter().map(|r| r.get("b")).collect()
    };
    rows
}

async fn prompt_logs_are_sealed_and_open_only_with_the_master_key(db: TestDb) {
    let store = db.open().await;
    let keys = MasterKeys::new(master(), vec![]);
    let now = 1_800_000_000_000;
    let key = store.active_data_key(&keys, now).await.expect("a data key is created");
    assert_eq!(store.active_data_key(&keys, now).await.expect("and reused").id(), key.id());
    store.insert_prompt_log(&key, &log("req_1", now)).await.expect("insert");
    store.insert_prompt_log(&key, &log("req_1", now + 1)).await.expect("a second log for a request is ignored");
    assert_eq!(store.prompt_log(&keys, "req_1").await.expect("read"), Some(log("req_1", now)));
    assert_eq!(store.prompt_log(&keys, "req_2").await.expect("read"), None);
    for bytes in stored_bytes(&db).await {
        assert!(!bytes.windows(9).any(|w| w == b"quarterly"), "plaintext stored");
        assert!(!bytes.windows(7).any(|w| w == b"Revenue"), "plaintext stored");
    }
    // The database alone, or with the wrong master key, reveals nothing.
    let stranger = MasterKeys::new(master(), vec![]);
    assert!(matches!(
        store.prompt_log(&stranger, "req_1").await,
        Err(StoreError::Sealing(SealError::UnknownMasterKey { .. }))
    ));
    // A sealed value copied onto another row does not open there.
    store.insert_prompt_log(&key, &log("req_2", now)).await.expect("insert");
    db.execute("UPDATE prompt_logs SET sealed = (SELECT sealed FROM prompt_logs WHERE request_id = 'req_1') WHERE request_id = 'req_2'")
        .await;
    assert!(matches!(store.prompt_log(&keys, "req_2").await, Err(StoreError::Sealing(SealError::Unreadable))));
}

async fn expired_prompt_logs_are_pruned(db: TestDb) {
    let store = db.open().await;
    let keys = MasterKeys::new(master(), vec![]);
    let now = 1_800_000_000_000;
    let key = store.active_data_key(&keys, now).await.expect("key");
    let mut short = log("req_short", now);
    short.expires_at_ms = now + HOUR_MS;
    store.insert_prompt_log(&key, &short).await.expect("insert");
    store.insert_prompt_log(&key, &log("req_long", now)).await.expect("insert");
    assert_eq!(store.prune_prompt_logs(now + HOUR_MS - 1).await.expect("prune"), 0);
    assert_eq!(store.prune_prompt_logs(now + HOUR_MS).await.expect("prune"), 1);
    assert_eq!(store.prompt_log(&keys, "req_short").await.expect("read"), None);
    assert!(store.prompt_log(&keys, "req_long").await.expect("read").is_some());
}

async fn rotation_reencrypts_everything_and_retires_the_old_master_key(db: TestDb) {
    let store = db.open().await;
    let old = master();
    let now = 1_800_000_000_000;
    let before = MasterKeys::new(old.clone(), vec![]);
    let first = store.active_data_key(&before, now).await.expect("key");
    for i in 0..450 {
        store.insert_prompt_log(&first, &log(&format!("req_{i:03}"), now)).await.expect("insert");
    }
    let new = master();
    // Without the old master key nothing can be re-encrypted, and nothing changes.
    let forgot = MasterKeys::new(new.clone(), vec![]);
    assert!(matches!(
        store.rotate_data_keys(&forgot, now).await,
        Err(StoreError::Sealing(SealError::UnknownMasterKey { .. }))
    ));
    let during = MasterKeys::new(new.clone(), vec![old.clone()]);
    let rotation = store.rotate_data_keys(&during, now + 1).await.expect("rotate");
    assert_eq!((rotation.reencrypted, rotation.rewrapped, rotation.deleted), (450, 1, 0), "{rotation:?}");
    assert_ne!(rotation.data_key, first.id());
    let active = store.active_data_key(&during, now + 2).await.expect("key");
    assert_eq!(active.id(), rotation.data_key);
    // The old master key can now go: everything opens with the new one alone.
    let after = MasterKeys::new(new.clone(), vec![]);
    assert_eq!(store.prompt_log(&after, "req_449").await.expect("read"), Some(log("req_449", now)));
    assert_eq!(store.prompt_log(&after, "req_000").await.expect("read"), Some(log("req_000", now)));
    // A gateway that still sealed with the retired key just after is caught by the next
    // rotation, and retired keys nothing uses are deleted once the grace hour has passed: the
    // first one goes, the one this rotation just retired stays for now.
    store.insert_prompt_log(&first, &log("req_late", now + 3)).await.expect("insert");
    let again = store.rotate_data_keys(&after, now + 2 * HOUR_MS).await.expect("rotate again");
    assert_eq!((again.reencrypted, again.rewrapped, again.deleted), (451, 0, 1), "{again:?}");
    assert_eq!(store.prompt_log(&after, "req_late").await.expect("read"), Some(log("req_late", now + 3)));
}

on_both_backends!(
    prompt_logs_are_sealed_and_open_only_with_the_master_key,
    expired_prompt_logs_are_pruned,
    rotation_reencrypts_everything_and_retires_the_old_master_key,
);
