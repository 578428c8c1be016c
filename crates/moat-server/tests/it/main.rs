//! moat-server's integration tests: the whole gateway, in process, on loopback, against the
//! scripted fake upstream. One test binary; every server binds `127.0.0.1:0`.

mod admin;
mod auth;
mod errors;
mod lifecycle;
mod ops;
mod proxy;
mod support;
