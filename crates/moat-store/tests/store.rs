//! The store against a real SQLite file and a real PostgreSQL server: every operation, on
//! both backends (each test below runs twice, as `<test>::sqlite` and `<test>::postgres`).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

use std::time::Duration;

use moat_core::audit::{AuditEvent, verify_chain};
use moat_core::{ModelAccess, OrgRole, Role, TeamRole, Usage, UsageRecord, UserKind};
use moat_store::{
    AuditFilter, KeyFilter, KeyReader, MemberRecord, NewKey, NewUser, Store, StoreError, TeamRecord, UsageFilter,
    UsageWriter, UsageWriterConfig,
};

mod common;
use common::TestDb;

fn new_key(id: &str, hash: u8, role: Role) -> NewKey {
    NewKey {
        id: id.into(),
        name: format!("name-{id}"),
        owner: Some("alice".into()),
        user_id: None,
        team_id: None,
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
        cache_hit: false,
        cost_micro_usd: 0,
        user_id: None,
        team_id: None,
        reference_cost_micro_usd: 0,
        deployment_location: None,
        secrets_found: Default::default(),
        secrets_action: None,
    }
}

async fn keys_round_trip_and_revoke_once(db: TestDb) {
    let store = db.open().await;
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

    let ids: Vec<_> = store.list_keys(&active(100)).await.expect("list").into_iter().map(|k| k.id).collect();
    assert_eq!(ids, ["k2", "k1"], "newest first");

    let revoked = store.revoke_key("k1", 77).await.expect("revoke").expect("present");
    assert_eq!(revoked.revoked_at_ms, Some(77));
    let again = store.revoke_key("k1", 99).await.expect("revoke").expect("present");
    assert_eq!(again.revoked_at_ms, Some(77), "the first revocation time stays");
    assert_eq!(store.revoke_key("nope", 1).await.expect("revoke"), None);
    assert_eq!(store.list_keys(&active(100)).await.expect("list").len(), 1);
    let everything = KeyFilter { include_revoked: true, ..active(100) };
    assert_eq!(store.list_keys(&everything).await.expect("list").len(), 2);

    let duplicate = store.insert_key(&new_key("k3", 1, Role::Client)).await;
    assert!(duplicate.is_err(), "two keys can never share a secret hash");
}

/// Active keys, at most `limit` of them.
fn active(limit: u32) -> KeyFilter {
    KeyFilter { limit, ..KeyFilter::default() }
}

async fn keys_page_by_owner_and_by_what_the_reader_may_see(db: TestDb) {
    let store = db.open().await;
    store.insert_user(&new_user("usr_a", "ana@acme.test", OrgRole::Member)).await.expect("user");
    store.insert_user(&new_user("usr_b", "bo@acme.test", OrgRole::Member)).await.expect("user");
    for team in ["team_r", "team_g"] {
        let record = TeamRecord { id: team.into(), name: team.into(), created_at_ms: 1, external_id: None };
        store.insert_team(&record).await.expect("team");
    }
    // Ids sort as they were made: key_01 is the oldest.
    let owners = [
        ("key_01", Some("usr_a"), None),
        ("key_02", None, Some("team_r")),
        ("key_03", Some("usr_b"), None),
        ("key_04", None, Some("team_g")),
        ("key_05", Some("usr_a"), None),
        ("key_06", None, None),
        ("key_07", None, Some("team_r")),
    ];
    for (hash, (id, user, team)) in (1..).zip(owners) {
        let key =
            NewKey { user_id: user.map(Into::into), team_id: team.map(Into::into), ..new_key(id, hash, Role::Client) };
        store.insert_key(&key).await.expect("key");
    }
    store.revoke_key("key_05", 50).await.expect("revoke");
    let ids = |keys: Vec<moat_store::KeyRecord>| keys.into_iter().map(|k| k.id).collect::<Vec<_>>();

    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = ids(store.list_keys(&KeyFilter { before_id: before.clone(), ..active(2) }).await.expect("page"));
        before = page.last().cloned();
        let last = page.len() < 2;
        pages.push(page);
        if last {
            break;
        }
    }
    assert_eq!(pages, [vec!["key_07", "key_06"], vec!["key_04", "key_03"], vec!["key_02", "key_01"], vec![]]);

    let red = KeyFilter { team_id: Some("team_r".into()), ..active(100) };
    assert_eq!(ids(store.list_keys(&red).await.expect("team")), ["key_07", "key_02"]);
    let ana = KeyFilter { user_id: Some("usr_a".into()), include_revoked: true, ..active(100) };
    assert_eq!(ids(store.list_keys(&ana).await.expect("user")), ["key_05", "key_01"]);

    let reader = KeyReader { user_id: Some("usr_a".into()), team_ids: vec!["team_r".into()] };
    let seen = KeyFilter { visible_to: Some(reader.clone()), include_revoked: true, ..active(100) };
    assert_eq!(ids(store.list_keys(&seen).await.expect("reader")), ["key_07", "key_05", "key_02", "key_01"]);
    let first = KeyFilter { visible_to: Some(reader), ..active(2) };
    assert_eq!(
        ids(store.list_keys(&first).await.expect("reader")),
        ["key_07", "key_02"],
        "a full page of what they see"
    );
    let nobody = KeyFilter { visible_to: Some(KeyReader::default()), ..active(100) };
    assert!(store.list_keys(&nobody).await.expect("nobody").is_empty(), "no user and no team sees no key");
    let hostile = KeyFilter { team_id: Some("team_r' OR '1'='1".into()), ..active(100) };
    assert!(store.list_keys(&hostile).await.expect("bound, not spliced").is_empty());
}

