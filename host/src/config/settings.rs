//! Every setting, once: each field of [`Settings`] is a flag (`--name`),
//! a variable (`SANDCRON_NAME`) and a key of the `--config` TOML file
//! (`name`), read by the same typed parser from each (see [`super::values`]).
//! Flags and variables are merged over the file ([`Settings::over`]), then
//! laid over the defaults ([`Settings::apply`]); the result is checked as a
//! whole by [`Config::validate`](super::Config::validate).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::resolved::{Config, ConfigError, LogFormat};
use super::values::{Bytes, Pin, Range, Rate, Span};

/// The daemon's settings as given: None is "not given here".
#[derive(Debug, Default, Clone, clap::Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (default 127.0.0.1:8085).
    #[arg(long, env = "SANDCRON_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and the admin token (default ./sandcron-data).
    #[arg(long, env = "SANDCRON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest plugin upload (default "32MiB").
    #[arg(long, env = "SANDCRON_MAX_PLUGIN_BYTES")]
    pub max_plugin_bytes: Option<Bytes>,
    /// Plugin compilations at once, uploads and runs together (default 2); more wait.
    #[arg(long, env = "SANDCRON_MAX_CONCURRENT_COMPILES")]
    pub max_concurrent_compiles: Option<usize>,
    /// Memory for compiled plugins, by their serialized size (default "256MiB"; 0 keeps none); past it the least recently used are loaded again from disk when needed.
    #[arg(long, env = "SANDCRON_PLUGIN_CACHE_BYTES")]
    pub plugin_cache_bytes: Option<Bytes>,
    /// Disk for compiled plugin code (default "2GiB"); past it the code used longest ago is deleted (never the newest) and compiled again when a run needs it.
    #[arg(long, env = "SANDCRON_ARTIFACT_CACHE_BYTES")]
    pub artifact_cache_bytes: Option<Bytes>,
    /// Largest JSON request body (default "2MiB").
    #[arg(long, env = "SANDCRON_MAX_REQUEST_BYTES")]
    pub max_request_bytes: Option<Bytes>,
    /// Runs executing at once (default 32); more wait in the priority queue.
    #[arg(long, env = "SANDCRON_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// Event streams (GET /v1/events) each tenant may hold open at once (default 16).
    #[arg(long, env = "SANDCRON_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<usize>,
    /// Fuel budget of a job that names none (default: none, runs unmetered).
    #[arg(long, env = "SANDCRON_DEFAULT_FUEL")]
    pub default_fuel: Option<u64>,
    /// Deadline of a job that names none (default "30s").
    #[arg(long, env = "SANDCRON_DEFAULT_TIMEOUT")]
    pub default_timeout: Option<Span>,
    /// Memory of a job that names none (default "64MiB").
    #[arg(long, env = "SANDCRON_DEFAULT_MEMORY")]
    pub default_memory: Option<Bytes>,
    /// Output cap of a job that names none (default "1MiB").
    #[arg(long, env = "SANDCRON_DEFAULT_OUTPUT")]
    pub default_output: Option<Bytes>,
    /// Log kept per run (default "1MiB").
    #[arg(long, env = "SANDCRON_MAX_LOG_BYTES")]
    pub max_log_bytes: Option<Bytes>,
    /// Tape a recorded run keeps, past which it cannot be replayed (default "1MiB").
    #[arg(long, env = "SANDCRON_MAX_RECORD_BYTES")]
    pub max_record_bytes: Option<Bytes>,
    /// Longest deadline a job may ask for (default "24h").
    #[arg(long, env = "SANDCRON_MAX_TIMEOUT")]
    pub max_timeout: Option<Span>,
    /// Most memory a job may ask for (default "1GiB"; also the pool's slot size).
    #[arg(long, env = "SANDCRON_MAX_MEMORY")]
    pub max_memory: Option<Bytes>,
    /// Daemon log format.
    #[arg(long, env = "SANDCRON_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Comma-separated CIDRs outbound HTTP may reach despite the SSRF wall.
    #[arg(long, env = "SANDCRON_HTTP_ALLOW_PRIVATE", value_delimiter = ',')]
    pub http_allow_private: Option<Vec<Range>>,
    /// Comma-separated `name=address` pairs outbound HTTP resolves without DNS.
    #[arg(long, env = "SANDCRON_HTTP_RESOLVE", value_delimiter = ',')]
    pub http_resolve: Option<Vec<Pin>>,
    /// The secrets master key (64 hex digits or base64 of 32 bytes).
    #[arg(long, env = "SANDCRON_SECRETS_KEY", hide_env_values = true)]
    pub secrets_key: Option<String>,
    /// File holding the secrets master key (default: <data-dir>/secrets.key).
    #[arg(long, env = "SANDCRON_SECRETS_KEY_FILE")]
    pub secrets_key_file: Option<PathBuf>,
    /// The admin token (at least 32 characters); by default one is made in
    /// <data-dir>/admin-token on first start.
    #[arg(long, env = "SANDCRON_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// How long a stopping daemon waits for running runs ("10s").
    #[arg(long, env = "SANDCRON_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<Span>,
    /// SMTP server for e-mail ("smtp://host:25", "smtps://user:pass@host").
    #[arg(long, env = "SANDCRON_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// PostgreSQL database holding all state ("postgres://user:pass@host/db"),
    /// shared by every node of a cluster; without it, sled in the data dir.
    #[arg(long, env = "SANDCRON_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// This node's name in a cluster (default: the host name and a random
    /// suffix).
    #[arg(long, env = "SANDCRON_NODE_ID")]
    pub node_id: Option<String>,
    /// Sender of e-mails ("sandcron <jobs@example.com>").
    #[arg(long, env = "SANDCRON_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Delete finished runs older than this ("30d"; 0 keeps them).
    #[arg(long, env = "SANDCRON_RETENTION")]
    pub retention: Option<Span>,
    /// Keep at most this many finished runs per job (0: no cap).
    #[arg(long, env = "SANDCRON_MAX_RUNS_PER_JOB")]
    pub max_runs_per_job: Option<usize>,
    /// How far ahead of its instant a fire is recorded and queued (default "2s"; at most 60s).
    #[arg(long, env = "SANDCRON_FIRE_AHEAD")]
    pub fire_ahead: Option<Span>,
    /// Durability window: writes within it share one flush ("2ms"; 0 flushes each write; at most 1s).
    #[arg(long, env = "SANDCRON_FLUSH_INTERVAL")]
    pub flush_interval: Option<Span>,
    /// Memory for the database's page cache (default "32MiB", at least 1MiB); the rest of the data is read from disk when needed.
    #[arg(long, env = "SANDCRON_DB_CACHE")]
    pub db_cache: Option<Bytes>,
    /// Instances kept in the pooling allocator (default: two per concurrent run; 0: none); runs beyond get on-demand instances.
    #[arg(long, env = "SANDCRON_POOL_SIZE")]
    pub pool_size: Option<u32>,
    /// Core instances the pool keeps per slot, on average (default 16; a Rust plugin takes 3, a Python one 14); a run that finds too few left goes on demand.
    #[arg(long, env = "SANDCRON_POOL_CORE_INSTANCES")]
    pub pool_core_instances: Option<u32>,
    /// How long a client may take to send a request's line and headers (default "10s").
    #[arg(long, env = "SANDCRON_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<Span>,
    /// How long a request's body may take to arrive, whole (default "60s").
    #[arg(long, env = "SANDCRON_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<Span>,
    /// How long a kept-alive connection may wait for its next request (default "60s").
    #[arg(long, env = "SANDCRON_HTTP_IDLE_TIMEOUT")]
    pub http_idle_timeout: Option<Span>,
    /// HTTP connections open at once (default 1024; kept below the open-files limit).
    #[arg(long, env = "SANDCRON_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Requests each client address may make without a valid token ("20/s", "600/m"; "off": no limit).
    #[arg(long, env = "SANDCRON_UNAUTHENTICATED_RATE")]
    pub unauthenticated_rate: Option<Rate>,
    /// Requests without a valid token an address may make at once before the rate applies (default 200).
    #[arg(long, env = "SANDCRON_UNAUTHENTICATED_BURST")]
    pub unauthenticated_burst: Option<u32>,
    /// Bytes the data volume must have free again before a daemon whose storage failed (a full disk) restarts to reopen it (default "64MiB").
    #[arg(long, env = "SANDCRON_STORAGE_MIN_FREE")]
    pub storage_min_free: Option<Bytes>,
}

