//! Browser sign-in (local accounts, sessions, CSRF) and the device flow behind `moat login`.

use std::time::Duration;

use moat_testkit::FakeUpstream;
use serde_json::{Value, json};

use crate::support::{TestGateway, chat};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A client that, like a test of a browser's view, does not follow redirects by itself.
pub(crate) fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

pub(crate) fn config(upstream: &FakeUpstream, extra: &str) -> String {
    crate::support::default_config(upstream) + "\n[sign_in]\ndevice_poll_interval = \"1s\"\n" + extra
}

/// A person with a password; returns their user id.
async fn person(gateway: &TestGateway, email: &str) -> String {
    person_with_role(gateway, email, "member").await
}

/// A person with a password and an organisation role; returns their user id.
pub(crate) async fn person_with_role(gateway: &TestGateway, email: &str, role: &str) -> String {
    let user: Value =
        gateway.admin_post("users", json!({ "email": email, "org_role": role })).await.json().await.expect("json");
    let id = user["id"].as_str().expect("id").to_owned();
    let response = browser()
        .put(format!("{}/admin/v1/users/{id}/password", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 204);
    id
}

/// The `name=value` of each `Set-Cookie`, and the whole headers.
fn cookies(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| (v.split(';').next().unwrap_or_default().to_owned(), v.to_owned()))
        .collect()
}

pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

/// Signs in through the form; returns the session cookie (`moat_session=…`).
pub(crate) async fn sign_in(gateway: &TestGateway, email: &str, password: &str) -> Result<String, u16> {
    let form = browser().get(format!("{}/login", gateway.url)).send().await.expect("send");
    let csrf_cookie = cookies(&form).into_iter().find(|(c, _)| c.starts_with("moat_csrf=")).expect("csrf cookie").0;
    let csrf = hidden(&form.text().await.expect("html"), "csrf");
    let response = browser()
        .post(format!("{}/login", gateway.url))
        .header("cookie", csrf_cookie)
        .form(&[("email", email), ("password", password), ("csrf", &csrf), ("next", "/device")])
        .send()
        .await
        .expect("send");
    if response.status() != 303 {
        return Err(response.status().as_u16());
    }
    let (cookie, attributes) =
        cookies(&response).into_iter().find(|(c, _)| c.starts_with("moat_session=")).expect("session");
    for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
        assert!(attributes.contains(attribute), "{attributes}");
    }
    Ok(cookie)
}

