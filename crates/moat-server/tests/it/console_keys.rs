//! Keys in the web console: a person's own, made and seen once; every key in the
//! organisation, filtered and revoked in place; team keys on a team's page; and keys for
//! service accounts.

use moat_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::console::{get, post};
use crate::sign_in::{PASSWORD, browser, config, hidden, person_with_role, sign_in};
use crate::support::{TestGateway, chat};

#[tokio::test]
async fn a_member_makes_a_key_sees_it_once_uses_it_and_revokes_it() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let user_id = person_with_role(&gateway, "mo@example.com", "member").await;
    let session = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");

    // A member's start page is their keys; the dashboard's figures are not theirs to read.
    let start = browser().get(format!("{}/ui", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(start.status(), 303);
    assert_eq!(start.headers()["location"], "/ui/keys");
    let (status, html) = get(&gateway, &session, "/ui/keys").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-keys\"") && !html.contains(">Dashboard<"), "{html}");
    let csrf = hidden(&html, "csrf");

    // The server validates: an empty name comes back beside the field, nothing made.
    let refused = post(&gateway, &session, "/ui/keys", &[("csrf", &csrf), ("name", " "), ("expires_in", "30d")]).await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.expect("html");
    assert!(html.contains("id=\"name-error\"") && html.contains("aria-invalid=\"true\""), "{html}");

    let made =
        post(&gateway, &session, "/ui/keys", &[("csrf", &csrf), ("name", "laptop"), ("expires_in", "30d")]).await;
    assert_eq!(made.status(), 201);
    assert_eq!(made.headers()["cache-control"], "no-store");
    let html = made.text().await.expect("html");
    let secret = html.split("id=\"secret\">").nth(1).and_then(|s| s.split('<').next()).expect("secret").to_owned();
    assert!(secret.starts_with("moat_sk_"), "{secret}");
    assert!(html.contains("data-copy=\"secret\""), "a copy button: {html}");
    assert!(html.contains(&format!("ANTHROPIC_AUTH_TOKEN={secret}")), "settings to paste: {html}");
    // The key works, and belongs to the member.
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("m")).await.status(), 200);
    let keys: Value = gateway.admin_get("keys").await.json().await.expect("json");
    let key = keys["data"].as_array().expect("keys").iter().find(|k| k["name"] == "laptop").expect("laptop").clone();
    assert_eq!(key["user_id"], user_id.as_str());
    assert!(key["expires_at"].is_string());

    // The list never shows the secret again.
    let (_, html) = get(&gateway, &session, "/ui/keys").await;
    assert!(html.contains("laptop") && !html.contains(&secret), "{html}");
    let id = key["id"].as_str().expect("id");

    // A forged revoke (no CSRF token, or another one) is refused and changes nothing.
    for form in [vec![], vec![("csrf", "forged")]] {
        let forged = post(&gateway, &session, &format!("/ui/keys/{id}/revoke"), &form).await;
        assert_eq!(forged.status(), 403);
    }
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("m")).await.status(), 200);

    let revoked = post(&gateway, &session, &format!("/ui/keys/{id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("m")).await.status(), 401);
    // The audit log names the member, not a key, as who did it.
    let audit: Value = gateway.admin_get("audit?action=key.revoke").await.json().await.expect("json");
    assert_eq!(audit["data"][0]["actor_user_id"], user_id.as_str(), "{audit}");
}

#[tokio::test]
async fn admins_find_and_revoke_any_key_and_team_admins_keep_their_teams_keys() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let json_of = |response: reqwest::Response| async move { response.json::<Value>().await.expect("json") };
    person_with_role(&gateway, "ada@example.com", "admin").await;
    person_with_role(&gateway, "vic@example.com", "viewer").await;
    let lee = person_with_role(&gateway, "lee@example.com", "member").await;
    let kim = person_with_role(&gateway, "kim@example.com", "member").await;
    let red = json_of(gateway.admin_post("teams", json!({ "name": "Red" })).await).await;
    let blue = json_of(gateway.admin_post("teams", json!({ "name": "Blue" })).await).await;
    let (red_id, blue_id) = (red["id"].as_str().expect("id"), blue["id"].as_str().expect("id"));
    let put = gateway
        .http
        .put(format!("{}/admin/v1/teams/{red_id}/members/{lee}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "role": "team-admin" }))
        .send()
        .await
        .expect("send");
    assert!(put.status().is_success());
    let bot = json_of(gateway.admin_post("users", json!({ "email": "ci@example.com", "kind": "service" })).await).await;
    gateway.create_key(json!({ "name": "kim-laptop", "user_id": kim })).await;
    gateway.create_key(json!({ "name": "ci-runner", "user_id": bot["id"] })).await;
    gateway.create_key(json!({ "name": "blue-deploy", "team_id": blue_id })).await;

    // The admin's list names every key's owner, and filters by team and by person.
    let ada = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &ada, "/ui/all-keys").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("aria-current=\"page\">All keys"), "{html}");
    assert!(html.contains("<td>kim-laptop</td><td>kim@example.com</td>"), "{html}");
    assert!(html.contains("ci@example.com <span class=\"badge\">service account</span>"), "{html}");
    assert!(html.contains(&format!("team <a href=\"/ui/teams/{blue_id}\">Blue</a>")), "{html}");
    let (_, html) = get(&gateway, &ada, &format!("/ui/all-keys?team_id={blue_id}")).await;
    assert!(html.contains("blue-deploy") && !html.contains("kim-laptop"), "{html}");
    let (_, html) = get(&gateway, &ada, "/ui/all-keys?email=KIM%40example.com").await;
    assert!(html.contains("kim-laptop") && !html.contains("blue-deploy"), "{html}");
    let (status, html) = get(&gateway, &ada, "/ui/all-keys?email=nobody%40example.com").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"email-error\"") && !html.contains("id=\"all-keys\""), "{html}");

    // Revoking keeps the list's filters, and the key stops working.
    let csrf = hidden(&html, "csrf");
    let kim_keys: Value = gateway.admin_get(&format!("keys?user_id={kim}")).await.json().await.expect("json");
    let kim_key = kim_keys["data"][0]["id"].as_str().expect("id").to_owned();
    let filtered = format!("/ui/all-keys/{kim_key}/revoke?email=kim%40example.com");
    let forged = post(&gateway, &ada, &filtered, &[("csrf", "forged")]).await;
    assert_eq!(forged.status(), 403, "no CSRF token, no change");
    let revoked = post(&gateway, &ada, &filtered, &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status(), 303);
    assert_eq!(revoked.headers()["location"], "/ui/all-keys?email=kim%40example.com");
    let (_, html) = get(&gateway, &ada, "/ui/all-keys?email=kim%40example.com&show=all").await;
    assert!(html.contains("<td class=\"bad\">revoked</td>"), "{html}");

    // A key for a service account: the account is made with the first key and reused after;
    // a person's e-mail is refused, and so is a nameless key, beside their fields.
    let service = |email: &'static str, name: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("email", email.to_owned()),
            ("name", name.to_owned()),
            ("expires_in", "365d".into()),
        ]
    };
    let made = browser()
        .post(format!("{}/ui/all-keys/service", gateway.url))
        .header("cookie", &ada)
        .form(&service("deploy-bot@example.com", "deploys"))
        .send()
        .await
        .expect("send");
    assert_eq!(made.status(), 201);
    let html = made.text().await.expect("html");
    let secret = html.split("id=\"secret\">").nth(1).and_then(|s| s.split('<').next()).expect("the secret, once");
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", secret, &chat("m")).await.status(), 200, "the key works");
    for (email, name, field, why) in [
        ("deploy-bot@example.com", "", "service-name-error", "name"),
        ("kim@example.com", "sneaky", "service-email-error", "is a person"),
        ("not-an-email", "x", "service-email-error", "e-mail"),
    ] {
        let refused = browser()
            .post(format!("{}/ui/all-keys/service", gateway.url))
            .header("cookie", &ada)
            .form(&service(email, name))
            .send()
            .await
            .expect("send");
        assert_eq!(refused.status(), 400, "{email} {name}");
        let html = refused.text().await.expect("html");
        let error = html.split(&format!("id=\"{field}\"")).nth(1).unwrap_or_else(|| panic!("{field}: {html}"));
        assert!(error.split("</p>").next().is_some_and(|e| e.contains(why)), "{why}: {html}");
    }
    let bots: Value = gateway.admin_get("users?email=deploy-bot%40example.com").await.json().await.expect("json");
    assert_eq!((bots["data"].as_array().map(Vec::len), &bots["data"][0]["kind"]), (Some(1), &json!("service")));
    let (_, html) = get(&gateway, &ada, "/ui/all-keys?email=deploy-bot%40example.com").await;
    assert!(
        html.contains("<td>deploys</td><td>deploy-bot@example.com <span class=\"badge\">service account</span>"),
        "{html}"
    );
    let (_, kim_keys_after) = get(&gateway, &ada, "/ui/all-keys?email=kim%40example.com").await;
    assert!(!kim_keys_after.contains("sneaky"), "no key was made for the person");

    // A viewer reads every key and is offered no revoke; the API refuses a forged one.
    let vic = sign_in(&gateway, "vic@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &vic, "/ui/all-keys").await;
    assert!(html.contains("blue-deploy") && html.contains("ci-runner") && !html.contains("Revoke"), "{html}");
    let vic_csrf = hidden(&html, "csrf");
    let blue_keys: Value = gateway.admin_get(&format!("keys?team_id={blue_id}")).await.json().await.expect("json");
    let blue_key = blue_keys["data"][0]["id"].as_str().expect("id").to_owned();
    let refused = post(&gateway, &vic, &format!("/ui/all-keys/{blue_key}/revoke"), &[("csrf", &vic_csrf)]).await;
    assert_eq!(refused.status(), 403);

    // Red's team admin makes a team key on the team's page, sees it once, and revokes it.
    let lee = sign_in(&gateway, "lee@example.com", PASSWORD).await.expect("signed in");
    let team_page = format!("/ui/teams/{red_id}");
    let (_, html) = get(&gateway, &lee, &team_page).await;
    assert!(html.contains("id=\"no-team-keys\"") && html.contains("id=\"team-key-create-key\""), "{html}");
    let lee_csrf = hidden(&html, "csrf");
    let make = format!("{team_page}/keys");
    let refused = post(&gateway, &lee, &make, &[("csrf", &lee_csrf), ("name", " "), ("expires_in", "30d")]).await;
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.expect("html");
    assert!(html.contains("id=\"team-key-name-error\""), "the error beside the field: {html}");
    let made = post(&gateway, &lee, &make, &[("csrf", &lee_csrf), ("name", "red-deploy"), ("expires_in", "30d")]).await;
    assert_eq!(made.status(), 201);
    let html = made.text().await.expect("html");
    let secret = html.split("id=\"secret\">").nth(1).and_then(|s| s.split('<').next()).expect("the secret, once");
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", secret, &chat("m")).await.status(), 200, "the team key works");
    let (_, html) = get(&gateway, &lee, &team_page).await;
    assert!(html.contains("<td>red-deploy</td>") && !html.contains(secret), "listed, never shown again: {html}");
    let red_keys: Value = gateway.admin_get(&format!("keys?team_id={red_id}")).await.json().await.expect("json");
    assert_eq!(red_keys["data"][0]["team_id"], red_id, "the team owns it: {red_keys}");
    let red_key = red_keys["data"][0]["id"].as_str().expect("id").to_owned();
    let other =
        post(&gateway, &lee, &format!("/ui/teams/{blue_id}/keys/{blue_key}/revoke"), &[("csrf", &lee_csrf)]).await;
    assert_eq!(other.status(), 404, "another team's key is out of sight");
    let blue_make =
        post(&gateway, &lee, &format!("/ui/teams/{blue_id}/keys"), &[("csrf", &lee_csrf), ("name", "x")]).await;
    assert_eq!(blue_make.status(), 403, "nor can they make one for it");
    let gone = post(&gateway, &lee, &format!("{team_page}/keys/{red_key}/revoke"), &[("csrf", &lee_csrf)]).await;
    assert_eq!(gone.status(), 303);
    assert_eq!(gateway.post("/v1/chat/completions", secret, &chat("m")).await.status(), 401, "revoked at once");

    // A plain member sees their own keys on the keys page, and no team's they are not in.
    let kim = sign_in(&gateway, "kim@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &kim, "/ui/all-keys?show=all").await;
    assert_eq!(status, 200);
    assert!(html.contains("kim-laptop") && !html.contains("blue-deploy") && !html.contains("ci-runner"), "{html}");
    assert!(!html.contains("All keys") && !html.contains("id=\"email\""), "no org-wide entry or filter: {html}");
}
