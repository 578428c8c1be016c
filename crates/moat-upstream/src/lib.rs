//! Clients for upstream deployments.
//!
//! An [`UpstreamClient`] is built once per deployment at start-up (its own connection pool,
//! credentials and headers) and shared by every request. Plain HTTP deployments are reached
//! over connections each request drives itself ([`direct`]); TLS ones through hyper-util's
//! pooled client, with HTTP/2 where the server offers it. Failures come back as an
//! [`UpstreamError`] that says what went wrong, whether a retry may help, and which stable
//! error code the client sees; nothing downstream reads error text to decide.

mod client;
mod deployment;
mod direct;
mod error;
mod response;
mod tls;

pub use client::UpstreamClient;
pub use deployment::{DeploymentSpec, UpstreamTls};
pub use error::{TimeoutPhase, UpstreamError, UpstreamErrorKind};
pub use response::{BodyStream, UpstreamResponse};
