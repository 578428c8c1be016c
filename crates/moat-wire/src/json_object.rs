//! A request body as an ordered map of raw JSON members.
//!
//! A gateway must read a few fields and forward the rest exactly as the client wrote them.
//! [`JsonObject`] parses only the object's top level, keeps every member's value as borrowed
//! raw JSON text, deserialises single fields on demand, and writes the object back with chosen
//! members replaced.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Why a request body could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    /// The body is not JSON, or not a JSON object.
    #[error("the request body is not a valid JSON object: {0}")]
    InvalidJson(String),
    /// A field is missing or has the wrong type.
    #[error("{0}")]
    InvalidField(String),
}

/// The deepest nesting of arrays and objects a request body may have: serde_json's own
/// recursion limit. Members moat does not read are kept as raw text, which serde_json checks
/// for validity but not for depth; this bound keeps a hostile body from reaching upstreams
/// (and from costing moat a deep parse when it does read a member).
pub const MAX_JSON_DEPTH: usize = 128;

/// Whether `body` nests arrays and objects no deeper than `max`. Brackets inside strings do
/// not count; the body is not otherwise validated (the parse that follows does that). Strings
/// are skipped with `memchr`, so the pass costs little on bodies that are mostly text.
pub fn nesting_within(body: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(&byte) = body.get(i) {
        match byte {
            b'"' => {
                // To the closing quote: the next one not escaped, that is, not preceded by an
                // odd run of backslashes. Escapes (`\\n` on every line of pasted code) need no
                // stop of their own; each run is counted once, so the pass stays linear.
                i += 1;
                loop {
                    let Some(rest) = body.get(i..) else { return true };
                    let Some(offset) = memchr::memchr(b'"', rest) else { return true };
                    let at = i + offset;
                    let backslashes = body[i..at].iter().rev().take_while(|&&b| b == b'\\').count();
                    i = at + 1;
                    if backslashes % 2 == 0 {
                        break;
                    }
                }
                continue;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    true
}

/// The top-level members of a JSON object, values unparsed.
#[derive(Debug)]
pub struct JsonObject<'a> {
    members: IndexMap<String, &'a RawValue>,
}

impl<'a> JsonObject<'a> {
    /// Parses the top level of `body`, which must be a JSON object nested no deeper than
    /// [`MAX_JSON_DEPTH`].
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        if !nesting_within(body, MAX_JSON_DEPTH) {
            return Err(RequestError::InvalidJson(format!("it is nested deeper than {MAX_JSON_DEPTH} levels")));
        }
        let members = serde_json::from_slice(body).map_err(|e| RequestError::InvalidJson(e.to_string()))?;
        Ok(JsonObject { members })
    }

    /// The member `key` deserialised as `T`; `None` when absent. `expected` describes `T` in the
    /// error ("a string", "a boolean").
    pub fn field<T: Deserialize<'a>>(&self, key: &str, expected: &str) -> Result<Option<T>, RequestError> {
        match self.members.get(key) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<T>(raw.get())
                .map(Some)
                .map_err(|_| RequestError::InvalidField(format!("`{key}` must be {expected}"))),
        }
    }

    /// The string member `key`, which must be present.
    pub fn required_string(&self, key: &str) -> Result<String, RequestError> {
        self.field::<String>(key, "a string")?
            .ok_or_else(|| RequestError::InvalidField(format!("the `{key}` field is required")))
    }

    /// The member `key` fully parsed, for the rare paths that need its structure.
    pub fn value(&self, key: &str) -> Option<serde_json::Value> {
        self.members.get(key).and_then(|raw| serde_json::from_str(raw.get()).ok())
    }

    /// The object written back with the `replacements` (key, raw JSON value) applied in place,
    /// and appended at the end for keys it did not have; every other member byte for byte.
    pub fn rewrite(&self, replacements: &[(&str, String)]) -> Vec<u8> {
        let size: usize = self.members.values().map(|v| v.get().len() + 16).sum();
        let mut out = Vec::with_capacity(size + replacements.iter().map(|(_, v)| v.len() + 16).sum::<usize>());
        out.push(b'{');
        let mut first = true;
        let mut push = |key: &str, value: &str| {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(json_string(key).as_bytes());
            out.push(b':');
            out.extend_from_slice(value.as_bytes());
        };
        for (key, value) in &self.members {
            match replacements.iter().find(|(k, _)| k == key) {
                Some((_, replacement)) => push(key, replacement),
                None => push(key, value.get()),
            }
        }
        for (key, value) in replacements {
            if !self.members.contains_key(*key) {
                push(key, value);
            }
        }
        out.push(b'}');
        out
    }

    /// The stop list under `key` (a string, an array of strings, or absent) with `extra`
    /// appended, as raw JSON; `None` when there is nothing to add.
    pub fn stop_with(&self, key: &str, extra: &[String]) -> Option<String> {
        if extra.is_empty() {
            return None;
        }
        Some(serde_json::Value::from(merge_stop(self.value(key).as_ref(), extra)).to_string())
    }

    /// The text under `fields`, concatenated: what a tokenizer counts when the upstream reports
    /// no usage.
    pub fn text_of(&self, fields: &[&str]) -> String {
        let mut text = String::new();
        for field in fields {
            if let Some(value) = self.value(field) {
                collect_text(&value, &mut text);
            }
        }
        text
    }
}

