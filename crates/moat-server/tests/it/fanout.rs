//! Replicas sharing a store and Redis: a key revoked or a user deactivated through one replica
//! is refused by the others within a second, although each caches keys for 30 seconds.

use std::time::{Duration, Instant};

use moat_testkit::FakeUpstream;
use serde_json::{Value, json};

use crate::support::{TestGateway, chat};

/// Two replicas of one moat on one SQLite file, announcing key changes on a channel of their own.
async fn two_replicas(upstream: &FakeUpstream) -> (TestGateway, TestGateway) {
    let channel = format!("moat-test:{}", uuid::Uuid::now_v7().simple());
    let config = crate::support::default_config(upstream)
        + &format!("\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\nchannel = \"{channel}\"\n");
    let first = TestGateway::start_with(&config).await;
    let second = first.replica(&config).await;
    // Wait until both replicas are subscribed, so the test measures fan-out, not start-up.
    let redis = redis::Client::open("redis://127.0.0.1:6379/0").expect("redis url");
    let mut connection = redis.get_multiplexed_async_connection().await.expect("redis is running");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts: Vec<(String, i64)> =
            redis::cmd("PUBSUB").arg("NUMSUB").arg(&channel).query_async(&mut connection).await.expect("numsub");
        if counts.first().is_some_and(|(_, n)| *n >= 2) {
            break;
        }
        assert!(Instant::now() < deadline, "the replicas did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (first, second)
}

/// Waits up to a second for `key` to be refused by `gateway`; returns how long it took.
async fn refused_within_a_second(gateway: &TestGateway, key: &str) -> Duration {
    let started = Instant::now();
    loop {
        let status = gateway.post("/v1/chat/completions", key, &chat("m")).await.status();
        if status == 401 {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still {status} after a second: the change did not fan out"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_by_the_others_within_a_second() {
    let upstream = FakeUpstream::start().await;
    let (first, second) = two_replicas(&upstream).await;
    let (id, key) = first.create_key(json!({ "name": "laptop" })).await;
    assert_eq!(
        second.post("/v1/chat/completions", &key, &chat("m")).await.status(),
        200,
        "the second replica caches it"
    );
    let revoked = first
        .http
        .delete(format!("{}/admin/v1/keys/{id}", first.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status(), 200);
    let took = refused_within_a_second(&second, &key).await;
    assert!(took < Duration::from_secs(1));
}

#[tokio::test]
async fn a_user_deactivated_on_one_replica_is_locked_out_of_the_others() {
    let upstream = FakeUpstream::start().await;
    let (first, second) = two_replicas(&upstream).await;
    let user: Value = first.admin_post("users", json!({ "email": "gone@acme.test" })).await.json().await.expect("json");
    let (_, key) = first.create_key(json!({ "name": "laptop", "user_id": user["id"] })).await;
    assert_eq!(second.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    let deactivated = first
        .http
        .patch(format!("{}/admin/v1/users/{}", first.url, user["id"].as_str().expect("id")))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "active": false }))
        .send()
        .await
        .expect("deactivate");
    assert_eq!(deactivated.status(), 200);
    refused_within_a_second(&second, &key).await;
}
