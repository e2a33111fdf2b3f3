//! Where settings come from: the `--config` TOML file's keys and the
//! command line's flags (each with its `SANDCRON_*` variable), as read,
//! before any is checked.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{ConfigError, LogFormat};
use crate::units::NumberOrText;

/// Keys accepted in the `--config` TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `listen = "127.0.0.1:8085"`.
    pub listen: Option<String>,
    /// `data_dir = "./sandcron-data"`.
    pub data_dir: Option<PathBuf>,
    /// `max_plugin_bytes = "32MiB"`.
    pub max_plugin_bytes: Option<NumberOrText>,
    /// `max_concurrent_compiles = 2`.
    pub max_concurrent_compiles: Option<usize>,
    /// `plugin_cache_bytes = "256MiB"` (0: none kept in memory).
    pub plugin_cache_bytes: Option<NumberOrText>,
    /// `artifact_cache_bytes = "2GiB"` (compiled code on disk).
    pub artifact_cache_bytes: Option<NumberOrText>,
    /// `max_request_bytes = "2MiB"`.
    pub max_request_bytes: Option<NumberOrText>,
    /// `max_concurrent_runs = 16`.
    pub max_concurrent_runs: Option<usize>,
    /// `max_event_streams = 16` (per tenant).
    pub max_event_streams: Option<usize>,
    /// `default_fuel = 30000000000` (unset: jobs without a fuel budget run
    /// unmetered).
    pub default_fuel: Option<u64>,
    /// `default_timeout = "30s"`.
    pub default_timeout: Option<NumberOrText>,
    /// `default_memory = "64MiB"`.
    pub default_memory: Option<NumberOrText>,
    /// `default_output = "1MiB"`.
    pub default_output: Option<NumberOrText>,
    /// `max_log_bytes = "1MiB"`.
    pub max_log_bytes: Option<NumberOrText>,
    /// `max_timeout = "24h"`.
    pub max_timeout: Option<NumberOrText>,
    /// `max_memory = "1GiB"`.
    pub max_memory: Option<NumberOrText>,
    /// `log_format = "json"`.
    pub log_format: Option<LogFormat>,
    /// `http_allow_private = ["127.0.0.0/8"]`.
    pub http_allow_private: Option<Vec<String>>,
    /// `http_resolve = ["internal.example=10.0.0.5"]`.
    pub http_resolve: Option<Vec<String>>,
    /// `secrets_key = "<64 hex digits>"` (better: a key file).
    pub secrets_key: Option<String>,
    /// `secrets_key_file = "/etc/sandcron/secrets.key"`.
    pub secrets_key_file: Option<PathBuf>,
    /// `admin_token = "..."` (at least 32 characters; by default one is
    /// made in `<data-dir>/admin-token`).
    pub admin_token: Option<String>,
    /// `shutdown_grace = "10s"`.
    pub shutdown_grace: Option<NumberOrText>,
    /// `smtp_url = "smtp://mail.example.com:587?tls=required"`.
    pub smtp_url: Option<String>,
    /// `smtp_from = "sandcron <jobs@example.com>"`.
    pub smtp_from: Option<String>,
    /// `retention = "30d"` (0 keeps runs forever).
    pub retention: Option<NumberOrText>,
    /// `max_runs_per_job = 10000` (0: no cap).
    pub max_runs_per_job: Option<usize>,
    /// `fire_ahead = "2s"`.
    pub fire_ahead: Option<NumberOrText>,
    /// `flush_interval = "2ms"` (0: flush each write).
    pub flush_interval: Option<NumberOrText>,
    /// `db_cache = "32MiB"`.
    pub db_cache: Option<NumberOrText>,
    /// `pool_size = 64` (0: no pooling allocator).
    pub pool_size: Option<u32>,
    /// `pool_core_instances = 16` (per pool slot).
    pub pool_core_instances: Option<u32>,
    /// `http_header_timeout = "10s"`.
    pub http_header_timeout: Option<NumberOrText>,
    /// `http_body_timeout = "60s"`.
    pub http_body_timeout: Option<NumberOrText>,
    /// `http_idle_timeout = "60s"`.
    pub http_idle_timeout: Option<NumberOrText>,
    /// `http_max_connections = 1024`.
    pub http_max_connections: Option<usize>,
    /// `unauthenticated_rate = "20/s"` ("off": no limit).
    pub unauthenticated_rate: Option<NumberOrText>,
    /// `unauthenticated_burst = 200`.
    pub unauthenticated_burst: Option<u32>,
    /// `storage_min_free = "64MiB"`.
    pub storage_min_free: Option<NumberOrText>,
}

