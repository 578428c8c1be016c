//! Translation between dialects, for requests whose model is served only by deployments that
//! speak another dialect than the client.
//!
//! [`messages_to_chat`] carries an Anthropic Messages request to an OpenAI chat-completions
//! upstream and back: the request, the whole response, and the stream (an explicit state
//! machine from OpenAI chunks to Anthropic events).

pub mod messages_to_chat;
