//! moat-server's integration tests: the whole gateway, in process, on loopback, against the
//! scripted fake upstream. One test binary; every server binds `127.0.0.1:0`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod admin;
mod auth;
mod budgets;
mod cache;
mod connections;
mod console;
mod console_keys;
mod data_policy;
mod errors;
mod fanout;
mod identity;
mod invitations;
mod lifecycle;
mod listener;
mod messages;
mod ops;
mod prompt_logs;
mod proxy;
mod reports;
mod resilience;
mod responses;
mod scim;
mod sign_in;
mod support;
mod telemetry;
