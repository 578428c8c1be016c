//! Clients for upstream deployments.
//!
//! An [`UpstreamClient`] is built once per deployment at start-up (its own connection pool,
//! credentials and headers) and shared by every request. Failures come back as an
//! [`UpstreamError`] that says what went wrong, whether a retry may help, and which stable
//! error code the client sees; nothing downstream reads error text to decide.

mod client;
mod deployment;
mod error;

pub use client::{BodyStream, UpstreamClient, UpstreamResponse};
pub use deployment::{DeploymentSpec, UpstreamTls};
pub use error::{TimeoutPhase, UpstreamError, UpstreamErrorKind};
