//! SCIM PATCH (RFC 7644 §3.5.2) as Okta and Entra ID send it: operation names in any case,
//! with or without a `path`, booleans as JSON or as `"True"`/`"False"` strings. Attributes moat
//! does not keep (titles, phone numbers, enterprise extensions) are accepted and ignored, so a
//! provider's full profile never fails a provisioning run.

use serde_json::Value;

/// A PATCH body moat cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// The user attributes moat keeps, as SCIM sets them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDraft {
    /// `userName` (moat's e-mail).
    pub user_name: String,
    /// `displayName`.
    pub display_name: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
    /// `name.formatted`.
    pub formatted_name: Option<String>,
    /// `externalId`.
    pub external_id: Option<String>,
    /// `active`.
    pub active: bool,
}

impl UserDraft {
    /// A draft from a full SCIM User resource (POST and PUT bodies).
    pub fn from_resource(resource: &Value) -> Result<Self, PatchError> {
        let mut draft = UserDraft {
            user_name: String::new(),
            display_name: None,
            given_name: None,
            family_name: None,
            formatted_name: None,
            external_id: None,
            active: true,
        };
        let Some(object) = resource.as_object() else {
            return Err(PatchError("the body must be a SCIM User object".into()));
        };
        for (attribute, value) in object {
            draft.set(attribute, value)?;
        }
        if draft.user_name.trim().is_empty() {
            return Err(PatchError("`userName` is required".into()));
        }
        Ok(draft)
    }