async fn usage_filters_and_pages_newest_first(db: TestDb) {
    let store = db.open().await;
    let records = vec![
        record("0001", "a", "m1", 200),
        record("0002", "b", "m1", 502),
        UsageRecord { cache_hit: true, cost_micro_usd: 1_234, ..record("0003", "a", "m2", 200) },
    ];
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
    assert_eq!(query(UsageFilter { id: Some("0002".into()), ..Default::default() }).await, ["0002"]);
    assert_eq!(query(UsageFilter { before_id: Some("0003".into()), ..Default::default() }).await, ["0002", "0001"]);
    assert_eq!(query(UsageFilter { from_ms: Some(5_001), ..Default::default() }).await, Vec::<String>::new());
    let limited = store.query_usage(&UsageFilter { limit: 1, ..Default::default() }).await.expect("query");
    assert_eq!(limited, vec![records[2].clone()], "every field survives the round trip");
}

async fn writer_batches_and_drains_everything_queued(db: TestDb) {
    let store = db.open().await;
    let (sink, writer) = UsageWriter::spawn(store.clone(), UsageWriterConfig { max_batch: 7, ..Default::default() })
        .expect("writer starts");
    for i in 0..100 {
        sink.record(record(&format!("{i:04}"), "a", "m", 200)).await;
    }
    writer.drain(Duration::from_secs(5)).await;
    let stored = store.query_usage(&UsageFilter { limit: 1000, ..Default::default() }).await.expect("query");
    assert_eq!(stored.len(), 100);
    // After drain, the sink refuses quietly (logged) instead of hanging.
    sink.record(record("late", "a", "m", 200)).await;
}

async fn persisted_count_is_observable(db: TestDb) {
    let store = db.open().await;
    let (sink, writer) = UsageWriter::spawn(store, UsageWriterConfig::default()).expect("writer starts");
    let mut persisted = writer.persisted();
    sink.record(record("x", "a", "m", 200)).await;
    tokio::time::timeout(Duration::from_secs(5), persisted.wait_for(|n| *n >= 1))
        .await
        .expect("written in time")
        .expect("writer alive");
    writer.drain(Duration::from_secs(1)).await;
}

async fn records_within_the_batch_delay_share_one_insert(db: TestDb) {
    let store = db.open().await;
    let config = UsageWriterConfig { batch_delay: Duration::from_secs(2), ..Default::default() };
    let (sink, writer) = UsageWriter::spawn(store.clone(), config).expect("writer starts");
    let mut persisted = writer.persisted();
    for i in 0..5 {
        sink.record(record(&format!("b{i}"), "a", "m", 200)).await;
    }
    let first = *tokio::time::timeout(Duration::from_secs(10), persisted.wait_for(|n| *n >= 1))
        .await
        .expect("written in time")
        .expect("writer alive");
    assert_eq!(first, 5, "the count moves by whole batches: the five records went in one insert");
    writer.drain(Duration::from_secs(1)).await;
    let stored = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(stored.len(), 5);
}

#[tokio::test]
async fn unknown_backends_are_refused_without_leaking_passwords() {
    let err = Store::open("mysql://root:hunter2@db/x").await.expect_err("unsupported");
    let message = err.to_string();
    assert!(message.contains("mysql://***@db/x"), "{message}");
    assert!(!message.contains("hunter2"));
}