/// `sandcron serve`'s arguments: the settings, and the file with more.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below (flags and variables win).
    #[arg(long, env = "SANDCRON_CONFIG")]
    pub config: Option<PathBuf>,
    /// The settings given as flags or variables.
    #[command(flatten)]
    pub settings: Settings,
}

/// For each named field: the first source's value, else the second's.
macro_rules! over {
    ($strong:ident, $weak:ident; $($field:ident),* $(,)?) => {
        Settings { $($field: $strong.$field.or($weak.$field)),* }
    };
}

impl Settings {
    /// These settings with `weaker`'s filling what these do not give.
    pub fn over(self, weaker: Settings) -> Settings {
        over!(self, weaker;
            listen, data_dir, max_plugin_bytes, max_concurrent_compiles, plugin_cache_bytes,
            artifact_cache_bytes, max_request_bytes, max_concurrent_runs, max_event_streams,
            default_fuel, default_timeout, default_memory, default_output, max_log_bytes,
            max_record_bytes, max_timeout, max_memory, log_format, http_allow_private, http_resolve, secrets_key,
            secrets_key_file, admin_token, shutdown_grace, smtp_url, smtp_from, database_url, node_id, retention,
            max_runs_per_job, fire_ahead, flush_interval, db_cache, pool_size, pool_core_instances,
            http_header_timeout, http_body_timeout, http_idle_timeout, http_max_connections,
            unauthenticated_rate, unauthenticated_burst, storage_min_free,
        )
    }

