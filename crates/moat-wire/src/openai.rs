//! OpenAI-dialect bodies: the few fields the gateway reads, and the one rewrite it makes.
//!
//! Same-dialect requests are forwarded as the client wrote them: every top-level member is kept
//! as raw JSON text, in order, and only `model` (the upstream's name) and, for streams,
//! `stream_options.include_usage` (so usage is always metered) are replaced.

use moat_core::Usage;
use serde::Deserialize;

pub use crate::json_object::RequestError;
use crate::json_object::{JsonObject, json_string};
pub use crate::response_view::ResponseView;

/// A parsed OpenAI request body that borrows every member it does not need to understand.
#[derive(Debug)]
pub struct OpenAiRequest<'a> {
    object: JsonObject<'a>,
    /// The public model name the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// Whether the client itself asked for the usage chunk at the end of a stream.
    pub client_wants_stream_usage: bool,
}

#[derive(Deserialize, Default)]
struct StreamOptions {
    #[serde(default)]
    include_usage: Option<bool>,
}

impl<'a> OpenAiRequest<'a> {
    /// Parses `body`, checking only the fields the gateway relies on.
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let object = JsonObject::parse(body)?;
        let model = object.required_string("model")?;
        let stream = object.field::<Option<bool>>("stream", "a boolean")?.flatten().unwrap_or(false);
        let client_wants_stream_usage = object
            .field::<Option<StreamOptions>>("stream_options", "an object")?
            .flatten()
            .unwrap_or_default()
            .include_usage
            .unwrap_or(false);
        Ok(OpenAiRequest { object, model, stream, client_wants_stream_usage })
    }

    /// The most output tokens the request allows (`max_completion_tokens`, `max_tokens`, or the
    /// Responses API's `max_output_tokens`), if it sets one: what admission reserves for.
    pub fn max_output_tokens(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .into_iter()
            .find_map(|name| self.object.field::<Option<u64>>(name, "an integer").ok().flatten().flatten())
    }

    /// The body to send upstream: `model` replaced by `upstream_model`, and on streams
    /// `stream_options.include_usage` forced on, every other member byte for byte as received.
    /// `extra_stop` (a deployment's own stop sequences) is appended to `stop`.
    pub fn to_upstream_body(&self, upstream_model: &str, extra_stop: &[String]) -> Vec<u8> {
        let mut replacements = vec![("model", json_string(upstream_model))];
        if let Some(stop) = self.object.stop_with("stop", extra_stop) {
            replacements.push(("stop", stop));
        }
        if self.stream {
            let mut options = match self.object.value("stream_options") {
                Some(serde_json::Value::Object(options)) => options,
                _ => serde_json::Map::new(),
            };
            options.insert("include_usage".into(), serde_json::Value::Bool(true));
            replacements.push(("stream_options", serde_json::Value::Object(options).to_string()));
        }
        self.object.rewrite(&replacements)
    }

    /// The body with only `model` replaced: for APIs (the Responses API) that take no
    /// `stream_options` and no `stop`.
    pub fn with_model(&self, upstream_model: &str) -> Vec<u8> {
        self.object.rewrite(&[("model", json_string(upstream_model))])
    }

    /// The prompt text, concatenated, for counting or estimating input tokens when the upstream
    /// reports none. Reads chat `messages`, completion `prompt` and embedding `input`.
    pub fn prompt_text(&self) -> String {
        self.object.text_of(&["instructions", "messages", "prompt", "input"])
    }
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl From<UsageJson> for Usage {
    fn from(u: UsageJson) -> Self {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached: u.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: 0,
            reasoning: u.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

/// What the gateway needs from a response body or stream chunk.
#[derive(Deserialize)]
struct BodyView {
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    choices: Option<Vec<ChoiceView>>,
}

/// A text field that some servers fill with something else (content-part arrays, argument
/// objects): anything that is not a string reads as no text, rather than failing the whole
/// chunk and losing the usage beside it.
///
/// Read with its own visitor rather than as an untagged enum, which buffers every value into
/// an intermediate tree first: that was most of the cost of reading a stream chunk.
#[derive(Default)]
struct Text(Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> serde::de::Visitor<'de> for TextVisitor {
    type Value = Text;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Text, E> {
        Ok(Text(Some(text.to_owned())))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Text, E> {
        Ok(Text(Some(text)))
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<Text, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(Text(None))
    }
}

impl Text {
    fn into_option(self) -> Option<String> {
        self.0
    }
}

#[derive(Deserialize)]
struct ChoiceView {
    #[serde(default)]
    text: Text,
    #[serde(default)]
    message: Option<MessageView>,
    #[serde(default)]
    delta: Option<MessageView>,
}

/// The generated parts of a message or delta, typed so that a stream chunk is read without
/// building a JSON tree (this runs on every chunk of every stream).
#[derive(Deserialize)]
struct MessageView {
    #[serde(default)]
    content: Text,
    #[serde(default)]
    reasoning_content: Text,
    #[serde(default)]
    reasoning: Text,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallView>>,
}

#[derive(Deserialize)]
struct ToolCallView {
    #[serde(default)]
    function: Option<FunctionView>,
}

#[derive(Deserialize)]
struct FunctionView {
    #[serde(default)]
    name: Text,
    #[serde(default)]
    arguments: Text,
}

impl MessageView {
    fn text_into(self, out: &mut String) {
        for part in [self.content, self.reasoning_content, self.reasoning].into_iter().filter_map(Text::into_option) {
            out.push_str(&part);
        }
        for call in self.tool_calls.into_iter().flatten() {
            if let Some(function) = call.function {
                for part in [function.name, function.arguments].into_iter().filter_map(Text::into_option) {
                    out.push_str(&part);
                }
            }
        }
    }
}

/// Reads a response body or stream chunk; `None` when it is not a JSON object.
pub fn read_response(json: &[u8]) -> Option<ResponseView> {
    let body: BodyView = serde_json::from_slice(json).ok()?;
    let mut view = ResponseView { usage: body.usage.map(Usage::from), ..ResponseView::default() };
    for choice in body.choices.unwrap_or_default() {
        view.has_choices = true;
        if let Some(text) = choice.text.into_option() {
            view.generated_text.push_str(&text);
        }
        for part in [choice.message, choice.delta].into_iter().flatten() {
            part.text_into(&mut view.generated_text);
        }
    }
    Some(view)
}

/// The `data` payload that ends an OpenAI stream.
pub const STREAM_DONE: &str = "[DONE]";

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn upstream(body: &str, model: &str) -> String {
        let req = OpenAiRequest::parse(body.as_bytes()).expect("valid body");
        String::from_utf8(req.to_upstream_body(model, &[])).expect("utf-8")
    }

    #[test]
    fn rewrites_model_and_keeps_everything_else_verbatim() {
        let out = upstream(
            r#"{"messages":[{"role":"user","content":"hi \u00e9"}], "model" : "pub",  "temperature":0.70,"x":{"k":[1, 2]}}"#,
            "up\"stream",
        );
        expect![[r#"{"messages":[{"role":"user","content":"hi \u00e9"}],"model":"up\"stream","temperature":0.70,"x":{"k":[1, 2]}}"#]].assert_eq(&out);
    }

    #[test]
    fn streams_always_ask_for_usage() {
        let out = upstream(r#"{"model":"m","stream":true}"#, "u");
        expect![[r#"{"model":"u","stream":true,"stream_options":{"include_usage":true}}"#]].assert_eq(&out);
        let out = upstream(r#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"other":1}}"#, "u");
        expect![[r#"{"model":"u","stream":true,"stream_options":{"include_usage":true,"other":1}}"#]].assert_eq(&out);
        let req = OpenAiRequest::parse(br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#)
            .expect("valid");
        assert!(req.client_wants_stream_usage);
    }

    #[test]
    fn non_streams_are_left_alone() {
        let out = upstream(r#"{"model":"m","stream":false,"stream_options":null}"#, "u");
        expect![[r#"{"model":"u","stream":false,"stream_options":null}"#]].assert_eq(&out);
    }

    #[test]
    fn rejects_what_it_cannot_route() {
        let err = |body: &str| OpenAiRequest::parse(body.as_bytes()).err();
        assert!(matches!(err("{not json"), Some(RequestError::InvalidJson(_))));
        assert!(matches!(err("[1,2]"), Some(RequestError::InvalidJson(_))));
        assert_eq!(err("{}"), Some(RequestError::InvalidField("the `model` field is required".into())));
        assert_eq!(err(r#"{"model":3}"#), Some(RequestError::InvalidField("`model` must be a string".into())));
        assert_eq!(
            err(r#"{"model":"m","stream":"yes"}"#),
            Some(RequestError::InvalidField("`stream` must be a boolean".into()))
        );
    }

    #[test]
    fn reads_usage_in_every_shape() {
        let full = read_response(br#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#);
        assert_eq!(
            full,
            Some(ResponseView {
                usage: Some(Usage { input: 10, output: 5, cached: 4, cache_write: 0, reasoning: 2 }),
                generated_text: String::new(),
                has_choices: false,
            })
        );
        let embeddings = read_response(br#"{"object":"list","data":[],"usage":{"prompt_tokens":7,"total_tokens":7}}"#);
        assert_eq!(embeddings.and_then(|v| v.usage), Some(Usage { input: 7, ..Usage::default() }));
        let none = read_response(br#"{"choices":[{"delta":{"content":"Hel"}}],"usage":null}"#).expect("object");
        assert_eq!(none.usage, None);
        assert_eq!(none.generated_text, "Hel");
        assert!(none.has_choices);
        assert_eq!(read_response(b"[DONE]"), None);
    }

    #[test]
    fn odd_shapes_never_cost_the_usage() {
        let chunk = br#"{"choices":[{"delta":{"content":[{"type":"text","text":"x"}],"tool_calls":[{"function":{"arguments":{"a":1}}}]}}],"usage":{"prompt_tokens":3,"completion_tokens":1}}"#;
        let view = read_response(chunk).expect("still read");
        assert_eq!(view.usage, Some(Usage { input: 3, output: 1, ..Usage::default() }));
        let nulls = read_response(br#"{"choices":[{"delta":{"content":null,"reasoning":null}}]}"#).expect("read");
        assert_eq!(nulls.generated_text, "");
        let scalars =
            read_response(br#"{"choices":[{"delta":{"content":5,"reasoning":true,"reasoning_content":-1.5}}]}"#)
                .expect("read");
        assert_eq!(scalars.generated_text, "");
        assert!(read_response(br#"{"choices":[{"delta":{"content":"a"}}],"usage":{"prompt_tokens":"x"}}"#).is_none());
    }

    #[test]
    fn collects_generated_text_from_messages_tool_calls_and_completions() {
        let chat = read_response(br#"{"choices":[{"message":{"content":"a","reasoning_content":"b","tool_calls":[{"function":{"name":"f","arguments":"{}"}}]}}]}"#).expect("object");
        assert_eq!(chat.generated_text, "abf{}");
        let completion = read_response(br#"{"choices":[{"text":"xyz"}]}"#).expect("object");
        assert_eq!(completion.generated_text, "xyz");
    }

    #[test]
    fn prompt_text_reads_messages_prompts_and_inputs() {
        let chat = OpenAiRequest::parse(br#"{"model":"m","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}"#).expect("valid");
        assert_eq!(chat.prompt_text(), "be brief\nhi");
        let emb = OpenAiRequest::parse(br#"{"model":"m","input":["a","b"]}"#).expect("valid");
        assert_eq!(emb.prompt_text(), "a\nb");
    }
}