async fn records_survive_a_store_that_is_briefly_broken(db: TestDb) {
    let store = db.open().await;
    break_usage_table(&db).await;

    let (sink, writer) = UsageWriter::spawn(
        store.clone(),
        UsageWriterConfig { max_backoff: Duration::from_millis(50), ..Default::default() },
    )
    .expect("writer starts");
    let mut failed = writer.failed_writes();
    let mut persisted = writer.persisted();
    sink.record(record("survivor", "a", "m", 200)).await;
    tokio::time::timeout(Duration::from_secs(5), failed.wait_for(|n| *n >= 2))
        .await
        .expect("writes fail")
        .expect("alive");
    assert_eq!(*persisted.borrow(), 0);

    repair_usage_table(&db).await;
    tokio::time::timeout(Duration::from_secs(5), persisted.wait_for(|n| *n >= 1))
        .await
        .expect("retried")
        .expect("alive");
    writer.drain(Duration::from_secs(1)).await;
    let stored = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["survivor"]);
}

fn new_user(id: &str, email: &str, role: OrgRole) -> NewUser {
    NewUser {
        id: id.into(),
        email: email.into(),
        name: id.into(),
        kind: UserKind::Person,
        org_role: role,
        created_at_ms: 1,
        external_id: None,
    }
}

async fn users_teams_and_memberships_round_trip(db: TestDb) {
    let store = db.open().await;
    let ana = store.insert_user(&new_user("usr_a", "ana@acme.test", OrgRole::Admin)).await.expect("insert");
    assert!(ana.active && ana.org_role == OrgRole::Admin);
    let taken = store.insert_user(&new_user("usr_b", "ANA@acme.test", OrgRole::Member)).await;
    assert!(matches!(taken, Err(StoreError::Conflict(_))), "e-mails are unique whatever their case");
    store.insert_user(&new_user("usr_b", "bo@acme.test", OrgRole::Member)).await.expect("insert");
    let page = store.list_users(None, 1).await.expect("list");
    assert_eq!(page.len(), 1);
    let next = store.list_users(Some(&page[0].id), 10).await.expect("next page");
    assert_eq!(next.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["usr_b"]);
    let renamed = store.update_user("usr_b", "Bo", OrgRole::Viewer).await.expect("update").expect("exists");
    assert_eq!((renamed.name.as_str(), renamed.org_role), ("Bo", OrgRole::Viewer));

    let red = TeamRecord { id: "team_r".into(), name: "red".into(), created_at_ms: 1, external_id: None };
    store.insert_team(&red).await.expect("team");
    assert!(matches!(
        store
            .insert_team(&TeamRecord { id: "team_x".into(), name: "RED".into(), created_at_ms: 1, external_id: None })
            .await,
        Err(StoreError::Conflict(_))
    ));
    let member =
        |user: &str, role| MemberRecord { team_id: "team_r".into(), user_id: user.into(), role, created_at_ms: 1 };
    store.put_member(&member("usr_a", TeamRole::Member)).await.expect("add");
    store.put_member(&member("usr_a", TeamRole::TeamAdmin)).await.expect("change role");
    store.put_member(&member("usr_b", TeamRole::Member)).await.expect("add");
    let members = store.members_of_team("team_r").await.expect("members");
    assert_eq!(
        members.iter().map(|m| (m.user_id.as_str(), m.role)).collect::<Vec<_>>(),
        [("usr_a", TeamRole::TeamAdmin), ("usr_b", TeamRole::Member)]
    );
    assert!(store.remove_member("team_r", "usr_b").await.expect("remove"));
    assert!(!store.remove_member("team_r", "usr_b").await.expect("remove again"));
    assert_eq!(store.memberships_of_user("usr_a").await.expect("of user").len(), 1);
}