async fn start_grant(gateway: &TestGateway) -> Value {
    let response = browser()
        .post(format!("{}/oauth/device/code", gateway.url))
        .form(&[("client_id", "moat CLI")])
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

async fn poll(gateway: &TestGateway, device_code: &str) -> (u16, Value) {
    let response = browser()
        .post(format!("{}/oauth/token", gateway.url))
        .form(&[("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)])
        .send()
        .await
        .expect("send");
    (response.status().as_u16(), response.json().await.unwrap_or(Value::Null))
}

/// Opens the confirmation page and decides; returns the decision page's status.
async fn decide(gateway: &TestGateway, session: &str, user_code: &str, decision: &str) -> u16 {
    let page = browser()
        .get(format!("{}/device?user_code={user_code}", gateway.url))
        .header("cookie", session)
        .send()
        .await
        .expect("send");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains(user_code), "the page shows the code to compare");
    let csrf = hidden(&html, "csrf");
    let response = browser()
        .post(format!("{}/device", gateway.url))
        .header("cookie", session)
        .form(&[("csrf", csrf.as_str()), ("user_code", user_code), ("decision", decision)])
        .send()
        .await
        .expect("send");
    response.status().as_u16()
}

#[tokio::test]
async fn the_device_flow_gives_an_approved_person_a_personal_expiring_key() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let ana = person(&gateway, "ana@acme.test").await;
    let grant = start_grant(&gateway).await;
    let (device_code, user_code) =
        (grant["device_code"].as_str().expect("code"), grant["user_code"].as_str().expect("code"));
    assert_eq!(grant["interval"], 1);
    assert!(
        grant["verification_uri_complete"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/device?user_code={user_code}")))
    );

    assert_eq!(poll(&gateway, device_code).await.1["error"], "authorization_pending");
    assert_eq!(poll(&gateway, device_code).await.1["error"], "slow_down", "polling faster than the interval");

    // Without a session the page sends the person to sign in, and back.
    let page = browser().get(format!("{}/device?user_code={user_code}", gateway.url)).send().await.expect("send");
    assert_eq!(page.status(), 303);
    let location = page.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert_eq!(location, format!("/login?next=/device%3Fuser_code%3D{user_code}"));

    assert_eq!(sign_in(&gateway, "ana@acme.test", "wrong password!!").await, Err(401));
    assert_eq!(sign_in(&gateway, "nobody@acme.test", PASSWORD).await, Err(401), "the same answer for unknown e-mails");
    let session = sign_in(&gateway, "ANA@acme.test", PASSWORD).await.expect("signed in");

    let forged = browser()
        .post(format!("{}/device", gateway.url))
        .header("cookie", &session)
        .form(&[("csrf", "forged"), ("user_code", user_code), ("decision", "approve")])
        .send()
        .await
        .expect("send");
    assert_eq!(forged.status(), 403, "a form without the session's CSRF token is refused");
    assert_eq!(decide(&gateway, &session, user_code, "approve").await, 200);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, token) = poll(&gateway, device_code).await;
    assert_eq!(status, 200, "{token}");
    let key = token["access_token"].as_str().expect("key");
    assert!(key.starts_with("moat_sk_") && token["expires_in"].as_u64() == Some(30 * 24 * 3600));
    assert_eq!(gateway.post("/v1/chat/completions", key, &chat("m")).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(poll(&gateway, device_code).await.1["error"], "invalid_grant", "a code gives one key");

    let keys: Value = gateway.admin_get("keys").await.json().await.expect("json");
    let personal = keys["data"]
        .as_array()
        .expect("data")
        .iter()
        .find(|k| k["user_id"] == ana.as_str())
        .expect("ana's key")
        .clone();
    assert!(personal["expires_at"].is_string() && personal["role"] == "client", "{personal}");
    let audit: Value = gateway.admin_get("audit").await.json().await.expect("json");
    let actions: Vec<&str> =
        audit["data"].as_array().expect("data").iter().filter_map(|r| r["action"].as_str()).collect();
    for expected in ["user.sign_in", "device.approve", "key.create", "user.password"] {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
}

#[tokio::test]
async fn denied_and_signed_out_sessions_give_nothing() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let bo = person(&gateway, "bo@acme.test").await;
    let session = sign_in(&gateway, "bo@acme.test", PASSWORD).await.expect("signed in");
    let grant = start_grant(&gateway).await;
    assert_eq!(decide(&gateway, &session, grant["user_code"].as_str().expect("code"), "deny").await, 200);
    assert_eq!(poll(&gateway, grant["device_code"].as_str().expect("code")).await.1["error"], "access_denied");

    // Signing out needs the session's CSRF token, and ends the session.
    let page = browser().get(format!("{}/device", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(page.status(), 200);
    let other = start_grant(&gateway).await;
    let confirm = browser()
        .get(format!("{}/device?user_code={}", gateway.url, other["user_code"].as_str().expect("code")))
        .header("cookie", &session)
        .send()
        .await
        .expect("send");
    let csrf = hidden(&confirm.text().await.expect("html"), "csrf");
    let out = browser()
        .post(format!("{}/logout", gateway.url))
        .header("cookie", &session)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("send");
    assert_eq!(out.status(), 303);
    let after = browser().get(format!("{}/device", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(after.status(), 303, "the session is gone");

    // A deactivated user's session dies with them.
    let session = sign_in(&gateway, "bo@acme.test", PASSWORD).await.expect("signed in again");
    let response = browser()
        .patch(format!("{}/admin/v1/users/{bo}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "active": false }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let after = browser().get(format!("{}/device", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(after.status(), 303);
    assert_eq!(sign_in(&gateway, "bo@acme.test", PASSWORD).await, Err(401), "and they cannot sign in");
}

#[tokio::test]
async fn idle_sessions_expire_and_sign_in_forms_need_their_csrf_cookie() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "session_idle = \"1s\"\n")).await;
    person(&gateway, "cy@acme.test").await;
    let session = sign_in(&gateway, "cy@acme.test", PASSWORD).await.expect("signed in");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let page = browser().get(format!("{}/device", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(page.status(), 303, "an idle session is over");

    let no_cookie = browser()
        .post(format!("{}/login", gateway.url))
        .form(&[("email", "cy@acme.test"), ("password", PASSWORD), ("csrf", "guess"), ("next", "/device")])
        .send()
        .await
        .expect("send");
    assert_eq!(no_cookie.status(), 403);
    let offsite = browser()
        .get(format!("{}/login?next=//evil.example/", gateway.url))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("html");
    assert!(offsite.contains("name=\"next\" value=\"/ui\""), "only local paths are followed after sign-in");

    let weak = browser()
        .put(format!("{}/admin/v1/users/{}/password", gateway.url, "usr_nobody"))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "password": "short" }))
        .send()
        .await
        .expect("send");
    assert_eq!(weak.status(), 404);
}
