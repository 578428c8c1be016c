//! Identity for moat: how people and service accounts come to exist and lose access.
//!
//! [`scim`] lets an identity provider (Okta, Entra ID) provision and deprovision users and
//! groups over SCIM 2.0 (RFC 7643, RFC 7644). It keeps to the store and the audit log and knows
//! nothing of the request pipeline, so the gateway mounts it as one more router.

pub mod scim;
