//! Users, teams and roles over the whole admin API: a role × route matrix, escalation
//! attempts, objects of other teams by id, deactivated users, and the audit log.

use moat_testkit::FakeUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{TestGateway, chat};

/// An organisation: an owner, an admin, a member of team red, a viewer, and red's team-admin
/// (a member in the organisation); teams red and blue; an admin-scope key for each person.
struct Org {
    gateway: TestGateway,
    red: String,
    blue: String,
    users: Vec<(&'static str, String, String)>,
}

const ROLES: [&str; 5] = ["owner", "admin", "member", "viewer", "lead"];

impl Org {
    async fn start() -> (FakeUpstream, Org) {
        let upstream = FakeUpstream::start().await;
        let gateway = TestGateway::start(&upstream).await;
        let red = created(gateway.admin_post("teams", json!({ "name": "red" })).await).await["id"].clone();
        let blue = created(gateway.admin_post("teams", json!({ "name": "blue" })).await).await["id"].clone();
        let (red, blue) = (red.as_str().expect("id").to_owned(), blue.as_str().expect("id").to_owned());
        let mut users = Vec::new();
        for (label, role) in
            [("owner", "owner"), ("admin", "admin"), ("member", "member"), ("viewer", "viewer"), ("lead", "member")]
        {
            let user = created(
                gateway.admin_post("users", json!({ "email": format!("{label}@acme.test"), "org_role": role })).await,
            )
            .await;
            let id = user["id"].as_str().expect("id").to_owned();
            let key =
                created(gateway.admin_post("keys", json!({ "name": label, "user_id": id, "role": "admin" })).await)
                    .await;
            users.push((label, id, key["key"].as_str().expect("secret").to_owned()));
        }
        let org = Org { gateway, red, blue, users };
        org.put_member(&org.red, "lead", "team-admin").await;
        org.put_member(&org.red, "member", "member").await;
        (upstream, org)
    }

    fn id(&self, label: &str) -> &str {
        &self.users.iter().find(|(l, _, _)| *l == label).expect("user").1
    }

    fn key(&self, label: &str) -> &str {
        &self.users.iter().find(|(l, _, _)| *l == label).expect("user").2
    }

    async fn put_member(&self, team: &str, label: &str, role: &str) {
        let path = format!("{}/admin/v1/teams/{team}/members/{}", self.gateway.url, self.id(label));
        let response = self
            .gateway
            .http
            .put(path)
            .bearer_auth(crate::support::ADMIN_KEY)
            .json(&json!({ "role": role }))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
    }

