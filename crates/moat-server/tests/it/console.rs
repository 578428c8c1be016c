//! The web console at `/ui`: sign-in, role-aware pages, keys made and revoked through it, and
//! CSRF on every change.

use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::sign_in::{PASSWORD, browser, config, hidden, person_with_role, sign_in};
use crate::support::{TestGateway, chat};

pub(crate) async fn get(gateway: &TestGateway, session: &str, path: &str) -> (u16, String) {
    let response =
        browser().get(format!("{}{path}", gateway.url)).header("cookie", session).send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.text().await.expect("html"))
}

pub(crate) async fn post(gateway: &TestGateway, session: &str, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser().post(format!("{}{path}", gateway.url)).header("cookie", session).form(form).send().await.expect("send")
}

#[tokio::test]
async fn signed_out_visitors_are_sent_to_sign_in_and_back() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let response = browser().get(format!("{}/ui/keys?x=1", gateway.url)).send().await.expect("send");
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()["location"], "/login?next=%2Fui%2Fkeys%3Fx%3D1");
    let css = browser().get(format!("{}/ui/assets/console.css", gateway.url)).send().await.expect("send");
    assert_eq!(css.status(), 200);
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
}

#[tokio::test]
async fn an_admin_sees_the_dashboard_with_real_figures() {
    let upstream = FakeUpstream::start().await;
    let config =
        config(&upstream, "\n[savings]\nreferences = [{ model = \"claude-sonnet-4-6\", provider = \"anthropic\" }]\n")
            .replace(
                "upstream_model = \"upstream-m\"",
                "upstream_model = \"upstream-m\"\n        cost = { per_mtok = 1.0 }",
            );
    let gateway = TestGateway::start_with(&config).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, key) = gateway.create_key(json!({ "name": "traffic" })).await;
    for _ in 0..3 {
        upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 1_000, completion: 100, cached: 0 })));
        assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    }
    gateway.usage(3).await;

    let (status, html) = get(&gateway, &session, "/ui").await;
    assert_eq!(status, 200, "{html}");
    // 3 × 1,100 tokens at $1/M; at the reference 3 × (1,000 × $3 + 100 × $15)/M = $0.0135.
    assert!(html.contains("<div class=\"value\">$0.0033</div>"), "{html}");
    assert!(html.contains("$0.0102"), "savings: {html}");
    assert!(html.contains("vs claude-sonnet-4-6"), "{html}");
    assert!(html.contains("<div class=\"value\">25 / 25 ms</div>"), "time to first token: {html}");
    assert!(html.contains("<svg class=\"chart\""), "{html}");
    assert!(html.contains("aria-current=\"page\">Dashboard"), "{html}");
    assert!(html.contains("Top models") && html.contains("<td>m</td>"), "{html}");
    assert!(html.contains(">fake<") && html.contains(">up<"), "deployment health: {html}");
    let (status, _) = get(&gateway, &session, "/ui?days=7").await;
    assert_eq!(status, 200);
    // The models page: the deployment's health and cost, and each model's routing policy.
    let (status, html) = get(&gateway, &session, "/ui/models").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("$1.0 per million tokens") && html.contains(">up<"), "{html}");
    assert!(html.contains("<td>fake (1, 0)</td><td>weighted</td>"), "the policy: {html}");
    // The price catalog marks the reference savings are measured against.
    let (status, html) = get(&gateway, &session, "/ui/prices").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("claude-sonnet-4-6 <span class=\"badge\">reference</span>"), "{html}");
    let (_, html) = get(&gateway, &session, "/ui/prices?kind=gpu").await;
    assert!(html.contains("id=\"gpus\"") && html.contains("H100"), "{html}");
}