async fn deactivating_a_user_revokes_their_keys_in_the_same_transaction(db: TestDb) {
    let store = db.open().await;
    store.insert_user(&new_user("usr_a", "ana@acme.test", OrgRole::Member)).await.expect("insert");
    for (id, hash) in [("key_1", 1), ("key_2", 2)] {
        store
            .insert_key(&NewKey { user_id: Some("usr_a".into()), ..new_key(id, hash, Role::Client) })
            .await
            .expect("key");
    }
    store.insert_key(&new_key("key_other", 3, Role::Client)).await.expect("key");
    let of_ana = KeyFilter { user_id: Some("usr_a".into()), ..active(100) };
    let mine: Vec<String> = store.list_keys(&of_ana).await.expect("mine").into_iter().map(|k| k.id).collect();
    assert_eq!(mine, ["key_2", "key_1"], "a user's own keys, newest first");
    let key = store.key_by_hash(&[1; 32]).await.expect("lookup").expect("exists");
    assert_eq!(key.user_state, Some((true, OrgRole::Member)), "the owner's state comes with the key");
    let change = store.set_user_active("usr_a", false, 9_000).await.expect("deactivate").expect("exists");
    assert_eq!((change.user.active, change.revoked_keys, change.user.deactivated_at_ms), (false, 2, Some(9_000)));
    let key = store.key_by_hash(&[1; 32]).await.expect("lookup").expect("exists");
    assert_eq!((key.revoked_at_ms, key.user_state), (Some(9_000), Some((false, OrgRole::Member))));
    let other = store.key_by_id("key_other").await.expect("lookup").expect("exists");
    assert_eq!(other.revoked_at_ms, None, "other keys are untouched");
    assert!(store.list_keys(&of_ana).await.expect("mine").is_empty());
    let all_of_ana = KeyFilter { include_revoked: true, ..of_ana };
    assert_eq!(store.list_keys(&all_of_ana).await.expect("mine").len(), 2);
    let back = store.set_user_active("usr_a", true, 10_000).await.expect("reactivate").expect("exists");
    assert_eq!((back.user.active, back.revoked_keys, back.user.deactivated_at_ms), (true, 0, None));
    assert!(store.set_user_active("usr_nobody", false, 1).await.expect("query").is_none());
}

async fn the_audit_log_chains_and_filters(db: TestDb) {
    let store = db.open().await;
    for i in 0..5 {
        let event = AuditEvent {
            id: format!("aud_{i}"),
            at_ms: 1_000 + i,
            actor_user_id: Some("usr_a".into()),
            actor_key_id: None,
            source: None,
            action: if i % 2 == 0 { "user.update".into() } else { "key.create".into() },
            target_type: "user".into(),
            target_id: format!("usr_{i}"),
            before: None,
            after: Some("{}".into()),
        };
        let record = store.append_audit(&event).await.expect("append");
        assert_eq!(record.seq, i + 1);
    }
    let chain = store.audit_chain().await.expect("chain");
    assert_eq!(verify_chain(chain).map(|(n, _)| n), Ok(5));
    let family = AuditFilter { action: Some("key.".into()), limit: 10, ..AuditFilter::default() };
    let keys = store.query_audit(&family).await.expect("query");
    assert_eq!(keys.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 2], "newest first");
    let page = AuditFilter { before_seq: Some(3), limit: 10, ..AuditFilter::default() };
    assert_eq!(store.query_audit(&page).await.expect("query").len(), 2);
}

async fn break_usage_table(db: &TestDb) {
    db.execute("ALTER TABLE usage_records RENAME TO usage_records_away").await;
}

async fn repair_usage_table(db: &TestDb) {
    db.execute("ALTER TABLE usage_records_away RENAME TO usage_records").await;
}

async fn an_outage_spools_records_to_disk_and_they_are_replayed_when_it_ends(db: TestDb) {
    let store = db.open().await;
    let spool = db.dir.path().join("spool/usage.jsonl");
    break_usage_table(&db).await;
    let config =
        UsageWriterConfig { max_backoff: Duration::from_millis(50), spool: Some(spool.clone()), ..Default::default() };
    let (sink, writer) = UsageWriter::spawn(store.clone(), config).expect("writer starts");
    let (mut spooled, mut persisted) = (writer.spooled(), writer.persisted());
    for id in ["r1", "r2", "r3"] {
        sink.record(record(id, "a", "m", 200)).await;
    }
    tokio::time::timeout(Duration::from_secs(5), spooled.wait_for(|n| *n == 3)).await.expect("spooled").expect("alive");
    let on_disk = std::fs::read_to_string(&spool).expect("spool file");
    assert_eq!(on_disk.lines().count(), 3, "one JSON line per record, on disk before the writer lets go");
    assert_eq!(*persisted.borrow(), 0);

    repair_usage_table(&db).await;
    tokio::time::timeout(Duration::from_secs(5), persisted.wait_for(|n| *n >= 3))
        .await
        .expect("replayed")
        .expect("alive");
    assert_eq!(*writer.spooled().borrow(), 0);
    assert!(!spool.exists(), "an emptied spool is removed");
    writer.drain(Duration::from_secs(1)).await;
    let stored = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["r3", "r2", "r1"]);
}

