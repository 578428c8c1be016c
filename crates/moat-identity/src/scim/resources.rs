//! moat's users and teams as SCIM resources.

use moat_store::{TeamRecord, UserRecord};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

fn instant(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// A SCIM User; `groups` are the teams the user belongs to.
pub(super) fn user_json(user: &UserRecord, groups: &[TeamRecord]) -> Value {
    let mut value = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": user.id,
        "userName": user.email,
        "displayName": user.name,
        "name": { "formatted": user.name },
        "emails": [{ "value": user.email, "type": "work", "primary": true }],
        "active": user.active,
        "groups": groups.iter().map(|t| json!({ "value": t.id, "display": t.name, "$ref": format!("/scim/v2/Groups/{}", t.id) })).collect::<Vec<_>>(),
        "meta": {
            "resourceType": "User",
            "created": instant(user.created_at_ms),
            "lastModified": instant(user.deactivated_at_ms.unwrap_or(user.created_at_ms)),
            "location": format!("/scim/v2/Users/{}", user.id),
        },
    });
    if let Some(external) = &user.external_id {
        value["externalId"] = json!(external);
    }
    value
}

/// A SCIM Group; `members` is left out when not asked for.
pub(super) fn group_json(team: &TeamRecord, members: Option<&[UserRecord]>) -> Value {
    let mut value = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
        "id": team.id,
        "displayName": team.name,
        "meta": {
            "resourceType": "Group",
            "created": instant(team.created_at_ms),
            "lastModified": instant(team.created_at_ms),
            "location": format!("/scim/v2/Groups/{}", team.id),
        },
    });
    if let Some(external) = &team.external_id {
        value["externalId"] = json!(external);
    }
    if let Some(members) = members {
        value["members"] = members
            .iter()
            .map(|u| json!({ "value": u.id, "display": u.email, "$ref": format!("/scim/v2/Users/{}", u.id) }))
            .collect();
    }
    value
}

/// A ListResponse page: `total` matches in all, this page starting after `offset` of them.
pub(super) fn list_json(resources: &[Value], total: u64, offset: u32) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": offset + 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}
