//! Translation between dialects, for requests whose model is served only by deployments that
//! speak another dialect than the client.
//!
//! Each direction is a module with three parts: the request, the whole response, and an
//! explicit stream state machine. [`messages_to_chat`] serves Anthropic Messages clients from
//! OpenAI chat-completions deployments; [`chat_to_messages`] serves OpenAI chat clients from
//! Anthropic Messages deployments. Recorded fixtures for both live in `test_data/`.

pub mod chat_to_messages;
#[cfg(test)]
mod fixtures;
pub mod messages_to_chat;
pub mod responses_to_chat;
mod shared;
