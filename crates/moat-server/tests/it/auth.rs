//! Virtual keys on the model endpoints.

use moat_core::{ModelAccess, Role};
use moat_store::{NewKey, Store};
use moat_testkit::FakeUpstream;
use serde_json::json;

use crate::support::{TestGateway, assert_openai_error, chat};

#[tokio::test]
async fn keys_work_as_bearer_and_x_api_key_until_revoked() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (id, secret) = gateway.create_key(json!({ "name": "dev", "models": ["m"] })).await;

    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("m")).await.status(), 200);
    let via_header = gateway
        .http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("x-api-key", &secret)
        .json(&chat("m"))
        .send()
        .await
        .expect("send");
    assert_eq!(via_header.status(), 200);

    let revoke = gateway
        .http
        .delete(format!("{}/admin/v1/keys/{id}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(revoke.status(), 200);
    let response = gateway.post("/v1/chat/completions", &secret, &chat("m")).await;
    assert_openai_error(response, 401, "key_revoked").await;
    assert_eq!(upstream.calls(), 2, "a revoked key never reaches the upstream");

    let records = gateway.usage(2).await;
    assert!(records.iter().all(|r| r["key_id"] == id.as_str()));
}

#[tokio::test]
async fn missing_and_unknown_keys_are_refused() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let response =
        gateway.http.post(format!("{}/v1/chat/completions", gateway.url)).json(&chat("m")).send().await.expect("send");
    assert_openai_error(response, 401, "missing_api_key").await;
    let response = gateway.post("/v1/chat/completions", "moat_sk_not-a-real-key", &chat("m")).await;
    let body = assert_openai_error(response, 401, "invalid_api_key").await;
    assert_eq!(body["error"]["type"], "authentication_error");
    assert!(!body.to_string().contains("moat_sk_not-a-real-key"), "the presented key is not echoed");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let secret = "moat_sk_expired-key-for-test";
    let store = Store::open(&gateway.store_url).await.expect("open");
    store
        .insert_key(&NewKey {
            id: "key_expired".into(),
            name: "old".into(),
            owner: None,
            user_id: None,
            team_id: None,
            role: Role::Client,
            secret_hash: moat_server::auth::hash_secret(secret).to_vec(),
            prefix: "moat_sk_expi".into(),
            models: ModelAccess::All,
            created_at_ms: 1_000,
            expires_at_ms: Some(2_000),
        })
        .await
        .expect("insert");
    let response = gateway.post("/v1/chat/completions", secret, &chat("m")).await;
    assert_openai_error(response, 401, "key_expired").await;
}

#[tokio::test]
async fn keys_only_reach_their_models() {
    let upstream = FakeUpstream::start().await;
    let config =
        crate::support::default_config(&upstream) + "\n[[models]]\nname = \"other\"\ndeployments = [\"fake\"]\n";
    let gateway = TestGateway::start_with(&config).await;
    let (_, secret) = gateway.create_key(json!({ "name": "narrow", "models": ["other"] })).await;
    let response = gateway.post("/v1/chat/completions", &secret, &chat("m")).await;
    let body = assert_openai_error(response, 403, "model_not_allowed").await;
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("other")).await.status(), 200);

    assert_eq!(gateway.model_ids(&secret).await, ["other"], "GET /v1/models lists only what the key may use");
    let all = gateway.client_key().await;
    assert_eq!(gateway.model_ids(&all).await, ["m", "other"]);
}

#[tokio::test]
async fn client_keys_cannot_use_the_admin_api() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let secret = gateway.client_key().await;
    let response =
        gateway.http.get(format!("{}/admin/v1/keys", gateway.url)).bearer_auth(&secret).send().await.expect("send");
    assert_openai_error(response, 403, "admin_required").await;
    let response = gateway
        .http
        .post(format!("{}/admin/v1/keys", gateway.url))
        .bearer_auth(&secret)
        .json(&json!({"name": "x", "role": "admin"}))
        .send()
        .await
        .expect("send");
    assert_openai_error(response, 403, "admin_required").await;
    // An admin key made through the API works there.
    let (_, admin) = gateway.create_key(json!({ "name": "ops", "role": "admin" })).await;
    let response =
        gateway.http.get(format!("{}/admin/v1/keys", gateway.url)).bearer_auth(&admin).send().await.expect("send");
    assert_eq!(response.status(), 200);
}
