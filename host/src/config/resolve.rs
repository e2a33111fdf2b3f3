//! Merging the sources: flags and environment over the TOML file over the
//! defaults, each value checked as it is taken.

use super::sources::read_file;
use super::*;
use crate::units::NumberOrText;

impl ConfigArgs {
    /// Merges flags/env over the TOML file over the defaults.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => ConfigFile::default(),
        };
        let mut config = Config::default();
        self.resolve_http(&file, &mut config.http)?;
        if let Some(listen) = self.listen.clone().or(file.listen) {
            config.listen = listen.parse().map_err(|error| ConfigError::Invalid {
                key: "listen",
                message: format!("{listen:?}: {error}"),
            })?;
        }
        if let Some(data_dir) = self.data_dir.clone().or(file.data_dir) {
            config.data_dir = data_dir;
        }
        let plugin_bytes = self
            .max_plugin_bytes
            .clone()
            .map(NumberOrText::Text)
            .or(file.max_plugin_bytes);
        if let Some(value) = plugin_bytes {
            config.max_plugin_bytes = value.to_size().map_err(invalid("max_plugin_bytes"))?;
        }
        if let Some(compiles) = self.max_concurrent_compiles.or(file.max_concurrent_compiles) {
            if compiles == 0 {
                return Err(invalid("max_concurrent_compiles")("must be at least 1".to_string()));
            }
            config.max_concurrent_compiles = compiles;
        }
        let plugin_cache = self
            .plugin_cache_bytes
            .clone()
            .map(NumberOrText::Text)
            .or(file.plugin_cache_bytes);
        if let Some(value) = plugin_cache {
            config.plugin_cache_bytes = value.to_size().map_err(invalid("plugin_cache_bytes"))?;
        }
        let artifact_cache = self
            .artifact_cache_bytes
            .clone()
            .map(NumberOrText::Text)
            .or(file.artifact_cache_bytes);
        if let Some(value) = artifact_cache {
            config.artifact_cache_bytes = value.to_size().map_err(invalid("artifact_cache_bytes"))?;
        }
        if let Some(value) = file.max_request_bytes {
            config.max_request_bytes = value.to_size().map_err(invalid("max_request_bytes"))?;
        }
        if let Some(runs) = self.max_concurrent_runs.or(file.max_concurrent_runs) {
            if runs == 0 {
                return Err(invalid("max_concurrent_runs")("must be at least 1".to_string()));
            }
            config.max_concurrent_runs = runs;
        }
        if let Some(streams) = self.max_event_streams.or(file.max_event_streams) {
            if streams == 0 {
                return Err(invalid("max_event_streams")("must be at least 1".to_string()));
            }
            config.max_event_streams = streams;
        }
        let jobs = &mut config.jobs;
        if let Some(fuel) = file.default_fuel {
            if fuel == 0 {
                return Err(invalid("default_fuel")("must be at least 1".to_string()));
            }
            jobs.fuel = Some(fuel);
        }
        if let Some(value) = file.default_timeout {
            jobs.timeout = value.to_duration().map_err(invalid("default_timeout"))?;
        }
        if let Some(value) = file.default_memory {
            jobs.memory = value.to_size().map_err(invalid("default_memory"))?;
        }
        if let Some(value) = file.default_output {
            jobs.output = value.to_size().map_err(invalid("default_output"))?;
        }
        if let Some(value) = file.max_log_bytes {
            jobs.logs = value.to_size().map_err(invalid("max_log_bytes"))?;
        }
        if let Some(value) = file.max_timeout {
            jobs.max_timeout = value.to_duration().map_err(invalid("max_timeout"))?;
        }
        if let Some(value) = file.max_memory {
            jobs.max_memory = value.to_size().map_err(invalid("max_memory"))?;
        }
        if jobs.memory > jobs.max_memory {
            return Err(invalid("default_memory")("is above max_memory".to_string()));
        }
        if let Some(format) = self.log_format.or(file.log_format) {
            config.log_format = format;
        }
        let grace = self
            .shutdown_grace
            .clone()
            .map(NumberOrText::Text)
            .or(file.shutdown_grace);
        if let Some(value) = grace {
            config.shutdown_grace = value.to_duration().map_err(invalid("shutdown_grace"))?;
        }
        if let Some(value) = self.retention.clone().map(NumberOrText::Text).or(file.retention) {
            config.retention = value.to_duration().map_err(invalid("retention"))?;
        }
        if let Some(runs) = self.max_runs_per_job.or(file.max_runs_per_job) {
            config.max_runs_per_job = runs;
        }
        config.smtp_url = self.smtp_url.clone().or(file.smtp_url);
        if let Some(from) = self.smtp_from.clone().or(file.smtp_from) {
            config.smtp_from = from;
        }
        if let Some(value) = self.fire_ahead.clone().map(NumberOrText::Text).or(file.fire_ahead) {
            config.fire_ahead = value.to_duration().map_err(invalid("fire_ahead"))?;
            if config.fire_ahead > MAX_FIRE_AHEAD {
                return Err(invalid("fire_ahead")(format!(
                    "{} is more than the most, {}",
                    crate::units::format_duration(config.fire_ahead),
                    crate::units::format_duration(MAX_FIRE_AHEAD)
                )));
            }
        }
        let flush_interval = self
            .flush_interval
            .clone()
            .map(NumberOrText::Text)
            .or(file.flush_interval);
        if let Some(value) = flush_interval {
            config.flush_interval = value.to_duration().map_err(invalid("flush_interval"))?;
            if config.flush_interval > MAX_FLUSH_INTERVAL {
                return Err(invalid("flush_interval")(format!(
                    "{} is more than the most, {}",
                    crate::units::format_duration(config.flush_interval),
                    crate::units::format_duration(MAX_FLUSH_INTERVAL)
                )));
            }
        }
        if let Some(value) = self.db_cache.clone().map(NumberOrText::Text).or(file.db_cache) {
            config.db_cache = value.to_size().map_err(invalid("db_cache"))?;
            if config.db_cache < MIN_DB_CACHE {
                return Err(invalid("db_cache")(format!(
                    "{} bytes is less than the least, 1MiB",
                    config.db_cache
                )));
            }
        }
        config.pool_size = self.pool_size.or(file.pool_size);
        if let Some(count) = self.pool_core_instances.or(file.pool_core_instances) {
            if count == 0 {
                return Err(invalid("pool_core_instances")("must be at least 1".to_string()));
            }
            config.pool_core_instances = count;
        }
        let storage_min_free = self
            .storage_min_free
            .clone()
            .map(NumberOrText::Text)
            .or(file.storage_min_free);
        if let Some(value) = storage_min_free {
            config.storage_min_free = value.to_size().map_err(invalid("storage_min_free"))?;
        }
        if let Some(ranges) = self.http_allow_private.clone().or(file.http_allow_private) {
            config.http_allow_private = ranges
                .iter()
                .map(|range| range.trim())
                .filter(|range| !range.is_empty())
                .map(parse_range)
                .collect::<Result<_, _>>()
                .map_err(invalid("http_allow_private"))?;
        }
        if let Some(pairs) = self.http_resolve.clone().or(file.http_resolve) {
            for pair in pairs.iter().map(|pair| pair.trim()).filter(|pair| !pair.is_empty()) {
                let (name, address) = pair
                    .split_once('=')
                    .ok_or_else(|| invalid("http_resolve")(format!("{pair:?} is not name=address")))?;
                let address = address
                    .trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .map_err(|error| invalid("http_resolve")(format!("{pair:?}: {error}")))?;
                config
                    .http_resolve
                    .entry(name.trim().to_ascii_lowercase())
                    .or_default()
                    .push(address);
            }
        }
        config.secrets_key = self.secrets_key.clone().or(file.secrets_key);
        config.secrets_key_file = self.secrets_key_file.clone().or(file.secrets_key_file);
        config.admin_token = self.admin_token.clone().or(file.admin_token);
        if let Some(token) = &config.admin_token
            && token.trim().chars().count() < MIN_ADMIN_TOKEN_CHARS
        {
            return Err(invalid("admin_token")(format!(
                "is shorter than {MIN_ADMIN_TOKEN_CHARS} characters; use a long random token"
            )));
        }
        Ok(config)
    }
}