#[tokio::test]
async fn the_settings_page_shows_sso_scim_and_enforcement_but_never_a_secret() {
    let upstream = FakeUpstream::start().await;
    let extra = r#"
[sso]
issuer = "https://login.acme.test"
client_id = "moat-console"
client_secret = { env = "FAKE_UPSTREAM_KEY" }
redirect_url = "https://moat.acme.test/sso/callback"
allowed_domains = ["acme.test"]
group_roles = { "moat-admins" = "admin" }
group_teams = { "eng-platform" = "Platform" }

[scim]
token = { env = "MOAT_TEST_SCIM_TOKEN" }

[admission]
budgets_fail = "open"

[[alerts.webhooks]]
url = "https://hooks.acme.test/services/T0/B0/xyzzy-hook-path"
format = "slack"
secret = { env = "MOAT_TEST_SCIM_TOKEN" }

[usage]
retention = "90d"

[policy]
secrets = "block"

[egress]
allowed_networks = ["10.20.0.0/16"]

[encryption]
key = { env = "MOAT_TEST_ENCRYPTION_KEY" }
"#;
    let gateway = TestGateway::start_with(&config(&upstream, extra)).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &session, "/ui/settings").await;
    assert_eq!(status, 200, "{html}");
    for shown in [
        "https://login.acme.test",
        "moat-console",
        "acme.test",
        "<td>moat-admins</td><td>admin</td>",
        "<td>eng-platform</td><td>Platform</td>",
        "On at <code>/scim/v2</code>",
        "fail open",
        "slack webhook, signed",
        "<dd>90d</dd>",
        "off: plain HTTP",
        "<dd>10000</dd>",
        "at most 100 headers, 65536 bytes, within 30s",
        "10.20.0.0/16",
        "master key mk_",
        "credentials bound outside: block; prompts kept: metadata",
    ] {
        assert!(html.contains(shown), "`{shown}` in {html}");
    }
    let api = gateway.admin_get("settings").await.text().await.expect("text");
    for secret in
        [crate::support::UPSTREAM_SECRET, crate::support::SCIM_TOKEN, crate::support::ENCRYPTION_KEY, "xyzzy-hook-path"]
    {
        assert!(!html.contains(secret) && !api.contains(secret), "a secret leaked: {api}");
    }
    let member = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (status, _) = get(&gateway, &member, "/ui/settings").await;
    assert_eq!(status, 403, "members do not read the organisation's settings");
}

#[tokio::test]
async fn a_member_cannot_reach_admin_figures_or_another_persons_key() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let other = person_with_role(&gateway, "eve@example.com", "member").await;
    let (other_key_id, _) = gateway.create_key(json!({ "name": "eve's", "user_id": other })).await;
    let session = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &session, "/ui?days=30").await;
    assert_eq!(status, 303, "{html}");
    let (_, html) = get(&gateway, &session, "/ui/keys").await;
    assert!(!html.contains("eve&#39;s") && !html.contains("eve's"), "{html}");
    let csrf = hidden(&html, "csrf");
    let response = post(&gateway, &session, &format!("/ui/keys/{other_key_id}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(response.status(), 404, "another person's key is not there for a member");
    let key: Value = gateway.admin_get(&format!("keys/{other_key_id}")).await.json().await.expect("json");
    assert!(key["revoked_at"].is_null(), "{key}");
}

#[tokio::test]
async fn pages_are_not_cached_framed_or_scripted_from_elsewhere() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let session = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let response =
        browser().get(format!("{}/ui/connect", gateway.url)).header("cookie", &session).send().await.expect("send");
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"].to_str().expect("csp").contains("script-src 'self'"));
    let html = response.text().await.expect("html");
    assert!(html.contains(&format!("moat login --server {}", gateway.url)), "{html}");
    assert!(!html.contains("<script>"), "no inline script: {html}");
}

#[tokio::test]
async fn the_usage_explorer_finds_a_request_pages_and_exports() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let (_, key) = gateway.create_key(json!({ "name": "traffic" })).await;
    let mut ids = Vec::new();
    for _ in 0..55 {
        upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 10, completion: 2, cached: 0 })));
        let response = gateway.post("/v1/chat/completions", &key, &chat("m")).await;
        assert_eq!(response.status(), 200);
        ids.push(response.headers()["x-request-id"].to_str().expect("id").to_owned());
    }
    gateway.usage(55).await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");

    // Newest first, 50 a page, and a cursor to the rest.
    let (status, html) = get(&gateway, &session, "/ui/usage").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<tr><td>").count(), 50, "{html}");
    assert!(html.contains(&ids[54]) && !html.contains(&format!(">{}<", ids[0])), "{html}");
    let older = html.split("href=\"").find(|s| s.contains("rel=\"next\"")).expect("older link");
    let older = older.split('"').next().expect("href").replace("&amp;", "&");
    let (_, html) = get(&gateway, &session, &older).await;
    assert_eq!(html.matches("<tr><td>").count(), 5, "{html}");
    assert!(html.contains(&ids[0]), "{html}");

    // One request, by the id moat answered with.
    let (_, html) = get(&gateway, &session, &format!("/ui/usage?id={}", ids[7])).await;
    assert_eq!(html.matches("<tr><td>").count(), 1, "{html}");
    assert!(html.contains(&ids[7]));
    assert!(html.contains(">traffic</td>"), "the key by its name: {html}");
    // A bad filter is shown beside its field.
    let (status, html) = get(&gateway, &session, "/ui/usage?status=teapot").await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"status-error\""), "{html}");

    let csv = browser().get(format!("{}/ui/usage.csv?model=m", gateway.url)).header("cookie", &session).send().await;
    let csv = csv.expect("send");
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("csv");
    assert_eq!(csv.lines().count(), 56, "a header and every record");
    assert!(csv.lines().nth(1).is_some_and(|l| l.contains(&ids[54]) && l.contains(",traffic,")), "{csv}");
    assert!(csv.starts_with("created_at,id,key_id,key_name,user_id,user_email,"), "{csv}");

    // A member reads only their own usage here: none of this traffic is theirs.
    let member = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &member, "/ui/usage").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("id=\"no-records\"") && !html.contains(&ids[7]), "{html}");
}

