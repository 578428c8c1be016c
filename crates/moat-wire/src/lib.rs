//! The wire formats moat speaks, kept free of IO.
//!
//! [`sse`] frames server-sent-event streams without re-encoding them, [`openai`] reads and
//! rewrites OpenAI-dialect bodies (only what the gateway must touch), and [`error_envelope`]
//! renders every error in the shape the client's dialect expects.

pub mod error_envelope;
pub mod json_object;
pub mod openai;
pub mod sse;