impl ConfigArgs {
    /// The HTTP server's limits: flags/env over the file over the defaults.
    fn resolve_http(&self, file: &ConfigFile, http: &mut HttpLimits) -> Result<(), ConfigError> {
        let timeouts = [
            (
                "http_header_timeout",
                &self.http_header_timeout,
                &file.http_header_timeout,
                &mut http.header_timeout,
            ),
            (
                "http_body_timeout",
                &self.http_body_timeout,
                &file.http_body_timeout,
                &mut http.body_timeout,
            ),
            (
                "http_idle_timeout",
                &self.http_idle_timeout,
                &file.http_idle_timeout,
                &mut http.idle_timeout,
            ),
        ];
        for (key, flag, in_file, setting) in timeouts {
            if let Some(value) = flag.clone().map(NumberOrText::Text).or_else(|| in_file.clone()) {
                let timeout = value.to_duration().map_err(invalid(key))?;
                if timeout.is_zero() {
                    return Err(invalid(key)("must be more than 0".to_string()));
                }
                *setting = timeout;
            }
        }
        if let Some(connections) = self.http_max_connections.or(file.http_max_connections) {
            if connections == 0 {
                return Err(invalid("http_max_connections")("must be at least 1".to_string()));
            }
            http.max_connections = connections;
        }
        let rate = self
            .unauthenticated_rate
            .clone()
            .map(NumberOrText::Text)
            .or_else(|| file.unauthenticated_rate.clone());
        if let Some(value) = rate {
            http.unauthenticated_rate = value.to_rate().map_err(invalid("unauthenticated_rate"))?;
        }
        if let Some(burst) = self.unauthenticated_burst.or(file.unauthenticated_burst) {
            if burst == 0 {
                return Err(invalid("unauthenticated_burst")("must be at least 1".to_string()));
            }
            http.unauthenticated_burst = burst;
        }
        Ok(())
    }
}

/// A CIDR range, or one address as its own range.
fn parse_range(text: &str) -> Result<ipnet::IpNet, String> {
    text.parse::<ipnet::IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR range like \"127.0.0.0/8\" or an address"))
}