#[tokio::test]
async fn an_admin_creates_a_team_and_invites_someone_into_it() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &session, "/ui/teams").await;
    let csrf = hidden(&html, "csrf");

    let empty = post(&gateway, &session, "/ui/teams", &[("csrf", &csrf), ("name", "")]).await;
    assert_eq!(empty.status(), 400);
    assert!(empty.text().await.expect("html").contains("id=\"team-name-error\""));
    let made = post(&gateway, &session, "/ui/teams", &[("csrf", &csrf), ("name", "Platform")]).await;
    assert_eq!(made.status(), 303);
    let team_page = made.headers()["location"].to_str().expect("location").to_owned();
    let team_id = team_page.trim_start_matches("/ui/teams/").to_owned();
    let (status, html) = get(&gateway, &session, &team_page).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Platform</h1>") && html.contains("id=\"no-members\""), "{html}");

    // No mailer here: the invitation link is shown to pass on, and it works.
    let invited = post(
        &gateway,
        &session,
        &format!("{team_page}/invite"),
        &[("csrf", &csrf), ("email", "new@example.com"), ("team_role", "member")],
    )
    .await;
    assert_eq!(invited.status(), 201);
    let html = invited.text().await.expect("html");
    let link = html.split("id=\"invite-link\">").nth(1).and_then(|s| s.split('<').next()).expect("link").to_owned();
    assert!(link.starts_with(&format!("{}/invite/", gateway.url)), "the link points where the admin is: {link}");
    let invitations: Value = gateway.admin_get("invitations").await.json().await.expect("json");
    let invitation = &invitations["data"][0];
    assert_eq!(
        (invitation["email"].as_str(), invitation["team_id"].as_str()),
        (Some("new@example.com"), Some(team_id.as_str()))
    );
    let page = browser().get(&link).send().await.expect("send");
    assert_eq!(page.status(), 200, "the link opens the invitation");

    // A member sees no create form, and a forged post is refused by the API's rules.
    let member = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &member, "/ui/teams").await;
    assert!(!html.contains("create-team") && !html.contains("Platform"), "{html}");
    let csrf = hidden(&html, "csrf");
    let refused = post(&gateway, &member, "/ui/teams", &[("csrf", &csrf), ("name", "Shadow")]).await;
    assert_eq!(refused.status(), 403);
    let (status, _) = get(&gateway, &member, &team_page).await;
    assert_eq!(status, 404, "another team is not there for a member");
}

