//! SCIM 2.0 as Okta and Entra ID drive it: the request sequences each sends when a person is
//! assigned, updated, unassigned, and when group memberships change.

use moat_testkit::FakeUpstream;
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{SCIM_TOKEN, TestGateway, chat};

struct Idp {
    gateway: TestGateway,
}

impl Idp {
    async fn start() -> (FakeUpstream, Idp) {
        let upstream = FakeUpstream::start().await;
        let config =
            crate::support::default_config(&upstream) + "\n[scim]\ntoken = { env = \"MOAT_TEST_SCIM_TOKEN\" }\n";
        (upstream, Idp { gateway: TestGateway::start_with(&config).await })
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .gateway
            .http
            .request(method, format!("{}/scim/v2/{path}", self.gateway.url))
            .bearer_auth(SCIM_TOKEN)
            .header("accept", "application/scim+json");
        if let Some(body) = body {
            request = request.header("content-type", "application/scim+json").body(body.to_string());
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[tokio::test]
async fn okta_provisions_updates_and_deactivates_a_user() {
    let (_upstream, idp) = Idp::start().await;
    let (status, list) =
        idp.send(Method::GET, "Users?filter=userName%20eq%20%22ana%40acme.com%22&startIndex=1&count=100", None).await;
    assert_eq!((status, list["totalResults"].as_u64()), (200, Some(0)));

    let (status, user) = idp
        .send(
            Method::POST,
            "Users",
            Some(json!({
                "schemas": [USER],
                "userName": "ana@acme.com",
                "name": { "givenName": "Ana", "familyName": "Lima" },
                "emails": [{ "primary": true, "value": "ana@acme.com", "type": "work" }],
                "displayName": "Ana Lima",
                "locale": "en-US",
                "externalId": "00u1okta",
                "groups": [],
                "active": true,
            })),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    assert_eq!((user["userName"].as_str(), user["active"].as_bool()), (Some("ana@acme.com"), Some(true)));

    let (status, again) =
        idp.send(Method::POST, "Users", Some(json!({ "schemas": [USER], "userName": "ANA@acme.com" }))).await;
    assert_eq!((status, again["scimType"].as_str()), (409, Some("uniqueness")));

    let (_, found) = idp.send(Method::GET, "Users?filter=userName%20eq%20%22ana%40acme.com%22", None).await;
    assert_eq!(found["Resources"][0]["id"], id.as_str());

    // Okta updates profiles with PUT, the whole resource.
    let (status, updated) = idp
        .send(
            Method::PUT,
            &format!("Users/{id}"),
            Some(json!({
                "schemas": [USER], "id": id, "userName": "ana@acme.com",
                "name": { "givenName": "Ana", "familyName": "Lima-Souza" }, "active": true,
            })),
        )
        .await;
    assert_eq!((status, updated["displayName"].as_str()), (200, Some("Ana Lima-Souza")));

    // The person gets a key; unassigning them in Okta deactivates them and kills it at once.
    let key = idp.gateway.create_key(json!({ "name": "laptop", "user_id": id })).await.1;
    assert_eq!(idp.gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    let (status, deactivated) = idp
        .send(
            Method::PATCH,
            &format!("Users/{id}"),
            Some(json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "value": { "active": false } }] })),
        )
        .await;
    assert_eq!((status, deactivated["active"].as_bool()), (200, Some(false)));
    let response = idp.gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    crate::support::assert_openai_error(response, 401, "key_revoked").await;

    let audit: Value = idp.gateway.admin_get("audit?action=user.").await.json().await.expect("json");
    let actions: Vec<(&str, &str)> = audit["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| (r["action"].as_str().unwrap_or(""), r["actor_key_id"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(actions, [("user.deactivate", "scim"), ("user.update", "scim"), ("user.create", "scim")]);
}

#[tokio::test]
async fn entra_provisions_with_its_own_shapes_and_deletes() {
    let (_upstream, idp) = Idp::start().await;
    let (_, none) = idp.send(Method::GET, "Users?filter=userName+eq+%22bo%40acme.com%22", None).await;
    assert_eq!(none["totalResults"], 0);
    let (status, user) = idp
        .send(
            Method::POST,
            "Users",
            Some(json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "6f1d-entra",
                "userName": "bo@acme.com",
                "active": true,
                "displayName": "Bo Chen",
                "emails": [{ "primary": true, "type": "work", "value": "bo@acme.com" }],
                "meta": { "resourceType": "User" },
                "name": { "formatted": "Bo Chen", "familyName": "Chen", "givenName": "Bo" },
                "roles": [],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": { "department": "R&D" },
            })),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let id = user["id"].as_str().expect("id").to_owned();
    let (_, by_external) = idp.send(Method::GET, "Users?filter=externalId+eq+%226f1d-entra%22", None).await;
    assert_eq!(by_external["Resources"][0]["id"], id.as_str());

    let (status, patched) = idp
        .send(
            Method::PATCH,
            &format!("Users/{id}"),
            Some(json!({ "schemas": [PATCH], "Operations": [
                { "op": "Replace", "path": "displayName", "value": "Bo C." },
                { "op": "Replace", "path": "active", "value": "False" },
            ]})),
        )
        .await;
    assert_eq!(
        (status, patched["active"].as_bool(), patched["displayName"].as_str()),
        (200, Some(false), Some("Bo C."))
    );
    let (status, _) = idp
        .send(
            Method::PATCH,
            &format!("Users/{id}"),
            Some(json!({ "Operations": [{ "op": "Replace", "path": "active", "value": "True" }] })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = idp.send(Method::DELETE, &format!("Users/{id}"), None).await;
    assert_eq!(status, 204);
    let (_, gone) = idp.send(Method::GET, &format!("Users/{id}"), None).await;
    assert_eq!(gone["active"], false, "deleting deprovisions: the user is deactivated, their record kept");
    let (status, missing) = idp.send(Method::GET, "Users/usr_nobody", None).await;
    assert_eq!((status, missing["status"].as_str()), (404, Some("404")));
}

#[tokio::test]
async fn groups_become_teams_and_memberships_follow_the_idp() {
    let (_upstream, idp) = Idp::start().await;
    let mut ids = Vec::new();
    for name in ["ana", "bo", "cy"] {
        let (_, user) = idp
            .send(Method::POST, "Users", Some(json!({ "schemas": [USER], "userName": format!("{name}@acme.com") })))
            .await;
        ids.push(user["id"].as_str().expect("id").to_owned());
    }
    let (_, none) =
        idp.send(Method::GET, "Groups?filter=displayName+eq+%22Platform%22&excludedAttributes=members", None).await;
    assert_eq!(none["totalResults"], 0);
    let (status, group) = idp
        .send(Method::POST, "Groups", Some(json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Platform", "externalId": "grp-1",
            "members": [{ "value": ids[0] }],
        })))
        .await;
    assert_eq!(status, 201, "{group}");
    let team = group["id"].as_str().expect("id").to_owned();

    // Okta's shapes: add with a value list, remove by a path filter, rename without a path.
    let okta = json!({ "schemas": [PATCH], "Operations": [
        { "op": "add", "path": "members", "value": [{ "value": ids[1], "display": "bo@acme.com" }, { "value": ids[2] }] },
        { "op": "remove", "path": format!("members[value eq \"{}\"]", ids[0]) },
        { "op": "replace", "value": { "id": team, "displayName": "Platform Eng" } },
    ]});
    let (status, patched) = idp.send(Method::PATCH, &format!("Groups/{team}"), Some(okta)).await;
    assert_eq!(status, 200, "{patched}");
    let members: Vec<&str> =
        patched["members"].as_array().expect("members").iter().filter_map(|m| m["value"].as_str()).collect();
    assert_eq!((patched["displayName"].as_str(), members.len()), (Some("Platform Eng"), 2));
    assert!(!members.contains(&ids[0].as_str()));

    // Entra's: capitalised ops, remove with a value list.
    let entra = json!({ "schemas": [PATCH], "Operations": [{ "op": "Remove", "path": "members", "value": [{ "value": ids[1] }] }] });
    let (_, patched) = idp.send(Method::PATCH, &format!("Groups/{team}"), Some(entra)).await;
    assert_eq!(patched["members"].as_array().map(Vec::len), Some(1));

    // The team is moat's: its admins see it, and a team-admin role set in moat survives.
    let page: Value = idp.gateway.admin_get(&format!("teams/{team}")).await.json().await.expect("json");
    assert_eq!(page["members"][0]["user_id"], ids[2].as_str());
    let (_, user) = idp.send(Method::GET, &format!("Users/{}", ids[2]), None).await;
    assert_eq!(user["groups"][0]["value"], team.as_str());

    // A whole-resource PUT and a `replace` of `members` both make the list the whole membership.
    let sorted = |group: &Value| {
        let mut values: Vec<String> = group["members"]
            .as_array()
            .expect("members")
            .iter()
            .filter_map(|m| m["value"].as_str().map(str::to_owned))
            .collect();
        values.sort();
        values
    };
    let put = json!({ "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Platform Eng",
        "members": [{ "value": ids[0] }, { "value": ids[1] }] });
    let (status, replaced) = idp.send(Method::PUT, &format!("Groups/{team}"), Some(put)).await;
    assert_eq!(status, 200, "{replaced}");
    let mut want = vec![ids[0].clone(), ids[1].clone()];
    want.sort();
    assert_eq!(sorted(&replaced), want);
    let swap = json!({ "schemas": [PATCH], "Operations": [{ "op": "replace", "path": "members", "value": [{ "value": ids[2] }] }] });
    let (status, replaced) = idp.send(Method::PATCH, &format!("Groups/{team}"), Some(swap)).await;
    assert_eq!((status, sorted(&replaced)), (200, vec![ids[2].clone()]));

    let (status, _) = idp.send(Method::DELETE, &format!("Groups/{team}"), None).await;
    assert_eq!(status, 204);
    let (status, _) = idp.send(Method::GET, &format!("Groups/{team}"), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn scim_needs_its_token_and_reads_only_what_it_understands() {
    let (_upstream, idp) = Idp::start().await;
    let response = idp
        .gateway
        .http
        .get(format!("{}/scim/v2/Users", idp.gateway.url))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/scim+json"));
    let response = idp
        .gateway
        .http
        .get(format!("{}/scim/v2/Users", idp.gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401, "an admin key is not a SCIM token");
    let (status, error) = idp.send(Method::GET, "Users?filter=title+sw+%22x%22", None).await;
    assert_eq!((status, error["scimType"].as_str()), (400, Some("invalidFilter")));
    let (status, error) = idp.send(Method::POST, "Users", Some(json!({ "schemas": [USER] }))).await;
    assert_eq!((status, error["scimType"].as_str()), (400, Some("invalidValue")));
    let (status, config) = idp.send(Method::GET, "ServiceProviderConfig", None).await;
    assert_eq!((status, config["patch"]["supported"].as_bool()), (200, Some(true)));

    // Without a configured token there is no SCIM at all.
    let upstream = FakeUpstream::start().await;
    let plain = TestGateway::start(&upstream).await;
    let response =
        plain.http.get(format!("{}/scim/v2/Users", plain.url)).bearer_auth(SCIM_TOKEN).send().await.expect("send");
    assert_eq!(response.status(), 404);
}
