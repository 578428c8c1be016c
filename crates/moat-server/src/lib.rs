//! moat's HTTP surface: the model endpoints and their request pipeline, the admin API,
//! operational endpoints, and the configuration they run from.
//!
//! [`Gateway`] is the whole server: [`Gateway::start`] opens the store and builds every
//! upstream client once, [`Gateway::router`] is the axum app (tests call it in-process), and
//! [`Gateway::serve`] runs it on a listener until shutdown, then drains in-flight streams and
//! usage records.

mod admin;
mod admission;
mod alerts;
pub mod auth;
pub mod config;
mod data_policy;
mod edge;
mod error;
mod fanout;
mod fleet;
mod health_checks;
pub mod listener;
mod metrics;
mod ops;
mod price_catalog;
mod prompt_vault;
mod proxy;
mod response_cache;
mod retention;
mod serve;
mod state;
mod telemetry;
mod time;

pub use fanout::RedisSettings;
pub use serve::{Gateway, Reloader, StartError};
