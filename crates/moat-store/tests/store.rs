//! The store against a real SQLite file: keys, usage records, and the batched writer.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::time::Duration;

use moat_core::{ModelAccess, Role, Usage, UsageRecord};
use moat_store::{NewKey, Store, UsageFilter, UsageWriter, UsageWriterConfig};

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/nested/moat.db", dir.path().display());
    let store = Store::open(&url).await.expect("open store");
    (dir, store)
}

fn new_key(id: &str, hash: u8, role: Role) -> NewKey {
    NewKey {
        id: id.into(),
        name: format!("name-{id}"),
        owner: Some("alice".into()),
        role,
        secret_hash: vec![hash; 32],
        prefix: "moat_sk_ab".into(),
        models: ModelAccess::Only(vec!["gemma".into()]),
        created_at_ms: 1_000 + i64::from(hash),
        expires_at_ms: None,
    }
}

fn record(id: &str, key: &str, model: &str, status: u16) -> UsageRecord {
    UsageRecord {
        id: id.into(),
        created_at_ms: 5_000,
        key_id: Some(key.into()),
        model: model.into(),
        deployment: Some("d".into()),
        endpoint: "chat.completions".into(),
        status,
        error_code: None,
        usage: Usage { input: 10, output: 20, cached: 3, cache_write: 2, reasoning: 1 },
        estimated: false,
        streamed: true,
        latency_ms: 42,
        ttft_ms: Some(7),
    }
}

#[tokio::test]
async fn keys_round_trip_and_revoke_once() {
    let (_dir, store) = open().await;
    assert!(!store.has_active_admin_key().await.expect("query"));
    store.insert_key(&new_key("k1", 1, Role::Client)).await.expect("insert");
    let admin = NewKey { models: ModelAccess::All, ..new_key("k2", 2, Role::Admin) };
    store.insert_key(&admin).await.expect("insert");
    assert!(store.has_active_admin_key().await.expect("query"));

    let found = store.key_by_hash(&[1; 32]).await.expect("query").expect("present");
    assert_eq!(found.id, "k1");
    assert_eq!(found.models, ModelAccess::Only(vec!["gemma".into()]));
    assert_eq!(store.key_by_id("k2").await.expect("query").map(|k| k.models), Some(ModelAccess::All));
    assert_eq!(store.key_by_hash(&[9; 32]).await.expect("query"), None);

    let ids: Vec<_> = store.list_keys(false).await.expect("list").into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["k2", "k1"], "newest first");

    let revoked = store.revoke_key("k1", 77).await.expect("revoke").expect("present");
    assert_eq!(revoked.revoked_at_ms, Some(77));
    let again = store.revoke_key("k1", 99).await.expect("revoke").expect("present");
    assert_eq!(again.revoked_at_ms, Some(77), "the first revocation time stays");
    assert_eq!(store.revoke_key("nope", 1).await.expect("revoke"), None);
    assert_eq!(store.list_keys(false).await.expect("list").len(), 1);
    assert_eq!(store.list_keys(true).await.expect("list").len(), 2);

    let duplicate = store.insert_key(&new_key("k3", 1, Role::Client)).await;
    assert!(duplicate.is_err(), "two keys can never share a secret hash");
}

#[tokio::test]
async fn usage_filters_and_pages_newest_first() {
    let (_dir, store) = open().await;
    let records = vec![record("0001", "a", "m1", 200), record("0002", "b", "m1", 502), record("0003", "a", "m2", 200)];
    store.insert_usage(&records).await.expect("insert");
    store.insert_usage(&records[..1]).await.expect("a retried batch is ignored, not duplicated");

    let query = |filter: UsageFilter| {
        let store = store.clone();
        async move {
            store
                .query_usage(&UsageFilter { limit: 10, ..filter })
                .await
                .expect("query")
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(query(UsageFilter::default()).await, ["0003", "0002", "0001"]);
    assert_eq!(query(UsageFilter { key_id: Some("a".into()), ..Default::default() }).await, ["0003", "0001"]);
    assert_eq!(query(UsageFilter { model: Some("m1".into()), ..Default::default() }).await, ["0002", "0001"]);
    assert_eq!(query(UsageFilter { status: Some(502), ..Default::default() }).await, ["0002"]);
    assert_eq!(query(UsageFilter { before_id: Some("0003".into()), ..Default::default() }).await, ["0002", "0001"]);
    assert_eq!(query(UsageFilter { from_ms: Some(5_001), ..Default::default() }).await, Vec::<String>::new());
    let limited = store.query_usage(&UsageFilter { limit: 1, ..Default::default() }).await.expect("query");
    assert_eq!(limited, vec![records[2].clone()], "every field survives the round trip");
}

#[tokio::test]
async fn writer_batches_and_drains_everything_queued() {
    let (_dir, store) = open().await;
    let (sink, writer) = UsageWriter::spawn(store.clone(), UsageWriterConfig { max_batch: 7, ..Default::default() });
    for i in 0..100 {
        sink.record(record(&format!("{i:04}"), "a", "m", 200)).await;
    }
    writer.drain(Duration::from_secs(5)).await;
    let stored = store.query_usage(&UsageFilter { limit: 1000, ..Default::default() }).await.expect("query");
    assert_eq!(stored.len(), 100);
    // After drain, the sink refuses quietly (logged) instead of hanging.
    sink.record(record("late", "a", "m", 200)).await;
}

#[tokio::test]
async fn persisted_count_is_observable() {
    let (_dir, store) = open().await;
    let (sink, writer) = UsageWriter::spawn(store, UsageWriterConfig::default());
    let mut persisted = writer.persisted();
    sink.record(record("x", "a", "m", 200)).await;
    tokio::time::timeout(Duration::from_secs(5), persisted.wait_for(|n| *n >= 1))
        .await
        .expect("written in time")
        .expect("writer alive");
    writer.drain(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn unknown_backends_are_refused_without_leaking_passwords() {
    let err = Store::open("mysql://root:hunter2@db/x").await.expect_err("unsupported");
    let message = err.to_string();
    assert!(message.contains("mysql://***@db/x"), "{message}");
    assert!(!message.contains("hunter2"));
}

#[tokio::test]
async fn records_survive_a_store_that_is_briefly_broken() {
    let (dir, store) = open().await;
    let url = format!("sqlite://{}/nested/moat.db", dir.path().display());
    let saboteur = sqlx::SqlitePool::connect(&url).await.expect("second connection");
    sqlx::query("ALTER TABLE usage_records RENAME TO usage_records_away").execute(&saboteur).await.expect("break");

    let (sink, writer) = UsageWriter::spawn(
        store.clone(),
        UsageWriterConfig { max_backoff: Duration::from_millis(50), ..Default::default() },
    );
    let mut failed = writer.failed_writes();
    let mut persisted = writer.persisted();
    sink.record(record("survivor", "a", "m", 200)).await;
    tokio::time::timeout(Duration::from_secs(5), failed.wait_for(|n| *n >= 2))
        .await
        .expect("writes fail")
        .expect("alive");
    assert_eq!(*persisted.borrow(), 0);

    sqlx::query("ALTER TABLE usage_records_away RENAME TO usage_records").execute(&saboteur).await.expect("repair");
    tokio::time::timeout(Duration::from_secs(5), persisted.wait_for(|n| *n >= 1))
        .await
        .expect("retried")
        .expect("alive");
    writer.drain(Duration::from_secs(1)).await;
    let stored = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["survivor"]);
}