/// A stop list (`"x"`, `["x", "y"]`, or nothing) with `extra` appended, without duplicates.
pub fn merge_stop(existing: Option<&serde_json::Value>, extra: &[String]) -> Vec<String> {
    let mut stops: Vec<String> = match existing {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    };
    for stop in extra {
        if !stops.contains(stop) {
            stops.push(stop.clone());
        }
    }
    stops
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// Appends every string found under text-bearing keys, or bare strings in arrays.
fn collect_text(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::String(s) => {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(s);
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_text(v, out)),
        serde_json::Value::Object(map) => {
            for key in
                ["content", "text", "thinking", "arguments", "name", "description", "input", "tool_calls", "function"]
            {
                if let Some(v) = map.get(key) {
                    if key == "input" && v.is_object() {
                        // A tool_use block's input: count its JSON text.
                        collect_text(&serde_json::Value::String(v.to_string()), out);
                    } else {
                        collect_text(v, out);
                    }
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn nesting_is_measured_outside_strings_only() {
        let nested = |depth: usize| format!("{{\"a\": {}1{}}}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        assert!(nesting_within(nested(128).as_bytes(), 128));
        assert!(!nesting_within(nested(129).as_bytes(), 128));
        let brackets_in_text = format!("{{\"content\": \"{}\\\" {}\"}}", "[{".repeat(500), "]]".repeat(9));
        assert!(nesting_within(brackets_in_text.as_bytes(), 2), "{brackets_in_text}");
        // Unterminated strings and escapes at the very end are left to the parser.
        for truncated in [&b"{\"a\": \"abc"[..], b"{\"a\": \"abc\\", b"[[[", b""] {
            assert!(nesting_within(truncated, 128));
        }
        let deep = format!("{{\"model\": \"m\", \"metadata\": {}1{}}}", "{\"a\":".repeat(5000), "}".repeat(5000));
        let error = JsonObject::parse(deep.as_bytes()).expect_err("refused");
        assert!(matches!(error, RequestError::InvalidJson(ref m) if m.contains("128 levels")), "{error:?}");
    }

    proptest::proptest! {
        #[test]
        fn the_depth_check_agrees_with_a_full_parse(depth in 1usize..300, text in "[\\[\\]{}\"\\\\a ]{0,20}") {
            let value = (0..depth).fold(serde_json::Value::String(text), |inner, _| serde_json::json!([inner]));
            let body = serde_json::to_vec(&value).expect("json");
            proptest::prop_assert_eq!(nesting_within(&body, 128), depth <= 128);
        }
    }

    #[test]
    fn rewrites_in_place_and_appends_new_members() {
        let object = JsonObject::parse(br#"{"a":1, "model" : "x","b":{"k":[1, 2]}}"#).expect("object");
        let out = object.rewrite(&[("model", json_string("y")), ("added", "true".into())]);
        expect![[r#"{"a":1,"model":"y","b":{"k":[1, 2]},"added":true}"#]].assert_eq(&String::from_utf8_lossy(&out));
    }

    #[test]
    fn typed_fields_report_what_they_expected() {
        let object = JsonObject::parse(br#"{"model":3,"stream":true}"#).expect("object");
        assert_eq!(object.field::<bool>("stream", "a boolean"), Ok(Some(true)));
        assert_eq!(object.field::<bool>("missing", "a boolean"), Ok(None));
        assert_eq!(object.required_string("model"), Err(RequestError::InvalidField("`model` must be a string".into())));
        assert_eq!(
            object.required_string("nope"),
            Err(RequestError::InvalidField("the `nope` field is required".into()))
        );
        assert!(matches!(JsonObject::parse(b"[1]"), Err(RequestError::InvalidJson(_))));
    }
}
