//! Daemon configuration and every default in one place. Sources, strongest
//! first: command-line flags, `SANDCRON_*` environment variables, the TOML
//! file given by `--config`, then the defaults in [`defaults`]. Each setting is one
//! field of [`Settings`] (flag, variable and file key at once); the merged
//! configuration ([`Config`]) is checked by [`Config::validate`].

pub mod defaults;
mod resolved;
mod settings;
mod validate;
pub mod values;

pub use defaults::*;
pub use resolved::{Config, ConfigError, HttpLimits, JobDefaults, LogFormat};
pub use settings::{ConfigArgs, Settings};
pub use validate::is_node_id;

#[cfg(test)]
mod tests;
