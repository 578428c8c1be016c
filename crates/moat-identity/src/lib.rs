//! Identity for moat: how people and service accounts come to exist and lose access.
//!
//! [`egress`] decides where moat's own outbound calls (sign-on, alert webhooks) may connect.
//! [`web`] signs people in with a browser (sessions, CSRF) and runs `moat login`'s device flow;
//! [`password`] hashes local passwords; [`secrets`] makes keys and tokens. [`scim`] lets an identity provider (Okta, Entra ID) provision and deprovision users and
//! groups over SCIM 2.0 (RFC 7643, RFC 7644). It keeps to the store and the audit log and knows
//! nothing of the request pipeline, so the gateway mounts it as one more router.

pub mod egress;
pub mod mail;
pub mod password;
pub mod scim;
pub mod secrets;
pub mod sso;
pub mod web;