async fn records_left_in_the_spool_are_written_at_the_next_start_once_each(db: TestDb) {
    let store = db.open().await;
    let spool = db.dir.path().join("usage.jsonl");
    break_usage_table(&db).await;
    let config =
        UsageWriterConfig { max_backoff: Duration::from_millis(50), spool: Some(spool.clone()), ..Default::default() };
    let (sink, writer) = UsageWriter::spawn(store.clone(), config.clone()).expect("writer starts");
    let mut spooled = writer.spooled();
    sink.record(record("kept", "a", "m", 200)).await;
    tokio::time::timeout(Duration::from_secs(5), spooled.wait_for(|n| *n == 1)).await.expect("spooled").expect("alive");
    writer.drain(Duration::from_millis(200)).await;
    assert!(spool.exists(), "the database is still down at shutdown: the record stays on disk");

    // The same record twice (a replay cut short and started again) is stored once.
    let text = std::fs::read_to_string(&spool).expect("read");
    std::fs::write(&spool, format!("{text}{text}{{\"torn")).expect("duplicate and tear");
    repair_usage_table(&db).await;
    let (_sink, writer) = UsageWriter::spawn(store.clone(), config).expect("writer starts");
    let mut spooled = writer.spooled();
    tokio::time::timeout(Duration::from_secs(5), spooled.wait_for(|n| *n == 0))
        .await
        .expect("replayed")
        .expect("alive");
    writer.drain(Duration::from_secs(1)).await;
    let stored = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    assert_eq!(stored.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["kept"]);
}

async fn schemas_are_checked_and_a_newer_one_is_refused(db: TestDb) {
    let url = &db.url;
    let behind = Store::open_with(url, moat_store::Migrations::Check).await.map(|_| ());
    assert!(matches!(behind, Err(StoreError::SchemaBehind(ref pending)) if !pending.is_empty()), "{behind:?}");
    let store = Store::open(url).await.expect("migrated");
    let schema = store.schema().await.expect("schema");
    assert!(schema.pending.is_empty() && schema.unknown.is_empty() && !schema.applied.is_empty());
    Store::open_with(url, moat_store::Migrations::Check).await.expect("up to date: checking passes");

    // A newer moat migrated this database: this one must not serve on it.
    let (success, checksum) = if db.is_postgres() { ("TRUE", "'\\x00'") } else { ("1", "x'00'") };
    db.execute(&format!(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) \
         VALUES (99990101, 'from the future', CURRENT_TIMESTAMP, {success}, {checksum}, 0)"
    ))
    .await;
    for migrations in [moat_store::Migrations::Apply, moat_store::Migrations::Check] {
        let refused = Store::open_with(url, migrations).await.map(|_| ());
        assert!(matches!(refused, Err(StoreError::SchemaFromTheFuture(99_990_101))), "{refused:?}");
    }
}

/// Unix milliseconds of the first instant of a UTC month.
fn month_start(year: i32, month: u8) -> i64 {
    let month = time::Month::try_from(month).expect("month");
    time::Date::from_calendar_date(year, month, 1).expect("date").midnight().assume_utc().unix_timestamp() * 1000
}

async fn retention_removes_old_usage_and_keeps_the_rest(db: TestDb) {
    let store = db.open().await;
    let at = |id: &str, created_at_ms: i64| UsageRecord { created_at_ms, ..record(id, "a", "m", 200) };
    let records = [
        at("0001", month_start(2026, 1) + 5),
        at("0002", month_start(2026, 2) + 5),
        at("0003", month_start(2026, 3) - 1),
        at("0004", month_start(2026, 3) + 5),
        at("0005", month_start(2026, 4) + 5),
    ];
    store.insert_usage(&records).await.expect("insert");
    if db.is_postgres() {
        let partitions = store.usage_partitions().await.expect("partitions");
        for month in ["202601", "202602", "202603", "202604"] {
            let name = format!("usage_records_p{month}");
            assert!(partitions.contains(&name), "each month gets its partition: {partitions:?}");
        }
    }

    // Keep everything from 2026-03-10 on: January and February are wholly older.
    let pruned = store.prune_usage(month_start(2026, 3) + 9 * 86_400_000).await.expect("prune");
    let left = store.query_usage(&UsageFilter { limit: 10, ..Default::default() }).await.expect("query");
    let ids: Vec<&str> = left.iter().map(|r| r.id.as_str()).collect();
    if db.is_postgres() {
        // Whole months go; March straddles the cut and is kept whole.
        assert_eq!(pruned, moat_store::Pruned { partitions: 2, records: 0 });
        assert_eq!(ids, ["0005", "0004"]);
        let partitions = store.usage_partitions().await.expect("partitions");
        assert!(!partitions.iter().any(|p| p.ends_with("202601") || p.ends_with("202602")), "{partitions:?}");
    } else {
        // Row by row, exactly at the cut.
        assert_eq!(pruned, moat_store::Pruned { partitions: 0, records: 4 });
        assert_eq!(ids, ["0005"]);
    }
    // A record for a dropped month that arrives late (a replayed spool) is stored again.
    store.insert_usage(&records[..1]).await.expect("late record");
    let late =
        UsageFilter { key_id: Some("a".into()), to_ms: Some(month_start(2026, 2)), limit: 10, ..Default::default() };
    assert_eq!(store.query_usage(&late).await.expect("query").len(), 1);
}