#[tokio::test]
async fn an_admin_sets_a_team_budget_that_then_refuses_spend() {
    let upstream = FakeUpstream::start().await;
    let config = config(&upstream, "").replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { per_mtok = 1.0 }",
    );
    let gateway = TestGateway::start_with(&config).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "Platform" })).await.json().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    let (_, key) = gateway.create_key(json!({ "name": "ci", "team_id": team_id })).await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &session, "/ui/budgets").await;
    assert!(html.contains("id=\"no-budgets\""), "{html}");
    let csrf = hidden(&html, "csrf");
    let form = |amount: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("scope", "team".into()),
            ("scope_id", team_id.to_owned()),
            ("amount_usd", amount.into()),
            ("period", "month".into()),
            ("time_zone", "Europe/Paris".into()),
        ]
    };
    let bad = browser()
        .post(format!("{}/ui/budgets", gateway.url))
        .header("cookie", &session)
        .form(&form("lots"))
        .send()
        .await
        .expect("send");
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("html").contains("id=\"amount_usd-error\""));
    // $0.000001: the first request's estimate already passes it.
    let set = browser()
        .post(format!("{}/ui/budgets", gateway.url))
        .header("cookie", &session)
        .form(&form("0.000001"))
        .send()
        .await
        .expect("send");
    assert_eq!(set.status(), 303);
    let (_, html) = get(&gateway, &session, "/ui/budgets").await;
    assert!(
        html.contains("team Platform") && html.contains("Europe/Paris") && html.contains("role=\"meter\""),
        "the budget is shown by its team's name: {html}"
    );
    let refused = gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    assert_eq!(refused.status(), 402, "the budget set in the console holds");

    // Changed in place: wrong thresholds come back beside the field, a new amount holds.
    let budgets: Value = gateway.admin_get("budgets").await.json().await.expect("json");
    let edit = format!("/ui/budgets/{}", budgets["data"][0]["id"].as_str().expect("id"));
    let (status, html) = get(&gateway, &session, &edit).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("value=\"0.000001\"") && html.contains("value=\"50, 80, 100\""), "{html}");
    let change = |amount: &str, thresholds: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("amount_usd", amount.to_owned()),
            ("time_zone", "Europe/Paris".to_owned()),
            ("thresholds", thresholds.to_owned()),
        ]
    };
    let bad =
        browser().post(format!("{}{edit}", gateway.url)).header("cookie", &session).form(&change("5", "half")).send();
    let bad = bad.await.expect("send");
    assert_eq!(bad.status(), 400);
    let html = bad.text().await.expect("html");
    assert!(html.contains("id=\"thresholds-error\"") && html.contains("value=\"half\""), "{html}");
    let bad = browser().post(format!("{}{edit}", gateway.url)).header("cookie", &session).form(&change("-1", "90"));
    let bad = bad.send().await.expect("send");
    assert_eq!(bad.status(), 400, "the API's own check comes back beside the field");
    assert!(bad.text().await.expect("html").contains("id=\"amount_usd-error\""));
    let saved = browser().post(format!("{}{edit}", gateway.url)).header("cookie", &session).form(&change("5", "90"));
    assert_eq!(saved.send().await.expect("send").status(), 303);
    let budget: Value = gateway.admin_get(&edit.replace("/ui/", "")).await.json().await.expect("json");
    assert_eq!((budget["amount_usd"].as_str(), budget["thresholds"].clone()), (Some("$5.00"), json!([90])), "{budget}");
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200, "room again");
    let reset = post(&gateway, &session, &format!("{edit}/reset"), &[("csrf", &csrf)]).await;
    assert_eq!(reset.status(), 303);
    let audit: Value = gateway.admin_get("audit?action=budget.reset").await.json().await.expect("json");
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(1), "{audit}");
}

#[tokio::test]
async fn the_audit_log_viewer_filters_pages_and_verifies_the_chain() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let ada = person_with_role(&gateway, "ada@example.com", "admin").await;
    person_with_role(&gateway, "mo@example.com", "member").await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &session, "/ui/keys").await;
    let csrf = hidden(&html, "csrf");
    for name in ["one", "two"] {
        let made = post(&gateway, &session, "/ui/keys", &[("csrf", &csrf), ("name", name), ("expires_in", "")]).await;
        assert_eq!(made.status(), 201);
    }
    let (status, html) = get(&gateway, &session, "/ui/audit?action=key.").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<tr><td>").count(), 2, "{html}");
    assert!(html.contains(&ada) && html.contains("key.create"), "made by the person: {html}");
    let (_, html) = get(&gateway, &session, "/ui/audit?verify=1").await;
    assert!(html.contains("The chain verifies"), "{html}");
    let (status, html) = get(&gateway, &session, "/ui/audit?from=someday").await;
    assert_eq!(status, 400);
    assert!(html.contains("id=\"from-error\""), "{html}");
    // Members read no audit log.
    let member = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &member, "/ui/audit").await;
    assert_eq!(status, 403);
    assert!(!html.contains("key.create"));
}

#[tokio::test]
async fn an_admin_pages_through_people_changes_a_role_and_deactivates_someone() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let mo = person_with_role(&gateway, "mo@example.com", "member").await;
    for i in 0..100 {
        let made = gateway.admin_post("users", json!({ "email": format!("p{i:03}@example.com") })).await;
        assert_eq!(made.status(), 201);
    }
    let (_, mo_key) = gateway.create_key(json!({ "name": "mo's", "user_id": mo })).await;
    let member = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");

    let (status, html) = get(&gateway, &session, "/ui/users").await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(html.matches("<tr><td>").count(), 100, "a page of 100");
    let more = html.split("href=\"").find(|s| s.contains("rel=\"next\"")).expect("more");
    let (_, rest) = get(&gateway, &session, more.split('"').next().expect("href")).await;
    assert_eq!(rest.matches("<tr><td>").count(), 2, "{rest}");
    let csrf = hidden(&html, "csrf");

    let changed =
        post(&gateway, &session, &format!("/ui/users/{mo}"), &[("csrf", &csrf), ("org_role", "viewer")]).await;
    assert_eq!(changed.status(), 303);
    let user: Value = gateway.admin_get(&format!("users/{mo}")).await.json().await.expect("json");
    assert_eq!(user["org_role"], "viewer");
    // A viewer reads the organisation, so the dashboard opens for them now.
    let (status, _) = get(&gateway, &member, "/ui").await;
    assert_eq!(status, 200);

    let forged = post(&gateway, &session, &format!("/ui/users/{mo}"), &[("active", "false")]).await;
    assert_eq!(forged.status(), 403);
    let off = post(&gateway, &session, &format!("/ui/users/{mo}"), &[("csrf", &csrf), ("active", "false")]).await;
    assert_eq!(off.status(), 303);
    assert_eq!(
        gateway.post("/v1/chat/completions", &mo_key, &chat("m")).await.status(),
        401,
        "their keys went with them"
    );
    let (status, _) = get(&gateway, &member, "/ui/keys").await;
    assert_eq!(status, 303, "and their session");
}