    async fn call(&self, key: &str, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request =
            self.gateway.http.request(method, format!("{}/admin/v1/{path}", self.gateway.url)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("send")
    }

    /// A fresh user made by the break-glass key, for actions that change their target.
    async fn fresh_user(&self, role: &str) -> String {
        let email = format!("{}@acme.test", uuid_like());
        let user = created(self.gateway.admin_post("users", json!({ "email": email, "org_role": role })).await).await;
        user["id"].as_str().expect("id").to_owned()
    }

    async fn fresh_key(&self, owner: Value) -> String {
        let mut body = json!({ "name": "fresh" });
        if let (Some(target), Some(source)) = (body.as_object_mut(), owner.as_object()) {
            target.extend(source.clone());
        }
        created(self.gateway.admin_post("keys", body).await).await["id"].as_str().expect("id").to_owned()
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("fresh{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

/// One row of the matrix: what each of [`ROLES`] gets.
struct Case {
    what: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    expect: [u16; 5],
}

#[tokio::test]
async fn every_admin_route_checks_role_and_scope() {
    let (_upstream, org) = Org::start().await;
    let (red, blue) = (org.red.clone(), org.blue.clone());
    let blue_key = org.fresh_key(json!({ "team_id": blue })).await;
    let mut cases = vec![
        Case {
            what: "list users",
            method: Method::GET,
            path: "users".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            // Team admins find one person by e-mail, to add them to their team.
            what: "find a user by e-mail",
            method: Method::GET,
            path: "users?email=OWNER%40acme.test".into(),
            body: None,
            expect: [200, 200, 403, 200, 200],
        },
        Case {
            // Those who do not read the organisation get their own records only.
            what: "read usage",
            method: Method::GET,
            path: "usage".into(),
            body: None,
            expect: [200, 200, 200, 200, 200],
        },
        Case {
            what: "read someone else's usage",
            method: Method::GET,
            path: format!("usage?user_id={}", org.id("owner")),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "read a team's report",
            method: Method::GET,
            path: format!("reports/usage?team={red}"),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "read one's own report",
            method: Method::GET,
            path: "reports/usage?by=model".into(),
            body: None,
            expect: [200, 200, 200, 200, 200],
        },
        Case {
            what: "read deployments",
            method: Method::GET,
            path: "deployments".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "read the settings",
            method: Method::GET,
            path: "settings".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "read the audit log",
            method: Method::GET,
            path: "audit".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "create a team",
            method: Method::POST,
            path: "teams".into(),
            body: None,
            expect: [201, 201, 403, 403, 403],
        },
        Case {
            what: "read red's data policy",
            method: Method::GET,
            path: format!("teams/{red}/policy"),
            body: None,
            expect: [200, 200, 200, 200, 200],
        },
        Case {
            what: "read blue's data policy",
            method: Method::GET,
            path: format!("teams/{blue}/policy"),
            body: None,
            expect: [200, 200, 404, 200, 404],
        },
        Case {
            // A team admin is bound by their team's policy, not its author.
            what: "set red's data policy",
            method: Method::PUT,
            path: format!("teams/{red}/policy"),
            body: Some(json!({ "secrets": "allow" })),
            expect: [200, 200, 403, 403, 403],
        },
        Case {
            // Content is for admins and owners; there is none here (no master key), so they
            // get a 404 where everyone else is refused first.
            what: "read a logged prompt",
            method: Method::GET,
            path: "usage/req_unknown/prompt".into(),
            body: None,
            expect: [404, 404, 403, 403, 403],
        },
        Case {
            what: "read the default data policy",
            method: Method::GET,
            path: "policy".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "read blue",
            method: Method::GET,
            path: format!("teams/{blue}"),
            body: None,
            expect: [200, 200, 404, 200, 404],
        },
        Case {
            what: "read red",
            method: Method::GET,
            path: format!("teams/{red}"),
            body: None,
            expect: [200, 200, 200, 200, 200],
        },
        Case {
            what: "make a red key",
            method: Method::POST,
            path: "keys".into(),
            body: Some(json!({ "name": "k", "team_id": red })),
            expect: [201, 201, 403, 403, 201],
        },
        Case {
            what: "make a blue key",
            method: Method::POST,
            path: "keys".into(),
            body: Some(json!({ "name": "k", "team_id": blue })),
            expect: [201, 201, 403, 403, 403],
        },
        Case {
            what: "read a blue key by id",
            method: Method::GET,
            path: format!("keys/{blue_key}"),
            body: None,
            // Those who read the organisation see every key; members only theirs and their teams'.
            expect: [200, 200, 404, 200, 404],
        },
        Case {
            what: "mint the owner an admin key",
            method: Method::POST,
            path: "keys".into(),
            body: Some(json!({ "name": "k", "user_id": org.id("owner"), "role": "admin" })),
            expect: [201, 403, 403, 403, 403],
        },
        Case {
            what: "make an owner",
            method: Method::POST,
            path: "users".into(),
            body: Some(json!({ "org_role": "owner" })),
            expect: [201, 403, 403, 403, 403],
        },
        Case {
            what: "make a member",
            method: Method::POST,
            path: "users".into(),
            body: Some(json!({ "org_role": "member" })),
            expect: [201, 201, 403, 403, 403],
        },
        Case {
            what: "invite a member",
            method: Method::POST,
            path: "invitations".into(),
            body: Some(json!({ "org_role": "member" })),
            expect: [201, 201, 403, 403, 403],
        },
        Case {
            what: "set the viewer's password",
            method: Method::PUT,
            path: format!("users/{}/password", org.id("viewer")),
            body: Some(json!({ "password": "a long enough password" })),
            // Their own for the viewer; out of sight for members.
            expect: [204, 204, 404, 204, 404],
        },
        Case {
            what: "list invitations",
            method: Method::GET,
            path: "invitations".into(),
            body: None,
            expect: [200, 200, 403, 200, 403],
        },
        Case {
            what: "demote the owner",
            method: Method::PATCH,
            path: format!("users/{}", org.id("owner")),
            body: Some(json!({ "org_role": "member" })),
            // Members cannot see other users at all; the viewer sees but may not change.
            expect: [403, 403, 404, 403, 404],
        },
    ];
    for label in ROLES {
        // Changing one's own role is refused for everyone (the owner already is one: a no-op
        // there, so the owner tries the other direction).
        let to = if label == "owner" { "admin" } else { "owner" };
        cases.push(Case {
            what: "change own role",
            method: Method::PATCH,
            path: format!("users/{}", org.id(label)),
            body: Some(json!({ "org_role": to })),
            expect: ROLES.map(|l| if l == label { 403 } else { 0 }),
        });
    }
    for case in &cases {
        for (i, label) in ROLES.iter().enumerate() {
            if case.expect[i] == 0 {
                continue;
            }
            let mut body = case.body.clone();
            if case.path == "teams" {
                body = Some(json!({ "name": format!("team-{}", uuid_like()) }));
            } else if (case.path == "users" || case.path == "invitations")
                && let Some(body) = body.as_mut()
            {
                body["email"] = json!(format!("{}@acme.test", uuid_like()));
            }
            let response = org.call(org.key(label), case.method.clone(), &case.path, body).await;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            assert_eq!(status, case.expect[i], "{label}: {} ({} {}): {text}", case.what, case.method, case.path);
            if status == 403 {
                assert!(text.contains("permission_denied"), "{label}: {}: {text}", case.what);
            }
        }
    }
}

#[tokio::test]
async fn team_admins_manage_their_team_and_nobody_else_touches_it() {
    let (_upstream, org) = Org::start().await;
    let (red, blue) = (org.red.clone(), org.blue.clone());
    for (label, team, expected) in
        [("lead", &red, 200), ("lead", &blue, 404), ("member", &red, 403), ("viewer", &red, 403), ("admin", &blue, 200)]
    {
        let user = org.fresh_user("member").await;
        let response = org
            .call(
                org.key(label),
                Method::PUT,
                &format!("teams/{team}/members/{user}"),
                Some(json!({ "role": "member" })),
            )
            .await;
        assert_eq!(response.status().as_u16(), expected, "{label} adding to {team}");
    }
    let own = format!("teams/{red}/members/{}", org.id("lead"));
    let response = org.call(org.key("lead"), Method::DELETE, &own, None).await;
    assert_eq!(response.status(), 403, "a team-admin does not change their own membership");

    let red_key = org.fresh_key(json!({ "team_id": red })).await;
    let blue_key = org.fresh_key(json!({ "team_id": blue })).await;
    let listed: Value = org.call(org.key("member"), Method::GET, "keys", None).await.json().await.expect("json");
    let ids: Vec<&str> = listed["data"].as_array().expect("data").iter().filter_map(|k| k["id"].as_str()).collect();
    assert!(ids.contains(&red_key.as_str()) && !ids.contains(&blue_key.as_str()), "{ids:?}");
    // A member's page is full of what they may see, however many keys others hold.
    let one: Value = org.call(org.key("member"), Method::GET, "keys?limit=1", None).await.json().await.expect("json");
    assert_eq!(one["data"][0]["id"], red_key.as_str(), "{one}");
    let blue_only = format!("keys?team_id={blue}");
    let hidden: Value = org.call(org.key("member"), Method::GET, &blue_only, None).await.json().await.expect("json");
    assert_eq!(hidden["data"].as_array().map(Vec::len), Some(0), "another team's keys, even by name: {hidden}");
    let seen: Value = org.call(org.key("viewer"), Method::GET, &blue_only, None).await.json().await.expect("json");
    assert_eq!(seen["data"][0]["id"], blue_key.as_str(), "a viewer sees every key: {seen}");
    assert_eq!(org.call(org.key("viewer"), Method::DELETE, &format!("keys/{blue_key}"), None).await.status(), 403);
    assert_eq!(org.call(org.key("member"), Method::DELETE, &format!("keys/{red_key}"), None).await.status(), 403);
    assert_eq!(org.call(org.key("lead"), Method::DELETE, &format!("keys/{blue_key}"), None).await.status(), 404);
    assert_eq!(org.call(org.key("lead"), Method::DELETE, &format!("keys/{red_key}"), None).await.status(), 200);
}

#[tokio::test]
async fn deactivating_a_user_revokes_their_keys_at_once() {
    let (_upstream, org) = Org::start().await;
    let user = org.fresh_user("member").await;
    let model_key = created(org.gateway.admin_post("keys", json!({ "name": "laptop", "user_id": user })).await).await;
    let model_key = model_key["key"].as_str().expect("secret").to_owned();
    assert_eq!(org.gateway.post("/v1/chat/completions", &model_key, &chat("m")).await.status(), 200);

    let patched: Value = org
        .call(org.key("admin"), Method::PATCH, &format!("users/{user}"), Some(json!({ "active": false })))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!((patched["active"].as_bool(), patched["revoked_keys"].as_u64()), (Some(false), Some(1)), "{patched}");
    let response = org.gateway.post("/v1/chat/completions", &model_key, &chat("m")).await;
    crate::support::assert_openai_error(response, 401, "key_revoked").await;

    // The admin's own admin key stops working the moment the admin is deactivated, too.
    let admin = org.id("admin").to_owned();
    let response =
        org.call(org.key("owner"), Method::PATCH, &format!("users/{admin}"), Some(json!({ "active": false }))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(org.call(org.key("admin"), Method::GET, "users", None).await.status(), 401);

    let response =
        org.call(org.key("owner"), Method::PATCH, &format!("users/{user}"), Some(json!({ "active": true }))).await;
    assert_eq!(response.status(), 200);
    let response = org.gateway.post("/v1/chat/completions", &model_key, &chat("m")).await;
    assert_eq!(response.status(), 401, "reactivation does not bring revoked keys back");
    let response = org
        .call(org.key("owner"), Method::PATCH, &format!("users/{}", org.id("owner")), Some(json!({ "active": false })))
        .await;
    assert_eq!(response.status(), 403, "nobody deactivates themselves");
}

#[tokio::test]
async fn client_and_revoked_keys_cannot_use_the_admin_api() {
    let (_upstream, org) = Org::start().await;
    let key =
        created(org.gateway.admin_post("keys", json!({ "name": "model only", "user_id": org.id("owner") })).await)
            .await;
    let response = org.call(key["key"].as_str().expect("secret"), Method::GET, "users", None).await;
    crate::support::assert_openai_error(response, 403, "admin_required").await;

    // A revoked admin key stops at once.
    let admin_key = created(
        org.gateway.admin_post("keys", json!({ "name": "spare", "user_id": org.id("admin"), "role": "admin" })).await,
    )
    .await;
    let secret = admin_key["key"].as_str().expect("secret");
    assert_eq!(org.call(secret, Method::GET, "users", None).await.status(), 200);
    let revoked = org
        .call(org.key("owner"), Method::DELETE, &format!("keys/{}", admin_key["id"].as_str().expect("id")), None)
        .await;
    assert_eq!(revoked.status(), 200);
    crate::support::assert_openai_error(org.call(secret, Method::GET, "users", None).await, 401, "key_revoked").await;
}

#[tokio::test]
async fn every_change_is_in_the_audit_log_with_who_what_and_before_after() {
    let (_upstream, org) = Org::start().await;
    let member = org.id("member").to_owned();
    let response = org
        .call(org.key("admin"), Method::PATCH, &format!("users/{member}"), Some(json!({ "org_role": "viewer" })))
        .await;
    assert_eq!(response.status(), 200);
    let page: Value =
        org.call(org.key("viewer"), Method::GET, "audit?action=user.update", None).await.json().await.expect("json");
    let record = &page["data"][0];
    assert_eq!(record["actor_user_id"], org.id("admin"));
    assert_eq!(record["target_id"], member.as_str());
    assert_eq!(
        (record["before"]["org_role"].as_str(), record["after"]["org_role"].as_str()),
        (Some("member"), Some("viewer"))
    );
    assert_eq!(record["source"], "127.0.0.1");

    let all: Value = org.gateway.admin_get("audit?limit=1000").await.json().await.expect("json");
    let actions: Vec<&str> =
        all["data"].as_array().expect("data").iter().filter_map(|r| r["action"].as_str()).collect();
    for expected in ["team.create", "user.create", "key.create", "membership.put", "user.update"] {
        assert!(actions.contains(&expected), "{expected} missing from {actions:?}");
    }
    let verified: Value = org.gateway.admin_get("audit/verify").await.json().await.expect("json");
    assert_eq!(verified["ok"], true, "{verified}");
    assert_eq!(verified["records"].as_u64(), Some(actions.len() as u64));
}

/// Strings that break a query built by concatenation (SQLite and PostgreSQL flavours).
const INJECTIONS: [&str; 7] = [
    "' OR '1'='1",
    "'; DROP TABLE keys; --",
    "\" OR \"\"=\"",
    "x'; SELECT pg_sleep(10); --",
    "%' OR 1=1 --",
    "\\'; DELETE FROM users; --",
    "red' UNION SELECT id, secret_hash FROM keys --",
];

#[tokio::test]
async fn no_field_of_the_admin_api_raises_anyones_role() {
    let (_upstream, org) = Org::start().await;
    let (member, admin, owner, lead) = (org.id("member"), org.id("admin"), org.id("owner"), org.id("lead"));
    let (red, blue) = (org.red.as_str(), org.blue.as_str());
    let attempts: Vec<(&str, Method, String, Value, u16)> = vec![
        ("member", Method::PATCH, format!("users/{member}"), json!({ "org_role": "admin" }), 403),
        ("member", Method::PATCH, format!("users/{member}"), json!({ "name": "Mallory", "org_role": "owner" }), 403),
        ("member", Method::PATCH, format!("users/{member}"), json!({ "is_admin": true }), 400),
        ("member", Method::PATCH, format!("users/{member}"), json!({ "org_role": "superuser" }), 400),
        ("admin", Method::PATCH, format!("users/{admin}"), json!({ "org_role": "owner" }), 403),
        ("admin", Method::PATCH, format!("users/{owner}"), json!({ "org_role": "member" }), 403),
        ("admin", Method::POST, "users".into(), json!({ "email": "boss@acme.test", "org_role": "owner" }), 403),
        ("member", Method::POST, "keys".into(), json!({ "name": "k", "user_id": member, "role": "admin" }), 403),
        ("member", Method::POST, "keys".into(), json!({ "name": "k", "user_id": owner }), 403),
        ("member", Method::POST, "keys".into(), json!({ "name": "k", "team_id": blue }), 403),
        ("member", Method::POST, "keys".into(), json!({ "name": "k", "admin": true }), 400),
        ("lead", Method::PUT, format!("teams/{red}/members/{lead}"), json!({ "role": "team-admin" }), 403),
        ("lead", Method::PUT, format!("teams/{red}/members/{member}"), json!({ "role": "owner" }), 400),
        ("member", Method::PUT, format!("teams/{red}/members/{member}"), json!({ "role": "team-admin" }), 403),
        ("member", Method::POST, "invitations".into(), json!({ "email": "x@acme.test", "org_role": "owner" }), 403),
        ("lead", Method::PUT, format!("teams/{red}/policy"), json!({ "secrets": "allow" }), 403),
    ];
    for (label, method, path, body, expected) in attempts {
        let response = org.call(org.key(label), method.clone(), &path, Some(body.clone())).await;
        assert_eq!(response.status().as_u16(), expected, "{label} {method} {path} {body}");
    }
    // Nothing changed: roles, names, memberships and keys are as they were.
    let paths: Vec<String> = [member, admin, owner].iter().map(|id| format!("users/{id}")).collect();
    let read = |i: usize| org.call(org.key("owner"), Method::GET, &paths[i], None);
    let member_now: Value = read(0).await.json().await.expect("json");
    assert_eq!(
        (member_now["org_role"].as_str(), member_now["name"].as_str()),
        (Some("member"), Some("member")),
        "{member_now}"
    );
    for (i, role) in [(1, "admin"), (2, "owner")] {
        assert_eq!(read(i).await.json::<Value>().await.expect("json")["org_role"], role);
    }
    let members: Value = org
        .call(org.key("owner"), Method::GET, &format!("teams/{red}/members"), None)
        .await
        .json()
        .await
        .expect("json");
    let roles: Vec<(&str, &str)> = members["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|m| Some((m["user_id"].as_str()?, m["role"].as_str()?)))
        .collect();
    assert!(roles.contains(&(member, "member")) && roles.contains(&(lead, "team-admin")), "{members}");
    let keys: Value = org
        .call(org.key("owner"), Method::GET, &format!("keys?user_id={member}"), None)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(keys["data"].as_array().map(Vec::len), Some(1), "only the fixture's key: {keys}");
}

#[tokio::test]
async fn sql_injection_strings_in_filters_and_names_are_only_data() {
    let (_upstream, org) = Org::start().await;
    let owner = org.key("owner");
    let keys_before: Value = org.call(owner, Method::GET, "keys?limit=1000", None).await.json().await.expect("json");
    let keys_before = keys_before["data"].as_array().map(Vec::len);
    for injection in INJECTIONS {
        let q: String = injection.bytes().map(|b| format!("%{b:02X}")).collect();
        for path in [
            format!("usage?key_id={q}"),
            format!("usage?user_id={q}"),
            format!("usage?model={q}"),
            format!("usage?deployment={q}"),
            format!("usage?id={q}"),
            format!("keys?user_id={q}"),
            format!("keys?team_id={q}"),
            format!("users?email={q}"),
            format!("audit?actor={q}"),
            format!("audit?action={q}"),
            format!("audit?target_type={q}&target_id={q}"),
            format!("reports/usage?by={q}"),
            format!("reports/usage?team={q}&model={q}&user={q}"),
            format!("users/{q}"),
            format!("teams/{q}/policy"),
            format!("keys/{q}"),
            format!("budgets/{q}"),
            // Cursors compare as text: rows may follow, but never more than a page, never a 5xx.
            format!("usage?before={q}"),
            format!("keys?before={q}"),
            format!("users?after={q}"),
            format!("teams?after={q}"),
        ] {
            let cursor = path.contains("before=") || path.contains("after=");
            for label in ["owner", "member"] {
                let response = org.call(org.key(label), Method::GET, &path, None).await;
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert!(status < 500, "{label} GET {path}: {status} {body}");
                if status == 200
                    && !cursor
                    && let Some(rows) = body["data"].as_array()
                {
                    assert!(rows.is_empty(), "{label} GET {path} matched rows: {body}");
                }
            }
        }
        // Names are data: stored and shown exactly as written.
        let team = org.gateway.admin_post("teams", json!({ "name": format!("team {injection}") })).await;
        let team = created(team).await;
        assert_eq!(team["name"], format!("team {injection}"));
        let key =
            created(org.gateway.admin_post("keys", json!({ "name": injection, "user_id": org.id("member") })).await)
                .await;
        assert_eq!(key["name"], injection);
    }
    // Every table is still there, with what it had.
    let keys_after: Value = org.call(owner, Method::GET, "keys?limit=1000", None).await.json().await.expect("json");
    assert_eq!(keys_after["data"].as_array().map(Vec::len), keys_before.map(|n| n + INJECTIONS.len()));
    let users: Value = org.call(owner, Method::GET, "users", None).await.json().await.expect("json");
    assert_eq!(users["data"].as_array().map(Vec::len), Some(5), "{users}");
    let verify: Value = org.call(owner, Method::GET, "audit/verify", None).await.json().await.expect("json");
    assert_eq!(verify["ok"], true, "the audit chain is intact: {verify}");
}
