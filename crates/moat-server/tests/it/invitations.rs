//! Invitations: a link that lets one person join once with a role and a team, shown to the
//! admin or sent by e-mail.

use moat_testkit::{FakeUpstream, SmtpSink};
use serde_json::{Value, json};

use crate::support::TestGateway;

fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client")
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap_or_default().to_owned()
}

/// Opens the link and joins with `password`; returns the answer's status.
async fn join(url: &str, password: &str) -> u16 {
    let page = browser().get(url).send().await.expect("open link");
    if page.status() != 200 {
        return page.status().as_u16();
    }
    let csrf_cookie = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("moat_csrf="))
        .and_then(|v| v.split(';').next())
        .expect("csrf cookie")
        .to_owned();
    let csrf = hidden(&page.text().await.expect("html"), "csrf");
    let joined = browser()
        .post(url)
        .header("cookie", csrf_cookie)
        .form(&[("password", password), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("join");
    let status = joined.status().as_u16();
    if status == 303 {
        assert!(
            joined
                .headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().is_ok_and(|v| v.starts_with("moat_session="))),
            "joining signs in"
        );
    }
    status
}

#[tokio::test]
async fn an_invitation_lets_one_person_join_once_with_its_role_and_team() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "platform" })).await.json().await.expect("json");
    let team = team["id"].as_str().expect("id").to_owned();
    let response = gateway
        .admin_post(
            "invitations",
            json!({ "email": "Dana@Acme.test", "org_role": "viewer", "team_id": team, "team_role": "team-admin" }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let invitation: Value = response.json().await.expect("json");
    assert_eq!((invitation["emailed"].as_bool(), invitation["status"].as_str()), (Some(false), Some("open")));
    let url = invitation["url"].as_str().expect("without SMTP the admin gets the link").to_owned();
    assert!(url.starts_with(&format!("{}/invite/", gateway.url)), "{url}");

    assert_eq!(join(&url, "short").await, 400, "a weak password is refused on the page");
    assert_eq!(join(&url, "a long enough password").await, 303);
    assert_eq!(join(&url, "a long enough password").await, 404, "a link works once");

    let users: Value = gateway.admin_get("users").await.json().await.expect("json");
    let dana = users["data"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == "dana@acme.test")
        .expect("dana joined")
        .clone();
    assert_eq!(dana["org_role"], "viewer");
    let page: Value = gateway.admin_get(&format!("teams/{team}")).await.json().await.expect("json");
    let member = &page["members"][0];
    assert_eq!(
        (&member["user_id"], &member["role"], &member["email"]),
        (&dana["id"], &json!("team-admin"), &json!("dana@acme.test"))
    );
    let list: Value = gateway.admin_get("invitations").await.json().await.expect("json");
    assert_eq!(list["data"][0]["status"], "accepted");

    // A withdrawn invitation is dead.
    let second: Value =
        gateway.admin_post("invitations", json!({ "email": "eli@acme.test" })).await.json().await.expect("json");
    let revoke = gateway
        .http
        .delete(format!("{}/admin/v1/invitations/{}", gateway.url, second["id"].as_str().expect("id")))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(revoke.status(), 204);
    assert_eq!(join(second["url"].as_str().expect("url"), "a long enough password").await, 404);
    let audit: Value = gateway.admin_get("audit?action=invitation.").await.json().await.expect("json");
    let actions: Vec<&str> =
        audit["data"].as_array().expect("data").iter().filter_map(|r| r["action"].as_str()).collect();
    assert_eq!(actions, ["invitation.revoke", "invitation.create", "invitation.accept", "invitation.create"]);

    // A page at a time, newest first; `status=open` leaves out accepted and revoked ones.
    let third: Value =
        gateway.admin_post("invitations", json!({ "email": "gus@acme.test" })).await.json().await.expect("json");
    let open: Value = gateway.admin_get("invitations?status=open").await.json().await.expect("json");
    let emails: Vec<&str> = open["data"].as_array().expect("data").iter().filter_map(|i| i["email"].as_str()).collect();
    assert_eq!(emails, ["gus@acme.test"]);
    let first: Value = gateway.admin_get("invitations?limit=2").await.json().await.expect("json");
    assert_eq!(first["data"][0]["id"], third["id"]);
    let next = first["next_before"].as_str().expect("a next page");
    let rest: Value =
        gateway.admin_get(&format!("invitations?limit=2&before={next}")).await.json().await.expect("json");
    assert_eq!(
        (rest["data"].as_array().map(Vec::len), rest["data"][0]["email"].as_str()),
        (Some(1), Some("dana@acme.test"))
    );
    assert_eq!(gateway.admin_get("invitations?status=pending").await.status(), 400);
}

#[tokio::test]
async fn with_smtp_the_link_goes_by_e_mail_and_not_to_the_admin() {
    let upstream = FakeUpstream::start().await;
    let sink = SmtpSink::start().await;
    let config = crate::support::default_config(&upstream)
        + &format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nfrom = \"moat <moat@acme.test>\"\n",
            sink.port()
        );
    let gateway = TestGateway::start_with(&config).await;
    let invitation: Value =
        gateway.admin_post("invitations", json!({ "email": "fay@acme.test" })).await.json().await.expect("json");
    assert_eq!(invitation["emailed"], true, "{invitation}");
    assert!(invitation.get("url").is_none(), "the link went to the person only");
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = messages[0].replace("=\r\n", "").replace("=3D", "=");
    assert!(message.contains("fay@acme.test") && message.contains("Subject: Your invitation to moat"), "{message}");
    let link = message.split_whitespace().find(|w| w.contains("/invite/")).expect("the link is in the mail").to_owned();
    assert_eq!(join(&link, "a long enough password").await, 303);
}

#[tokio::test]
async fn only_those_who_may_make_the_user_may_invite_them() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let user: Value = gateway
        .admin_post("users", json!({ "email": "ada@acme.test", "org_role": "admin" }))
        .await
        .json()
        .await
        .expect("json");
    let key: Value = gateway
        .admin_post("keys", json!({ "name": "ada", "user_id": user["id"], "role": "admin" }))
        .await
        .json()
        .await
        .expect("json");
    let as_admin = |body: Value| {
        gateway
            .http
            .post(format!("{}/admin/v1/invitations", gateway.url))
            .bearer_auth(key["key"].as_str().expect("secret").to_owned())
            .json(&body)
            .send()
    };
    assert_eq!(as_admin(json!({ "email": "x@acme.test", "org_role": "owner" })).await.expect("send").status(), 403);
    assert_eq!(as_admin(json!({ "email": "x@acme.test", "org_role": "member" })).await.expect("send").status(), 201);
}