#[tokio::test]
async fn my_usage_shows_a_person_their_own_spend_and_requests_only() {
    let upstream = FakeUpstream::start().await;
    let config = config(&upstream, "").replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { per_mtok = 1.0 }",
    );
    let gateway = TestGateway::start_with(&config).await;
    let mo = person_with_role(&gateway, "mo@example.com", "member").await;
    let (_, mine) = gateway.create_key(json!({ "name": "mo's", "user_id": mo })).await;
    let (_, theirs) = gateway.create_key(json!({ "name": "someone else's" })).await;
    let mut my_ids = Vec::new();
    for _ in 0..2 {
        upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 1_000, completion: 100, cached: 0 })));
        let response = gateway.post("/v1/chat/completions", &mine, &chat("m")).await;
        my_ids.push(response.headers()["x-request-id"].to_str().expect("id").to_owned());
    }
    upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 5_000, completion: 100, cached: 0 })));
    let other = gateway.post("/v1/chat/completions", &theirs, &chat("m")).await;
    let other_id = other.headers()["x-request-id"].to_str().expect("id").to_owned();
    gateway.usage(3).await;

    let session = sign_in(&gateway, "mo@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &session, "/ui/me").await;
    assert_eq!(status, 200, "{html}");
    // 2 × 1,100 tokens at $1/M.
    assert!(html.contains("$0.0022") && !html.contains("$0.0073"), "{html}");
    assert!(my_ids.iter().all(|id| html.contains(id.as_str())) && !html.contains(&other_id), "{html}");
    assert!(html.contains("aria-current=\"page\">My usage"), "{html}");
}

#[tokio::test]
async fn an_admin_sets_a_rate_limit_that_then_holds() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let (key_id, key) = gateway.create_key(json!({ "name": "ci" })).await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &session, "/ui/limits").await;
    assert!(html.contains("id=\"no-limits\""), "{html}");
    let csrf = hidden(&html, "csrf");
    let bad = post(
        &gateway,
        &session,
        "/ui/limits",
        &[("csrf", &csrf), ("scope", "key"), ("scope_id", &key_id), ("requests_per_minute", "many")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("html").contains("id=\"requests_per_minute-error\""));
    let set = post(
        &gateway,
        &session,
        "/ui/limits",
        &[("csrf", &csrf), ("scope", "key"), ("scope_id", &key_id), ("requests_per_minute", "1")],
    )
    .await;
    assert_eq!(set.status(), 303);
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!(
        gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(),
        429,
        "the limit set in the console holds"
    );
    let (_, html) = get(&gateway, &session, "/ui/limits").await;
    assert!(html.contains("key ci"), "the limit is shown by its key's name: {html}");

    // Changed in place: the request cap removed, a concurrency cap set instead.
    let limits: Value = gateway.admin_get("limits").await.json().await.expect("json");
    let edit = format!("/ui/limits/{}", limits["data"][0]["id"].as_str().expect("id"));
    let (status, html) = get(&gateway, &session, &edit).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("id=\"requests_per_minute\" name=\"requests_per_minute\" type=\"text\" value=\"1\""),
        "{html}"
    );
    let none = post(&gateway, &session, &edit, &[("csrf", &csrf), ("requests_per_minute", "")]).await;
    assert_eq!(none.status(), 400, "a limit keeps at least one cap");
    assert!(none.text().await.expect("html").contains("id=\"requests_per_minute-error\""));
    let saved = post(&gateway, &session, &edit, &[("csrf", &csrf), ("concurrent_requests", "4")]).await;
    assert_eq!(saved.status(), 303);
    let limit: Value = gateway.admin_get(&edit.replace("/ui/", "")).await.json().await.expect("json");
    assert_eq!(
        (limit["requests_per_minute"].clone(), limit["concurrent_requests"].clone()),
        (Value::Null, json!(4)),
        "{limit}"
    );
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200, "no request cap now");
}