    /// The defaults with what these settings give laid over them.
    pub fn apply(self, mut config: Config) -> Config {
        /// `config.$target = value` for a given setting, through `$read`.
        macro_rules! set {
            ($($field:ident => $target:expr, $read:expr;)*) => {
                $(if let Some(value) = self.$field { $target = $read(value); })*
            };
        }
        let jobs = &mut config.jobs;
        let http = &mut config.http;
        set! {
            listen => config.listen, |value| value;
            data_dir => config.data_dir, |value| value;
            max_plugin_bytes => config.max_plugin_bytes, |Bytes(value)| value;
            max_concurrent_compiles => config.max_concurrent_compiles, |value| value;
            plugin_cache_bytes => config.plugin_cache_bytes, |Bytes(value)| value;
            artifact_cache_bytes => config.artifact_cache_bytes, |Bytes(value)| value;
            max_request_bytes => config.max_request_bytes, |Bytes(value)| value;
            max_concurrent_runs => config.max_concurrent_runs, |value| value;
            max_event_streams => config.max_event_streams, |value| value;
            default_fuel => jobs.fuel, Some;
            default_timeout => jobs.timeout, |Span(value)| value;
            default_memory => jobs.memory, |Bytes(value)| value;
            default_output => jobs.output, |Bytes(value)| value;
            max_log_bytes => jobs.logs, |Bytes(value)| value;
            max_record_bytes => jobs.record_bytes, |Bytes(value)| value;
            max_timeout => jobs.max_timeout, |Span(value)| value;
            max_memory => jobs.max_memory, |Bytes(value)| value;
            log_format => config.log_format, |value| value;
            http_allow_private => config.http_allow_private, |ranges: Vec<Range>| ranges.into_iter().map(|Range(range)| range).collect();
            secrets_key => config.secrets_key, Some;
            secrets_key_file => config.secrets_key_file, Some;
            admin_token => config.admin_token, Some;
            shutdown_grace => config.shutdown_grace, |Span(value)| value;
            smtp_url => config.smtp_url, Some;
            smtp_from => config.smtp_from, |value| value;
            database_url => config.database_url, Some;
            node_id => config.node_id, Some;
            retention => config.retention, |Span(value)| value;
            max_runs_per_job => config.max_runs_per_job, |value| value;
            fire_ahead => config.fire_ahead, |Span(value)| value;
            flush_interval => config.flush_interval, |Span(value)| value;
            db_cache => config.db_cache, |Bytes(value)| value;
            pool_size => config.pool_size, Some;
            pool_core_instances => config.pool_core_instances, |value| value;
            http_header_timeout => http.header_timeout, |Span(value)| value;
            http_body_timeout => http.body_timeout, |Span(value)| value;
            http_idle_timeout => http.idle_timeout, |Span(value)| value;
            http_max_connections => http.max_connections, |value| value;
            unauthenticated_rate => http.unauthenticated_rate, |Rate(value)| value;
            unauthenticated_burst => http.unauthenticated_burst, |value| value;
            storage_min_free => config.storage_min_free, |Bytes(value)| value;
        }
        if let Some(pins) = self.http_resolve {
            for Pin { name, address } in pins {
                config.http_resolve.entry(name).or_default().push(address);
            }
        }
        config
    }
}

impl ConfigArgs {
    /// Flags and variables over the TOML file over the defaults, checked.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => Settings::default(),
        };
        let config = self.settings.clone().over(file).apply(Config::default());
        config.validate()?;
        Ok(config)
    }
}

/// The settings of a TOML file.
pub(super) fn read_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}
