//! Translation between dialects, for requests whose model is served only by deployments that
//! speak another dialect than the client.
//!
//! **OpenAI chat completions is the canonical model.** Every ingress dialect has one
//! translation into it and back ([`messages_to_chat`], [`responses_to_chat`]), and every other
//! upstream dialect one translation out of it and back ([`chat_to_messages`]). A pair that
//! needs two steps (a Responses API client on an Anthropic-only deployment) is the composition
//! of both through the canonical form, streams included ([`Chained`]), so adding a dialect
//! means two translations, not one per pair. Each translation has three parts: the request,
//! the whole answer, and an explicit stream state machine. Recorded fixtures live in
//! `test_data/<direction>/`; the round-trip property tests in `round_trip` check that going
//! into the canonical form and back loses nothing the dialects can both express.

pub mod chat_to_messages;
#[cfg(test)]
mod fixtures;
pub mod messages_to_chat;
pub mod responses_to_chat;
#[cfg(test)]
mod round_trip;
mod shared;

use moat_core::Dialect;
use serde_json::Value;

use crate::sse::SseDecoder;

/// Why a request cannot be translated.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct TranslateError(pub String);

/// A route from a client's API to a deployment that speaks another dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Translation {
    /// Anthropic Messages client, OpenAI chat-completions deployment.
    MessagesToChat,
    /// OpenAI chat client, Anthropic Messages deployment.
    ChatToMessages,
    /// OpenAI Responses API client, OpenAI chat-completions deployment.
    ResponsesToChat,
    /// OpenAI Responses API client, Anthropic Messages deployment: through the canonical chat
    /// form in both directions.
    ResponsesToMessages,
}

/// How the outbound request is shaped for one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestOptions {
    /// Whether thinking and reasoning settings reach an OpenAI-dialect deployment as
    /// `reasoning_effort`; off for servers that reject the field.
    pub reasoning_effort: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions { reasoning_effort: true }
    }
}

/// What a translated answer needs to know about its request and client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerContext {
    /// The model name the client asked for, which translated answers carry.
    pub client_model: String,
    /// Unix seconds, for the `created` fields of OpenAI-shaped answers.
    pub created: u64,
    /// The prompt's counted tokens, for an Anthropic `message_start` sent before the upstream
    /// reports usage.
    pub input_tokens_hint: u64,
    /// Whether an OpenAI chat client asked for the usage chunk.
    pub include_usage: bool,
    /// The client's own stop sequences: an upstream's report that one of them ended the answer
    /// becomes Anthropic's `stop_reason: "stop_sequence"`.
    pub stop_sequences: Vec<String>,
}

impl Translation {
    /// The dialect the deployment is spoken to in.
    pub fn upstream_dialect(self) -> Dialect {
        match self {
            Translation::MessagesToChat | Translation::ResponsesToChat => Dialect::OpenAi,
            Translation::ChatToMessages | Translation::ResponsesToMessages => Dialect::Anthropic,
        }
    }