#[tokio::test]
async fn admins_and_team_admins_manage_a_teams_members() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let lead = person_with_role(&gateway, "lee@example.com", "member").await;
    let mo = person_with_role(&gateway, "mo@example.com", "member").await;
    person_with_role(&gateway, "kim@example.com", "member").await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "Platform" })).await.json().await.expect("json");
    let team_page = format!("/ui/teams/{}", team["id"].as_str().expect("id"));
    let admin = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &admin, &team_page).await;
    let csrf = hidden(&html, "csrf");
    let add = |email: &'static str, role: &'static str, csrf: String| {
        vec![("csrf", csrf), ("email", email.to_owned()), ("role", role.to_owned())]
    };

    // Someone not in moat is pointed at the invitation form instead.
    let unknown = browser()
        .post(format!("{}{team_page}/members", gateway.url))
        .header("cookie", &admin)
        .form(&add("nobody@example.com", "member", csrf.clone()))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 400);
    let html = unknown.text().await.expect("html");
    assert!(html.contains("id=\"member-email-error\"") && html.contains("invite them"), "{html}");
    for (email, role) in [("LEE@example.com", "team-admin"), ("mo@example.com", "member")] {
        let added = browser()
            .post(format!("{}{team_page}/members", gateway.url))
            .header("cookie", &admin)
            .form(&add(email, role, csrf.clone()))
            .send()
            .await
            .expect("send");
        assert_eq!(added.status(), 303, "{email}");
    }
    let (_, html) = get(&gateway, &admin, &team_page).await;
    assert!(html.contains("<td>lee@example.com</td>") && html.contains("<td>mo@example.com</td>"), "by e-mail: {html}");

    // The team admin (a member of the organisation) manages this team's members too.
    let lee = sign_in(&gateway, "lee@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &lee, &team_page).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"add-member\"") && !html.contains("id=\"send-invite\""), "no invitations: {html}");
    let lee_csrf = hidden(&html, "csrf");
    let added = browser()
        .post(format!("{}{team_page}/members", gateway.url))
        .header("cookie", &lee)
        .form(&add("kim@example.com", "member", lee_csrf.clone()))
        .send()
        .await
        .expect("send");
    assert_eq!(added.status(), 303);
    let promoted =
        post(&gateway, &lee, &format!("{team_page}/members/{mo}"), &[("csrf", &lee_csrf), ("role", "team-admin")])
            .await;
    assert_eq!(promoted.status(), 303);
    let own = post(&gateway, &lee, &format!("{team_page}/members/{lead}/remove"), &[("csrf", &lee_csrf)]).await;
    assert_eq!(own.status(), 403, "nobody changes their own membership");
    let team: Value = gateway.admin_get(&team_page.replace("/ui/", "")).await.json().await.expect("json");
    let role_of = |email: &str| {
        team["members"].as_array().expect("members").iter().find(|m| m["email"] == email).map(|m| m["role"].clone())
    };
    assert_eq!(role_of("mo@example.com"), Some(json!("team-admin")), "{team}");
    assert_eq!(role_of("kim@example.com"), Some(json!("member")), "{team}");

    // The admin removes someone; a plain member can change nothing, even forging the form.
    let removed = post(&gateway, &admin, &format!("{team_page}/members/{mo}/remove"), &[("csrf", &csrf)]).await;
    assert_eq!(removed.status(), 303);
    let kim = sign_in(&gateway, "kim@example.com", PASSWORD).await.expect("signed in");
    let (_, html) = get(&gateway, &kim, &team_page).await;
    assert!(!html.contains("id=\"add-member\"") && !html.contains("/remove"), "{html}");
    let kim_csrf = hidden(&html, "csrf");
    let forged = post(&gateway, &kim, &format!("{team_page}/members/{lead}/remove"), &[("csrf", &kim_csrf)]).await;
    assert_eq!(forged.status(), 403);
    let looked_up = browser()
        .post(format!("{}{team_page}/members", gateway.url))
        .header("cookie", &kim)
        .form(&add("ada@example.com", "member", kim_csrf))
        .send()
        .await
        .expect("send");
    assert_eq!(looked_up.status(), 403, "a member cannot even look people up");
    let team: Value = gateway.admin_get(&team_page.replace("/ui/", "")).await.json().await.expect("json");
    assert_eq!(team["members"].as_array().map(Vec::len), Some(2), "lee and kim: {team}");
}

