//! The checks of a whole configuration, whatever its sources: counts that
//! must be at least one, ceilings and floors, and settings that must agree.

use super::defaults::{MAX_FIRE_AHEAD, MAX_FLUSH_INTERVAL, MIN_ADMIN_TOKEN_CHARS, MIN_DB_CACHE};
use super::resolved::{Config, ConfigError, invalid};

impl Config {
    /// Refuses a configuration the daemon cannot run with, naming the setting.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let at_least_one = [
            ("max_concurrent_compiles", self.max_concurrent_compiles as u64),
            ("max_concurrent_runs", self.max_concurrent_runs as u64),
            ("max_event_streams", self.max_event_streams as u64),
            ("default_fuel", self.jobs.fuel.unwrap_or(1)),
            ("pool_core_instances", u64::from(self.pool_core_instances)),
            ("http_max_connections", self.http.max_connections as u64),
            ("unauthenticated_burst", u64::from(self.http.unauthenticated_burst)),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return Err(invalid(key)("must be at least 1".to_string()));
            }
        }
        if self.jobs.memory > self.jobs.max_memory {
            return Err(invalid("default_memory")("is above max_memory".to_string()));
        }
        for (key, value, most) in [
            ("fire_ahead", self.fire_ahead, MAX_FIRE_AHEAD),
            ("flush_interval", self.flush_interval, MAX_FLUSH_INTERVAL),
        ] {
            if value > most {
                return Err(invalid(key)(format!(
                    "{} is more than the most, {}",
                    crate::units::format_duration(value),
                    crate::units::format_duration(most)
                )));
            }
        }
        if self.db_cache < MIN_DB_CACHE {
            return Err(invalid("db_cache")(format!(
                "{} bytes is less than the least, 1MiB",
                self.db_cache
            )));
        }
        for (key, timeout) in [
            ("http_header_timeout", self.http.header_timeout),
            ("http_body_timeout", self.http.body_timeout),
            ("http_idle_timeout", self.http.idle_timeout),
        ] {
            if timeout.is_zero() {
                return Err(invalid(key)("must be more than 0".to_string()));
            }
        }
        if let Some(token) = &self.admin_token
            && token.trim().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(invalid("admin_token")(format!(
                "is shorter than {MIN_ADMIN_TOKEN_CHARS} characters; use a long random token"
            )));
        }
        if let Some(node) = &self.node_id
            && !is_node_id(node)
        {
            return Err(invalid("node_id")(format!(
                "{node:?} is not a node id: use 1 to 100 letters, digits, '.', '_' or '-'"
            )));
        }
        if let Some(url) = &self.database_url
            && url.parse::<tokio_postgres::Config>().is_err()
        {
            return Err(invalid("database_url")(
                "is not a PostgreSQL URL (postgres://user:password@host:port/database)".to_string(),
            ));
        }
        Ok(())
    }
}

/// True for a node id: 1 to 100 letters, digits, '.', '_' or '-'.
pub fn is_node_id(id: &str) -> bool {
    (1..=100).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-'))
}