    /// The name to show: `displayName`, `name.formatted`, given and family names, or the
    /// `userName`.
    pub fn display(&self) -> String {
        let joined = [self.given_name.as_deref(), self.family_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        self.display_name
            .clone()
            .or_else(|| self.formatted_name.clone())
            .filter(|n| !n.trim().is_empty())
            .or_else(|| Some(joined).filter(|j| !j.is_empty()))
            .unwrap_or_else(|| self.user_name.clone())
    }

    /// Applies a PATCH body's `Operations`.
    pub fn apply(&mut self, body: &Value) -> Result<(), PatchError> {
        for op in operations(body)? {
            let kind = op_kind(op)?;
            let value = op.get("value").unwrap_or(&Value::Null);
            match (kind, op.get("path").and_then(Value::as_str)) {
                (Op::Remove, Some(path)) => self.clear(path)?,
                (Op::Remove, None) => return Err(PatchError("`remove` needs a `path`".into())),
                (_, Some(path)) => self.set(path, value)?,
                (_, None) => {
                    let object = value
                        .as_object()
                        .ok_or_else(|| PatchError("a path-less operation needs an object value".into()))?;
                    for (attribute, value) in object {
                        self.set(attribute, value)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn set(&mut self, attribute: &str, value: &Value) -> Result<(), PatchError> {
        let text = || value.as_str().map(str::to_owned);
        match attribute.to_ascii_lowercase().as_str() {
            "username" => self.user_name = text().ok_or_else(|| PatchError("`userName` must be a string".into()))?,
            "displayname" => self.display_name = text(),
            "externalid" => self.external_id = text(),
            "active" => self.active = boolean(value)?,
            "name.givenname" => self.given_name = text(),
            "name.familyname" => self.family_name = text(),
            "name.formatted" => self.formatted_name = text(),
            "name" => {
                for (part, value) in value.as_object().into_iter().flatten() {
                    self.set(&format!("name.{part}"), value)?;
                }
            }
            // Everything else a provider sends (emails, titles, phone numbers, extensions) is
            // not kept: moat's e-mail is the userName.
            _ => {}
        }
        Ok(())
    }

    fn clear(&mut self, attribute: &str) -> Result<(), PatchError> {
        match attribute.to_ascii_lowercase().as_str() {
            "username" | "active" => Err(PatchError(format!("`{attribute}` cannot be removed"))),
            "displayname" => {
                self.display_name = None;
                Ok(())
            }
            "externalid" => {
                self.external_id = None;
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// One change to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupChange {
    /// New `displayName`.
    Rename(String),
    /// New `externalId`.
    ExternalId(Option<String>),
    /// Members to add (user ids).
    AddMembers(Vec<String>),
    /// Members to remove.
    RemoveMembers(Vec<String>),
    /// The whole member list.
    ReplaceMembers(Vec<String>),
}

/// The changes a group PATCH body asks for, in order.
pub fn group_changes(body: &Value) -> Result<Vec<GroupChange>, PatchError> {
    let mut changes = Vec::new();
    for op in operations(body)? {
        let kind = op_kind(op)?;
        let value = op.get("value").unwrap_or(&Value::Null);
        let path = op.get("path").and_then(Value::as_str);
        match (kind, path.map(str::to_ascii_lowercase).as_deref()) {
            (Op::Add, Some("members")) => changes.push(GroupChange::AddMembers(member_ids(value))),
            (Op::Replace, Some("members")) => changes.push(GroupChange::ReplaceMembers(member_ids(value))),
            (Op::Remove, Some("members")) if value.is_null() => changes.push(GroupChange::ReplaceMembers(Vec::new())),
            (Op::Remove, Some("members")) => changes.push(GroupChange::RemoveMembers(member_ids(value))),
            (Op::Remove, Some(filtered)) if filtered.starts_with("members[") => {
                let id = path
                    .and_then(member_in_path)
                    .ok_or_else(|| PatchError(format!("cannot read the path `{filtered}`")))?;
                changes.push(GroupChange::RemoveMembers(vec![id]));
            }
            (Op::Add | Op::Replace, Some("displayname")) => {
                let name = value.as_str().ok_or_else(|| PatchError("`displayName` must be a string".into()))?;
                changes.push(GroupChange::Rename(name.to_owned()));
            }
            (Op::Add | Op::Replace, Some("externalid")) => {
                changes.push(GroupChange::ExternalId(value.as_str().map(str::to_owned)));
            }
            (Op::Add | Op::Replace, None) => {
                let object = value
                    .as_object()
                    .ok_or_else(|| PatchError("a path-less operation needs an object value".into()))?;
                for (attribute, value) in object {
                    match attribute.to_ascii_lowercase().as_str() {
                        "displayname" => changes.extend(value.as_str().map(|n| GroupChange::Rename(n.to_owned()))),
                        "externalid" => changes.push(GroupChange::ExternalId(value.as_str().map(str::to_owned))),
                        "members" if kind == Op::Add => changes.push(GroupChange::AddMembers(member_ids(value))),
                        "members" => changes.push(GroupChange::ReplaceMembers(member_ids(value))),
                        _ => {}
                    }
                }
            }
            (_, Some(other)) => return Err(PatchError(format!("cannot change `{other}` on a group"))),
            (Op::Remove, None) => return Err(PatchError("`remove` needs a `path`".into())),
        }
    }
    Ok(changes)
}

/// The user ids in a `members` value: `[{"value": "usr_…"}]`.
pub fn member_ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.get("value").and_then(Value::as_str))
        .map(str::to_owned)
        .collect()
}

/// The id in `members[value eq "usr_…"]`.
fn member_in_path(path: &str) -> Option<String> {
    let inner = path.split_once('[')?.1.strip_suffix(']')?;
    let matching = super::filter::parse(&inner.replacen("value", "id", 1), super::filter::Resource::Group).ok()?;
    matching.id
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

fn operations(body: &Value) -> Result<&Vec<Value>, PatchError> {
    body.get("Operations")
        .or_else(|| body.get("operations"))
        .and_then(Value::as_array)
        .ok_or_else(|| PatchError("a PATCH body needs an `Operations` array".into()))
}

fn op_kind(op: &Value) -> Result<Op, PatchError> {
    match op.get("op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Ok(Op::Add),
        Some("replace") => Ok(Op::Replace),
        Some("remove") => Ok(Op::Remove),
        other => Err(PatchError(format!("unknown operation {other:?}"))),
    }
}

fn boolean(value: &Value) -> Result<bool, PatchError> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(PatchError(format!("`active` must be true or false, not {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn draft() -> UserDraft {
        UserDraft::from_resource(&json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": "ana@acme.com",
            "name": { "givenName": "Ana", "familyName": "Lima" },
            "emails": [{ "primary": true, "value": "ana@acme.com", "type": "work" }],
            "title": "Engineer",
            "active": true,
        }))
        .expect("a valid user")
    }

    #[test]
    fn okta_deactivates_with_a_path_less_replace() {
        let mut user = draft();
        assert_eq!(user.display(), "Ana Lima");
        user.apply(&json!({ "Operations": [{ "op": "replace", "value": { "active": false } }] })).expect("applies");
        assert!(!user.active);
    }

    #[test]
    fn entra_sends_capitalised_ops_paths_and_string_booleans() {
        let mut user = draft();
        let body = json!({ "Operations": [
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Replace", "path": "displayName", "value": "Ana L." },
            { "op": "Add", "path": "externalId", "value": "7f1c" },
            { "op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "R&D" },
        ]});
        user.apply(&body).expect("applies");
        assert_eq!(
            (user.active, user.display().as_str(), user.external_id.as_deref()),
            (false, "Ana L.", Some("7f1c"))
        );
        assert!(
            user.apply(&json!({ "Operations": [{ "op": "Replace", "path": "active", "value": "maybe" }] })).is_err()
        );
        assert!(user.apply(&json!({ "Operations": [{ "op": "move" }] })).is_err());
    }

    #[test]
    fn group_membership_changes_in_both_providers_shapes() {
        let okta = json!({ "Operations": [
            { "op": "add", "path": "members", "value": [{ "value": "usr_1", "display": "ana" }] },
            { "op": "remove", "path": "members[value eq \"usr_2\"]" },
            { "op": "replace", "value": { "id": "team_1", "displayName": "Platform" } },
        ]});
        assert_eq!(
            group_changes(&okta).expect("okta"),
            [
                GroupChange::AddMembers(vec!["usr_1".into()]),
                GroupChange::RemoveMembers(vec!["usr_2".into()]),
                GroupChange::Rename("Platform".into()),
            ]
        );
        let entra = json!({ "Operations": [
            { "op": "Remove", "path": "members", "value": [{ "value": "usr_3" }] },
            { "op": "Replace", "path": "displayName", "value": "Infra" },
        ]});
        assert_eq!(
            group_changes(&entra).expect("entra"),
            [GroupChange::RemoveMembers(vec!["usr_3".into()]), GroupChange::Rename("Infra".into()),]
        );
        assert!(group_changes(&json!({ "Operations": [{ "op": "add", "path": "owner", "value": "x" }] })).is_err());
    }
}