#[tokio::test]
async fn the_invitations_page_invites_lists_and_revokes() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "Platform" })).await.json().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    let admin = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let (status, html) = get(&gateway, &admin, "/ui/invitations").await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"no-invitations\"") && html.contains(">Platform</option>"), "{html}");
    let csrf = hidden(&html, "csrf");
    let bad = post(&gateway, &admin, "/ui/invitations", &[("csrf", &csrf), ("email", "not-an-address")]).await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.expect("html").contains("id=\"email-error\""));
    let invited = post(
        &gateway,
        &admin,
        "/ui/invitations",
        &[
            ("csrf", &csrf),
            ("email", "lead@example.com"),
            ("org_role", "member"),
            ("team_id", team_id),
            ("team_role", "team-admin"),
        ],
    )
    .await;
    assert_eq!(invited.status(), 201);
    let html = invited.text().await.expect("html");
    assert!(html.contains("id=\"invite-link\"") && html.contains("Platform (team-admin)"), "{html}");
    // A team admin invited from the team's page too (the team role the API names).
    let from_team = post(
        &gateway,
        &admin,
        &format!("/ui/teams/{team_id}/invite"),
        &[("csrf", &csrf), ("email", "second@example.com"), ("team_role", "team-admin")],
    )
    .await;
    assert_eq!(from_team.status(), 201);
    let invitations: Value = gateway.admin_get("invitations").await.json().await.expect("json");
    let open: Vec<&Value> = invitations["data"].as_array().expect("data").iter().collect();
    assert!(open.iter().all(|i| i["team_role"] == "team-admin" && i["status"] == "open"), "{invitations}");
    let first = open.iter().find(|i| i["email"] == "lead@example.com").and_then(|i| i["id"].as_str()).expect("id");

    let revoked = post(&gateway, &admin, &format!("/ui/invitations/{first}/revoke"), &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status(), 303);
    let (_, html) = get(&gateway, &admin, "/ui/invitations").await;
    assert!(!html.contains("lead@example.com") && html.contains("second@example.com"), "open ones: {html}");
    let (_, html) = get(&gateway, &admin, "/ui/invitations?show=all").await;
    assert!(html.contains(">revoked<") && html.matches("/revoke\"").count() == 1, "one left to revoke: {html}");
    let forged = post(&gateway, &admin, &format!("/ui/invitations/{first}/revoke"), &[]).await;
    assert_eq!(forged.status(), 403);
}

#[tokio::test]
async fn a_large_teams_members_list_a_page_at_a_time() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    person_with_role(&gateway, "ada@example.com", "admin").await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "Everyone" })).await.json().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    for n in 0..103 {
        let user: Value = gateway
            .admin_post("users", json!({ "email": format!("p{n:03}@example.com") }))
            .await
            .json()
            .await
            .expect("json");
        let put = gateway
            .http
            .put(format!("{}/admin/v1/teams/{team_id}/members/{}", gateway.url, user["id"].as_str().expect("id")))
            .bearer_auth(crate::support::ADMIN_KEY)
            .send()
            .await
            .expect("send");
        assert!(put.status().is_success());
    }
    // The API pages by user id.
    let first: Value =
        gateway.admin_get(&format!("teams/{team_id}/members?limit=100")).await.json().await.expect("json");
    assert_eq!(first["data"].as_array().map(Vec::len), Some(100));
    let next = first["next_after"].as_str().expect("more");
    let rest: Value =
        gateway.admin_get(&format!("teams/{team_id}/members?after={next}")).await.json().await.expect("json");
    assert_eq!((rest["data"].as_array().map(Vec::len), rest["next_after"].clone()), (Some(3), Value::Null));
    assert!(rest["data"][0]["email"].as_str().is_some_and(|e| e.ends_with("@example.com")), "{rest}");
    let unknown = gateway.admin_get(&format!("teams/{team_id}/members?email=p001%40example.com")).await;
    assert_eq!(unknown.status(), 400, "members are not searched here; unknown parameters are refused");

    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let page = format!("/ui/teams/{team_id}");
    let (status, html) = get(&gateway, &session, &page).await;
    assert_eq!(status, 200);
    assert!(html.contains("<h1>Everyone</h1>"), "{html}");
    assert_eq!(html.matches("@example.com</td>").count(), 100, "{html}");
    let more = html.split("href=\"").find(|s| s.contains("rel=\"next\"")).expect("a link to more");
    let more = more.split('"').next().expect("href").replace("&amp;", "&");
    let (_, html) = get(&gateway, &session, &more).await;
    assert_eq!(html.matches("@example.com</td>").count(), 3, "{html}");
    assert!(!html.contains("more-members"), "{html}");
}