/// Settings given on the command line or in the environment (strongest).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML file with any of the settings below.
    #[arg(long, env = "SANDCRON_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SANDCRON_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the database and the admin token.
    #[arg(long, env = "SANDCRON_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Largest plugin upload ("32MiB").
    #[arg(long, env = "SANDCRON_MAX_PLUGIN_BYTES")]
    pub max_plugin_bytes: Option<String>,
    /// Plugin compilations at once, uploads and runs together (default 2); more wait.
    #[arg(long, env = "SANDCRON_MAX_CONCURRENT_COMPILES")]
    pub max_concurrent_compiles: Option<usize>,
    /// Memory for compiled plugins, by their serialized size (default "256MiB"; 0 keeps none); past it the least recently used are loaded again from disk when needed.
    #[arg(long, env = "SANDCRON_PLUGIN_CACHE_BYTES")]
    pub plugin_cache_bytes: Option<String>,
    /// Disk for compiled plugin code (default "2GiB"); past it the code used longest ago is deleted (never the newest) and compiled again when a run needs it.
    #[arg(long, env = "SANDCRON_ARTIFACT_CACHE_BYTES")]
    pub artifact_cache_bytes: Option<String>,
    /// Runs executing at once.
    #[arg(long, env = "SANDCRON_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
    /// Event streams (GET /v1/events) each tenant may hold open at once (default 16).
    #[arg(long, env = "SANDCRON_MAX_EVENT_STREAMS")]
    pub max_event_streams: Option<usize>,
    /// Daemon log format.
    #[arg(long, env = "SANDCRON_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Comma-separated CIDRs outbound HTTP may reach despite the SSRF wall.
    #[arg(long, env = "SANDCRON_HTTP_ALLOW_PRIVATE", value_delimiter = ',')]
    pub http_allow_private: Option<Vec<String>>,
    /// Comma-separated `name=address` pairs outbound HTTP resolves without DNS.
    #[arg(long, env = "SANDCRON_HTTP_RESOLVE", value_delimiter = ',')]
    pub http_resolve: Option<Vec<String>>,
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
    pub shutdown_grace: Option<String>,
    /// SMTP server for e-mail ("smtp://host:25", "smtps://user:pass@host").
    #[arg(long, env = "SANDCRON_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender of e-mails ("sandcron <jobs@example.com>").
    #[arg(long, env = "SANDCRON_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Delete finished runs older than this ("30d"; 0 keeps them).
    #[arg(long, env = "SANDCRON_RETENTION")]
    pub retention: Option<String>,
    /// Keep at most this many finished runs per job (0: no cap).
    #[arg(long, env = "SANDCRON_MAX_RUNS_PER_JOB")]
    pub max_runs_per_job: Option<usize>,
    /// How far ahead of its instant a fire is recorded and queued (default "2s"; at most 60s).
    #[arg(long, env = "SANDCRON_FIRE_AHEAD")]
    pub fire_ahead: Option<String>,
    /// Durability window: writes within it share one flush ("2ms"; 0 flushes each write; at most 1s).
    #[arg(long, env = "SANDCRON_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Memory for the database's page cache (default "32MiB", at least 1MiB); the rest of the data is read from disk when needed.
    #[arg(long, env = "SANDCRON_DB_CACHE")]
    pub db_cache: Option<String>,
    /// Instances kept in the pooling allocator (default: two per concurrent run; 0: none); runs beyond get on-demand instances.
    #[arg(long, env = "SANDCRON_POOL_SIZE")]
    pub pool_size: Option<u32>,
    /// Core instances the pool keeps per slot, on average (default 16; a Rust plugin takes 3, a Python one 14); a run that finds too few left goes on demand.
    #[arg(long, env = "SANDCRON_POOL_CORE_INSTANCES")]
    pub pool_core_instances: Option<u32>,
    /// How long a client may take to send a request's line and headers (default "10s").
    #[arg(long, env = "SANDCRON_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// How long a request's body may take to arrive, whole (default "60s").
    #[arg(long, env = "SANDCRON_HTTP_BODY_TIMEOUT")]
    pub http_body_timeout: Option<String>,
    /// How long a kept-alive connection may wait for its next request (default "60s").
    #[arg(long, env = "SANDCRON_HTTP_IDLE_TIMEOUT")]
    pub http_idle_timeout: Option<String>,
    /// HTTP connections open at once (default 1024; kept below the open-files limit).
    #[arg(long, env = "SANDCRON_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<usize>,
    /// Requests each client address may make without a valid token ("20/s", "600/m"; "off": no limit).
    #[arg(long, env = "SANDCRON_UNAUTHENTICATED_RATE")]
    pub unauthenticated_rate: Option<String>,
    /// Requests without a valid token an address may make at once before the rate applies (default 200).
    #[arg(long, env = "SANDCRON_UNAUTHENTICATED_BURST")]
    pub unauthenticated_burst: Option<u32>,
    /// Bytes the data volume must have free again before a daemon whose storage failed (a full disk) restarts to reopen it (default "64MiB").
    #[arg(long, env = "SANDCRON_STORAGE_MIN_FREE")]
    pub storage_min_free: Option<String>,
}

pub(super) fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}