async fn replicas_appending_audit_events_at_once_keep_one_chain(db: TestDb) {
    // Two stores on one database stand for two replicas: their appends interleave.
    let (one, two) = (db.open().await, db.open().await);
    let append = |store: Store, who: &'static str| async move {
        for i in 0..20 {
            let event = AuditEvent {
                id: format!("aud_{who}_{i}"),
                at_ms: i,
                actor_user_id: None,
                actor_key_id: None,
                source: Some(who.into()),
                action: "key.create".into(),
                target_type: "key".into(),
                target_id: format!("key_{i}"),
                before: None,
                after: None,
            };
            store.append_audit(&event).await.expect("append");
        }
    };
    tokio::join!(append(one.clone(), "one"), append(two, "two"));
    let chain = one.audit_chain().await.expect("chain");
    assert_eq!(verify_chain(chain).map(|(n, _)| n), Ok(40), "one unbroken chain of every event");
}

async fn budgets_limits_and_the_spend_they_measure(db: TestDb) {
    use moat_core::Period;
    use moat_core::budget::{Budget, Limit, Scope};
    let store = db.open().await;
    store.insert_user(&new_user("usr_a", "ana@acme.test", OrgRole::Member)).await.expect("user");
    store.insert_user(&new_user("usr_b", "bo@acme.test", OrgRole::Member)).await.expect("user");
    store
        .insert_team(&TeamRecord { id: "team_r".into(), name: "red".into(), created_at_ms: 1, external_id: None })
        .await
        .expect("team");
    store
        .put_member(&MemberRecord {
            team_id: "team_r".into(),
            user_id: "usr_a".into(),
            role: TeamRole::Member,
            created_at_ms: 1,
        })
        .await
        .expect("member");
    store
        .insert_key(&NewKey { user_id: Some("usr_a".into()), ..new_key("k_ana", 1, Role::Client) })
        .await
        .expect("key");
    store.insert_key(&NewKey { user_id: Some("usr_b".into()), ..new_key("k_bo", 2, Role::Client) }).await.expect("key");
    store
        .insert_key(&NewKey { team_id: Some("team_r".into()), ..new_key("k_red", 3, Role::Client) })
        .await
        .expect("key");
    let spent = |id: &str, key: &str, at: i64, cost: u64| UsageRecord {
        created_at_ms: at,
        cost_micro_usd: cost,
        ..record(id, key, "gemma", 200)
    };
    store
        .insert_usage(&[
            spent("r1", "k_ana", 1_000, 100),
            spent("r2", "k_bo", 1_500, 20),
            spent("r3", "k_red", 2_000, 3),
            spent("r4", "k_ana", 9_000, 4_000),
        ])
        .await
        .expect("usage");
    let spend = |scope, id: &'static str, to| {
        let store = store.clone();
        async move { store.spend(scope, id, 0, to).await.expect("spend") }
    };
    assert_eq!(spend(Scope::Org, "", Some(5_000)).await, 123);
    assert_eq!(spend(Scope::Key, "k_ana", Some(5_000)).await, 100);
    assert_eq!(spend(Scope::User, "usr_a", None).await, 4_100);
    // A team's spend is its own keys' and its members' keys'.
    assert_eq!(spend(Scope::Team, "team_r", Some(5_000)).await, 103);
    assert_eq!(spend(Scope::Model, "gemma", Some(5_000)).await, 123);
    assert_eq!(store.spend(Scope::Org, "", 1_200, Some(5_000)).await.expect("spend"), 23);

    let mut budget = Budget {
        id: "bud_1".into(),
        scope: Scope::Team,
        scope_id: "team_r".into(),
        amount_micro_usd: 5_000_000,
        period: Period::Month,
        time_zone: "Europe/Paris".into(),
        thresholds: vec![50, 100],
        reset_at_ms: None,
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    store.put_budget(&budget).await.expect("budget");
    budget.amount_micro_usd = 7;
    budget.reset_at_ms = Some(77);
    store.put_budget(&budget).await.expect("update");
    assert_eq!(store.list_budgets().await.expect("list"), vec![budget]);
    assert!(store.claim_budget_alert("bud_1", 0, 50, 9).await.expect("claim"));
    assert!(!store.claim_budget_alert("bud_1", 0, 50, 10).await.expect("claim twice"), "an alert fires once");
    assert!(store.claim_budget_alert("bud_1", 1, 50, 10).await.expect("next period"));
    assert!(store.delete_budget("bud_1").await.expect("delete"));
    assert!(!store.delete_budget("bud_1").await.expect("delete again"));

    let limit = Limit {
        id: "lim_1".into(),
        scope: Scope::Model,
        scope_id: "gemma".into(),
        requests_per_minute: Some(60),
        tokens_per_minute: None,
        concurrent_requests: Some(u64::from(u32::MAX) + 1),
        created_at_ms: 1,
        updated_at_ms: 1,
    };
    store.put_limit(&limit).await.expect("limit");
    assert_eq!(store.list_limits().await.expect("list"), vec![limit]);
    assert!(store.delete_limit("lim_1").await.expect("delete"));
    assert!(store.list_limits().await.expect("list").is_empty());
}