/// What makes a page usable with a screen reader and a keyboard, checked on its HTML: one
/// `h1`, a language, every form control named by a `label` (or `aria-label`), every button
/// named, every table with header cells, and no positive `tabindex` reordering the keyboard.
fn accessibility_problems(html: &str) -> Vec<String> {
    use scraper::{Html, Selector};
    let document = Html::parse_document(html);
    let select = |css: &str| Selector::parse(css).unwrap_or_else(|e| panic!("{css}: {e}"));
    let mut problems = Vec::new();
    let headings = document.select(&select("h1")).count();
    if headings != 1 {
        problems.push(format!("{headings} h1 elements"));
    }
    if document.select(&select("html[lang]")).next().is_none() {
        problems.push("no lang on <html>".into());
    }
    let labelled: Vec<String> =
        document.select(&select("label[for]")).filter_map(|l| l.value().attr("for").map(str::to_owned)).collect();
    for control in document.select(&select("input:not([type=hidden]), select, textarea")) {
        let named = control.value().attr("aria-label").is_some()
            || control.value().id().is_some_and(|id| labelled.iter().any(|l| l == id));
        if !named {
            problems.push(format!("unlabelled control {}", control.html()));
        }
    }
    for button in document.select(&select("button, a")) {
        let text: String = button.text().collect();
        if text.trim().is_empty() && button.value().attr("aria-label").is_none() {
            problems.push(format!("unnamed {}", button.html()));
        }
    }
    for table in document.select(&select("table")) {
        if table.select(&select("th")).next().is_none() {
            problems.push("a table without header cells".into());
        }
    }
    for focusable in document.select(&select("[tabindex]")) {
        if focusable.value().attr("tabindex").and_then(|t| t.parse::<i32>().ok()).is_some_and(|t| t > 0) {
            problems.push(format!("positive tabindex on {}", focusable.html()));
        }
    }
    problems
}

#[tokio::test]
async fn every_page_names_its_controls_for_screen_readers_and_keyboards() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, "")).await;
    let ada = person_with_role(&gateway, "ada@example.com", "admin").await;
    let team: Value = gateway.admin_post("teams", json!({ "name": "Platform" })).await.json().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    let put = gateway
        .http
        .put(format!("{}/admin/v1/teams/{team_id}/members/{ada}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert!(put.status().is_success());
    let budget: Value = gateway
        .admin_post("budgets", json!({ "scope": "team", "scope_id": team_id, "amount_usd": "5", "period": "month" }))
        .await
        .json()
        .await
        .expect("json");
    let limit: Value = gateway
        .admin_post("limits", json!({ "scope": "team", "scope_id": team_id, "requests_per_minute": 60 }))
        .await
        .json()
        .await
        .expect("json");
    gateway.admin_post("invitations", json!({ "email": "new@example.com" })).await;
    gateway.create_key(json!({ "name": "deploy", "team_id": team_id })).await;
    let (_, key) = gateway.create_key(json!({ "name": "traffic", "user_id": ada })).await;
    upstream.push(Reply::chat("hi", None));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    gateway.usage(1).await;
    let session = sign_in(&gateway, "ada@example.com", PASSWORD).await.expect("signed in");
    let pages = [
        "/ui".to_owned(),
        "/ui/usage".into(),
        "/ui/users".into(),
        "/ui/all-keys".into(),
        "/ui/invitations".into(),
        "/ui/teams".into(),
        format!("/ui/teams/{team_id}"),
        "/ui/budgets".into(),
        format!("/ui/budgets/{}", budget["id"].as_str().expect("id")),
        "/ui/limits".into(),
        format!("/ui/limits/{}", limit["id"].as_str().expect("id")),
        "/ui/models".into(),
        "/ui/prices".into(),
        "/ui/settings".into(),
        "/ui/audit".into(),
        "/ui/me".into(),
        "/ui/keys".into(),
        "/ui/connect".into(),
    ];
    for page in pages {
        let (status, html) = get(&gateway, &session, &page).await;
        assert_eq!(status, 200, "{page}: {html}");
        let problems = accessibility_problems(&html);
        assert!(problems.is_empty(), "{page}: {problems:#?}");
    }
    // The check finds what it looks for.
    let broken = "<html><body><h1>a</h1><h1>b</h1><input name=x><button></button><table><tr><td>1</td></tr></table></body></html>";
    assert_eq!(accessibility_problems(broken).len(), 5, "{:#?}", accessibility_problems(broken));
}
