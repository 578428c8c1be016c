//! Configuration: the file's shape ([`raw`]), where values come from ([`load`]), and the
//! checked runtime form ([`validate`]).
//!
//! The config file holds topology (listener, store, deployments, models); keys and usage are
//! data in the store. Layers apply in order: built-in defaults, the TOML file, then environment
//! variables `MOAT__SECTION__KEY`. Validation reports every problem at once, each with its path.

mod env;
mod load;
pub mod raw;
mod validate;

pub use load::{ConfigError, ConfigIssue, load, load_from_str};
pub use raw::RawConfig;
pub use validate::{LogFormat, Settings};
