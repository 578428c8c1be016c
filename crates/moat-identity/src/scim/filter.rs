//! The part of SCIM filtering (RFC 7644 §3.4.2.2) that identity providers use: `attr eq
//! "value"`, joined by `and`.

use moat_store::Match;

/// A filter moat cannot evaluate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// What a resource type can be filtered on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// `userName`, `emails.value`, `externalId`, `id`.
    User,
    /// `displayName`, `externalId`, `id`.
    Group,
}

/// The [`Match`] a filter asks for.
pub fn parse(filter: &str, resource: Resource) -> Result<Match, FilterError> {
    let mut matching = Match::default();
    let mut rest = filter.trim();
    loop {
        let (attribute, after) = rest.split_once(char::is_whitespace).ok_or_else(|| unsupported(filter))?;
        let after = after.trim_start();
        let (operator, after) = after.split_once(char::is_whitespace).ok_or_else(|| unsupported(filter))?;
        if !operator.eq_ignore_ascii_case("eq") {
            return Err(FilterError(format!("only the `eq` operator is supported, not `{operator}`")));
        }
        let (value, after) = quoted(after.trim_start()).ok_or_else(|| unsupported(filter))?;
        let slot = match (resource, attribute.to_ascii_lowercase().as_str()) {
            (Resource::User, "username" | "emails.value" | "emails[type eq \"work\"].value") => &mut matching.name,
            (Resource::Group, "displayname") => &mut matching.name,
            (_, "externalid") => &mut matching.external_id,
            (_, "id") => &mut matching.id,
            _ => return Err(FilterError(format!("filtering on `{attribute}` is not supported"))),
        };
        *slot = Some(value);
        let after = after.trim_start();
        if after.is_empty() {
            return Ok(matching);
        }
        let (joiner, next) = after.split_once(char::is_whitespace).ok_or_else(|| unsupported(filter))?;
        if !joiner.eq_ignore_ascii_case("and") {
            return Err(FilterError(format!("only `and` joins filters, not `{joiner}`")));
        }
        rest = next.trim_start();
    }
}

fn unsupported(filter: &str) -> FilterError {
    FilterError(format!("cannot read the filter `{filter}`: use `attribute eq \"value\"`"))
}

/// A JSON-style quoted string at the start of `text`, and what follows it.
fn quoted(text: &str) -> Option<(String, &str)> {
    let body = text.strip_prefix('"')?;
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &body[i + 1..])),
            '\\' => value.push(chars.next()?.1),
            other => value.push(other),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_okta_and_entra_send() {
        let m = parse(r#"userName eq "ana@acme.com""#, Resource::User).expect("okta");
        assert_eq!(m.name.as_deref(), Some("ana@acme.com"));
        let m = parse(r#"externalId eq "5c1e" and userName eq "a\"b""#, Resource::User).expect("entra");
        assert_eq!((m.external_id.as_deref(), m.name.as_deref()), (Some("5c1e"), Some("a\"b")));
        let m = parse(r#"displayName EQ "Platform Team""#, Resource::Group).expect("group");
        assert_eq!(m.name.as_deref(), Some("Platform Team"));
    }

    #[test]
    fn refuses_what_it_cannot_evaluate() {
        assert!(parse(r#"userName sw "ana""#, Resource::User).is_err());
        assert!(parse(r#"userName eq "ana" or userName eq "bo""#, Resource::User).is_err());
        assert!(parse(r#"title eq "x""#, Resource::User).is_err());
        assert!(parse(r#"displayName eq "x""#, Resource::User).is_err());
        assert!(parse(r#"userName eq "unterminated"#, Resource::User).is_err());
        assert!(parse("", Resource::User).is_err());
    }
}
