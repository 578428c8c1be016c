//! The wire formats moat speaks, kept free of IO.
//!
//! [`sse`] frames server-sent-event streams without re-encoding them, [`openai`] and
//! [`anthropic`] read and rewrite each dialect's bodies (only what the gateway must touch) and
//! find usage in responses and streams, and [`error_envelope`] renders every error in the shape
//! the client's dialect expects.

pub mod anthropic;
pub mod error_envelope;
pub mod json_object;
pub mod openai;
pub mod response_view;
pub mod responses;
pub mod secret_scan;
pub mod sse;
pub mod translate;