    /// The upstream path under the deployment's `/v1` base.
    pub fn upstream_path(self) -> &'static str {
        match self.upstream_dialect() {
            Dialect::OpenAi => "chat/completions",
            Dialect::Anthropic => "messages",
        }
    }

    /// The member of the outbound body that holds stop sequences.
    pub fn stop_key(self) -> &'static str {
        match self.upstream_dialect() {
            Dialect::OpenAi => "stop",
            Dialect::Anthropic => "stop_sequences",
        }
    }

    /// The outbound body for the client's request `body`, sent as `upstream_model`.
    pub fn request(self, body: &Value, upstream_model: &str, options: RequestOptions) -> Result<Value, TranslateError> {
        let mut out = match self {
            Translation::MessagesToChat => messages_to_chat::request(body, upstream_model)?,
            Translation::ChatToMessages => chat_to_messages::request(body, upstream_model)?,
            Translation::ResponsesToChat => responses_to_chat::request(body, upstream_model)?,
            Translation::ResponsesToMessages => {
                chat_to_messages::request(&responses_to_chat::request(body, upstream_model)?, upstream_model)?
            }
        };
        if self.upstream_dialect() == Dialect::OpenAi
            && !options.reasoning_effort
            && let Some(object) = out.as_object_mut()
        {
            object.remove("reasoning_effort");
        }
        Ok(out)
    }

    /// The client's stop sequences in its request `body`.
    pub fn client_stop_sequences(self, body: &Value) -> Vec<String> {
        let member = match self {
            Translation::MessagesToChat => body.get("stop_sequences"),
            Translation::ChatToMessages | Translation::ResponsesToChat | Translation::ResponsesToMessages => {
                body.get("stop")
            }
        };
        match member {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }

    /// The client's answer for the deployment's whole `answer`.
    pub fn response(self, answer: &Value, context: &AnswerContext) -> Value {
        let model = context.client_model.as_str();
        match self {
            Translation::MessagesToChat => messages_to_chat::response(answer, model, &context.stop_sequences),
            Translation::ChatToMessages => chat_to_messages::response(answer, model, context.created),
            Translation::ResponsesToChat => responses_to_chat::response(answer, model, context.created),
            Translation::ResponsesToMessages => responses_to_chat::response(
                &chat_to_messages::response(answer, model, context.created),
                model,
                context.created,
            ),
        }
    }

    /// A state machine for one streamed answer.
    pub fn stream(self, context: &AnswerContext) -> Box<dyn StreamTranslate> {
        let model = context.client_model.as_str();
        match self {
            Translation::MessagesToChat => Box::new(
                messages_to_chat::StreamTranslator::new(model, context.input_tokens_hint)
                    .with_stop_sequences(context.stop_sequences.clone()),
            ),
            Translation::ChatToMessages => {
                Box::new(chat_to_messages::StreamTranslator::new(model, context.created, context.include_usage))
            }
            Translation::ResponsesToChat => Box::new(responses_to_chat::StreamTranslator::new(model, context.created)),
            Translation::ResponsesToMessages => Box::new(Chained::new(
                chat_to_messages::StreamTranslator::new(model, context.created, true),
                responses_to_chat::StreamTranslator::new(model, context.created),
            )),
        }
    }
}

/// One direction's stream state machine: upstream frames' `data` in, client bytes out.
pub trait StreamTranslate: Send + std::fmt::Debug {
    /// Translates one upstream frame's `data` payload; returns the client bytes to send.
    fn push(&mut self, data: &str) -> Vec<u8>;
    /// Ends the client's stream properly, called when the upstream stream ends (with or
    /// without its own terminal frame).
    fn finish(&mut self, out: &mut Vec<u8>);
    /// Whether the client's terminal frame was sent.
    fn is_finished(&self) -> bool;
}

macro_rules! impl_stream_translate {
    ($($ty:ty),*) => {$(
        impl StreamTranslate for $ty {
            fn push(&mut self, data: &str) -> Vec<u8> {
                <$ty>::push(self, data)
            }
            fn finish(&mut self, out: &mut Vec<u8>) {
                <$ty>::finish(self, out)
            }
            fn is_finished(&self) -> bool {
                <$ty>::is_finished(self)
            }
        }
    )*};
}

impl_stream_translate!(
    messages_to_chat::StreamTranslator,
    chat_to_messages::StreamTranslator,
    responses_to_chat::StreamTranslator
);

/// Two translations in a row: the first's output frames (the canonical chat chunks) are the
/// second's input.
#[derive(Debug)]
pub struct Chained<A, B> {
    first: A,
    between: SseDecoder,
    second: B,
}

impl<A: StreamTranslate, B: StreamTranslate> Chained<A, B> {
    /// `first` reads the upstream; `second` writes for the client.
    pub fn new(first: A, second: B) -> Self {
        Chained { first, between: SseDecoder::new(), second }
    }

    fn relay(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.between.push(bytes);
        while let Some(frame) = self.between.next_frame() {
            if let Some(data) = frame.data.as_deref() {
                out.extend(self.second.push(data));
            }
        }
    }
}

impl<A: StreamTranslate, B: StreamTranslate> StreamTranslate for Chained<A, B> {
    fn push(&mut self, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let middle = self.first.push(data);
        self.relay(&middle, &mut out);
        out
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut middle = Vec::new();
        self.first.finish(&mut middle);
        self.relay(&middle, out);
        self.second.finish(out);
    }

    fn is_finished(&self) -> bool {
        self.second.is_finished()
    }
}