/// Rollups equal the sums of the records they cover, whatever order records arrive in, late
/// ones included, and when batches are replayed (a record stored twice counts once).
async fn rollups_always_equal_the_records_they_cover(db: TestDb) {
    use moat_core::rollup::{DAY_MS, HOUR_MS, RollupKey, Totals, deltas};
    use moat_store::Dimension;
    let store = db.open().await;
    // A small deterministic generator: the same records on every run.
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    // Three days and a bit from an hour that is not a day's start, so reports read both tiers.
    const SPAN_HOURS: u64 = 75;
    let base = 1_795_000_000_000_i64 / HOUR_MS * HOUR_MS;
    let end = |hours: u64| base + i64::try_from(hours).unwrap() * HOUR_MS;
    let records: Vec<UsageRecord> = (0..400)
        .map(|i| {
            let mut r = record(
                &format!("r{i:04}"),
                ["k1", "k2", "k3"][usize::try_from(next(3)).unwrap()],
                ["m1", "m2"][usize::try_from(next(2)).unwrap()],
                [200, 200, 429, 499, 502][usize::try_from(next(5)).unwrap()],
            );
            r.created_at_ms = base + i64::try_from(next(SPAN_HOURS * 3_600_000)).unwrap();
            r.team_id = (next(2) == 0).then(|| "team_a".to_owned());
            r.user_id = Some(format!("usr_{}", next(2)));
            r.deployment = (next(4) != 0).then(|| "d".to_owned());
            r.usage = Usage {
                input: next(5000),
                output: next(900),
                cached: next(100),
                cache_write: next(10),
                reasoning: next(50),
            };
            r.cost_micro_usd = next(10_000);
            r.reference_cost_micro_usd = next(90_000);
            r.latency_ms = next(150_000);
            // Some requests never reach a first byte.
            r.ttft_ms = (next(4) > 0).then(|| next(40_000));
            r
        })
        .collect();
    // Out of order, in uneven batches, with some batches stored twice.
    let mut shuffled = records.clone();
    for i in (1..shuffled.len()).rev() {
        shuffled.swap(i, usize::try_from(next(u64::try_from(i).unwrap() + 1)).unwrap());
    }
    let mut start = 0;
    while start < shuffled.len() {
        let end = (start + 1 + usize::try_from(next(60)).unwrap()).min(shuffled.len());
        store.insert_usage(&shuffled[start..end]).await.expect("insert");
        if next(3) == 0 {
            store.insert_usage(&shuffled[start..end]).await.expect("replay");
        }
        start = end;
    }
    // A late record for the first hour, after everything else.
    let mut late = record("late", "k1", "m1", 200);
    late.created_at_ms = base + 10;
    store.insert_usage(&[late.clone()]).await.expect("late");

    let mut all = records.clone();
    all.push(late);
    let expected: Vec<(RollupKey, Totals)> = deltas(&all).into_iter().collect();
    let by =
        [Dimension::Hour, Dimension::Key, Dimension::User, Dimension::Team, Dimension::Model, Dimension::Deployment];
    let mut got: Vec<(RollupKey, Totals)> = store
        .report(&by, base, end(SPAN_HOURS + 1), None)
        .await
        .expect("report")
        .into_iter()
        .map(|(g, totals)| {
            let key = RollupKey {
                start_ms: g[0].parse().expect("hour"),
                key_id: g[1].clone(),
                user_id: g[2].clone(),
                team_id: g[3].clone(),
                model: g[4].clone(),
                deployment: g[5].clone(),
            };
            (key, totals)
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // Any span, aligned or not, sums exactly the records of the hours starting in it, whichever
    // tiers it reads; by day too.
    let hour_of = |at: i64| at.div_euclid(HOUR_MS) * HOUR_MS;
    for (from, to) in [
        (base, end(SPAN_HOURS + 1)),
        (base - 3 * DAY_MS, base + 9 * DAY_MS),
        (base + 1_234_567, end(60) - 777),
        (end(13), end(61)),
        (end(14), end(38)),
        (end(40), end(41)),
    ] {
        let covered: Vec<&UsageRecord> =
            all.iter().filter(|r| hour_of(r.created_at_ms) >= from && hour_of(r.created_at_ms) < to).collect();
        let total = store.report(&[], from, to, None).await.expect("total");
        assert_eq!(total.len(), 1);
        assert_eq!(total[0].1, sum_of(&covered), "[{from}, {to})");
        let by_day = store.report(&[Dimension::Day], from, to, None).await.expect("by day");
        for (day, totals) in &by_day {
            let day: i64 = day[0].parse().expect("day");
            let of_day: Vec<&UsageRecord> =
                covered.iter().copied().filter(|r| r.created_at_ms.div_euclid(DAY_MS) * DAY_MS == day).collect();
            assert_eq!(*totals, sum_of(&of_day), "day {day} of [{from}, {to})");
        }
        assert_eq!(by_day.iter().map(|(_, t)| t.requests).sum::<u64>(), u64::try_from(covered.len()).unwrap());
    }
    // One total row; and a narrowed one.
    let total = store.report(&[], base, end(SPAN_HOURS + 1), None).await.expect("total");
    assert_eq!(total[0].1.requests, 401);
    let raw_cost: u64 = all.iter().map(|r| r.cost_micro_usd).sum();
    assert_eq!(total[0].1.cost_micro_usd, raw_cost);
    let empty = store.report(&[], base - DAY_MS, base - HOUR_MS, None).await.expect("empty");
    assert_eq!(empty, [(Vec::new(), Totals::default())], "a total over nothing is one row of zeros");
    let team = store
        .report(&[Dimension::Model], base, end(SPAN_HOURS + 1), Some((Dimension::Team, "team_a")))
        .await
        .expect("team");
    let team_requests: u64 = team.iter().map(|(_, t)| t.requests).sum();
    assert_eq!(
        team_requests,
        u64::try_from(all.iter().filter(|r| r.team_id.as_deref() == Some("team_a")).count()).unwrap()
    );
    let first_hour =
        all.iter().filter(|r| r.deployment.as_deref() == Some("d")).map(|r| hour_of(r.created_at_ms)).min();
    assert_eq!(store.first_served_hour("d").await.expect("first hour"), first_hour);
    assert_eq!(store.first_served_hour("nowhere").await.expect("first hour"), None);
    // Retention of raw records leaves the rollups alone.
    store.prune_usage(end(SPAN_HOURS + 1)).await.expect("prune");
    assert_eq!(store.report(&[], base, end(SPAN_HOURS + 1), None).await.expect("total")[0].1.requests, 401);
    // Rollup retention drops whole hours (and whole days) before the cut, and only those.
    let kept = u64::try_from(all.iter().filter(|r| r.created_at_ms >= base + 2 * HOUR_MS).count()).unwrap();
    assert!(store.prune_rollups(base + 2 * HOUR_MS + 59_000).await.expect("prune rollups") > 0);
    assert_eq!(store.report(&[], base, end(SPAN_HOURS + 1), None).await.expect("total")[0].1.requests, kept);
}

/// Sums records the way rollups do, for comparing with a report.
fn sum_of(records: &[&UsageRecord]) -> moat_core::rollup::Totals {
    let mut totals = moat_core::rollup::Totals::default();
    for record in records {
        totals.add_record(record);
    }
    totals
}

on_both_backends!(
    rollups_always_equal_the_records_they_cover,
    budgets_limits_and_the_spend_they_measure,
    keys_round_trip_and_revoke_once,
    keys_page_by_owner_and_by_what_the_reader_may_see,
    usage_filters_and_pages_newest_first,
    writer_batches_and_drains_everything_queued,
    persisted_count_is_observable,
    records_within_the_batch_delay_share_one_insert,
    users_teams_and_memberships_round_trip,
    deactivating_a_user_revokes_their_keys_in_the_same_transaction,
    the_audit_log_chains_and_filters,
    records_survive_a_store_that_is_briefly_broken,
    an_outage_spools_records_to_disk_and_they_are_replayed_when_it_ends,
    records_left_in_the_spool_are_written_at_the_next_start_once_each,
    schemas_are_checked_and_a_newer_one_is_refused,
    retention_removes_old_usage_and_keeps_the_rest,
    replicas_appending_audit_events_at_once_keep_one_chain,
);
