//! Daemon configuration and every default in one place. Sources, strongest
//! first: command-line flags, `SANDCRON_*` environment variables, the TOML
//! file given by `--config`, then the defaults below.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::NumberOrText;

/// Default address of the HTTP API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8085";
/// Default data directory (sled database, admin token).
pub const DEFAULT_DATA_DIR: &str = "./sandcron-data";
/// Default daemon URL for the CLI.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8085";
/// File in the data directory holding the admin token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";
/// File in the data directory holding the secrets master key by default.
pub const SECRETS_KEY_FILE: &str = "secrets.key";

/// The shortest admin token the daemon accepts from config or env.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// The most `fire_ahead` may be.
pub const MAX_FIRE_AHEAD: Duration = Duration::from_secs(60);

/// sled's page cache when nothing says otherwise (see docs/benchmarks.md:
/// sled's own default, 1 GiB, lets it hold every page it has touched).
pub const DEFAULT_DB_CACHE: u64 = 32 << 20;

/// Compiled plugins kept in memory when nothing says otherwise, in bytes of
/// their serialized code.
pub const DEFAULT_PLUGIN_CACHE: u64 = 256 << 20;

/// Plugin compilations at once when nothing says otherwise.
pub const DEFAULT_MAX_CONCURRENT_COMPILES: usize = 2;

/// The least `db_cache` may be.
pub const MIN_DB_CACHE: u64 = 1 << 20;

/// The most `flush_interval` may be: acknowledgements wait for it.
pub const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Open HTTP connections by default: each holds a file descriptor, and the
/// daemon keeps others for the database, plugins and outbound requests.
pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 1024;

/// Requests a second each client address may make without a valid token,
/// by default: far above what health checks and the dashboard's first load
/// ask for, far below a flood.
pub const DEFAULT_UNAUTHENTICATED_RATE: f64 = 20.0;

/// Requests without a valid token an address may make at once before the
/// rate applies, by default.
pub const DEFAULT_UNAUTHENTICATED_BURST: u32 = 200;
/// Free bytes the data volume must have again before failing storage is
/// reopened (`storage_min_free`): room for sled's log segments (512 KiB
/// each) to grow for a while, so a daemon restarted into a volume with a
/// few kilobytes free does not fail again at once.
pub const DEFAULT_STORAGE_MIN_FREE: u64 = 64 << 20;

/// The daemon's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address the HTTP API binds (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where the database and the admin token live.
    pub data_dir: PathBuf,
    /// Largest plugin upload, bytes.
    pub max_plugin_bytes: u64,
    /// Plugin compilations at once (uploads and runs together); more wait.
    pub max_concurrent_compiles: usize,
    /// Compiled plugins kept in memory, in bytes of their serialized code;
    /// past it the least recently used are dropped and loaded again from
    /// the artifact cache when a run needs them (0: none kept).
    pub plugin_cache_bytes: u64,
    /// Largest JSON request body, bytes.
    pub max_request_bytes: u64,
    /// Runs executing at once across the daemon.
    pub max_concurrent_runs: usize,
    /// Defaults and ceilings for job limits.
    pub jobs: JobDefaults,
    /// `pretty` or `json` daemon logs.
    pub log_format: LogFormat,
    /// CIDR ranges outbound HTTP may reach despite the SSRF wall.
    pub http_allow_private: Vec<ipnet::IpNet>,
    /// Names outbound HTTP resolves to fixed addresses instead of asking
    /// DNS (like curl's `--resolve`); the SSRF wall still judges them.
    pub http_resolve: std::collections::HashMap<String, Vec<std::net::IpAddr>>,
    /// The secrets master key (64 hex digits or base64 of 32 bytes), when
    /// given directly rather than in a key file.
    pub secrets_key: Option<String>,
    /// The admin token, when given rather than made in the data dir.
    pub admin_token: Option<String>,
    /// The file holding the secrets master key; by default
    /// `<data-dir>/secrets.key`, created with mode 0600 on first start.
    pub secrets_key_file: Option<PathBuf>,
    /// How long a stopping daemon waits for running runs.
    pub shutdown_grace: Duration,
    /// The SMTP server for e-mail notifications and digests
    /// (`smtp://host:25`, `smtp://user:pass@host:587?tls=required`,
    /// `smtps://host:465`); None turns e-mail off.
    pub smtp_url: Option<String>,
    /// The sender of sandcron's e-mails.
    pub smtp_from: String,
    /// Finished runs (records, output, logs) older than this are deleted
    /// (zero keeps them forever).
    pub retention: Duration,
    /// Finished runs of a job beyond its newest this many are deleted (zero:
    /// no cap).
    pub max_runs_per_job: usize,
    /// How far ahead of its instant a fire is recorded and queued, at
    /// least (passes wake at half past a second, so up to a second more),
    /// so its run starts on the instant instead of after the write (0: at
    /// the instant). A job changed meanwhile has such fires withdrawn.
    pub fire_ahead: Duration,
    /// The durability window: flushes start at least this far apart, so
    /// the writes of many runs and fires share one (0: each write is
    /// flushed as soon as the previous flush is over). An answer that
    /// waits for durability may wait this long under load.
    pub flush_interval: Duration,
    /// Bytes of the database's pages kept in memory (sled's page cache);
    /// past it, the least used pages are read from disk again when needed.
    pub db_cache: u64,
    /// Instances the pooling allocator keeps slots for (None: two per
    /// concurrent run; 0: no pool). Runs beyond them get on-demand instances.
    pub pool_size: Option<u32>,
    /// Bytes that must be available on the data volume again before a
    /// daemon whose storage failed restarts to reopen it.
    pub storage_min_free: u64,
    /// The HTTP server's limits on connections and slow clients.
    pub http: HttpLimits,
}

/// What one HTTP client may hold of the server.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpLimits {
    /// How long a connection may take to send a request's head (the request
    /// line and headers), counted from when it connected or, on a kept-alive
    /// connection, from the first byte of the request.
    pub header_timeout: Duration,
    /// How long a request's body may take to arrive, whole.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Connections open at once; past it, the connection that has waited
    /// longest for a request is closed to make room, or the newcomer is
    /// refused when every connection is busy.
    pub max_connections: usize,
    /// Requests a second each client address may make without a valid token
    /// (0: no limit).
    pub unauthenticated_rate: f64,
    /// How many such requests an address may make at once.
    pub unauthenticated_burst: u32,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            unauthenticated_rate: DEFAULT_UNAUTHENTICATED_RATE,
            unauthenticated_burst: DEFAULT_UNAUTHENTICATED_BURST,
        }
    }
}

/// Per-run limits a job gets when it names none, and the most it may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDefaults {
    /// Fuel budget; None runs unmetered (the timeout bounds compute): a
    /// CPU-bound plugin ran 2.1x as long metered in the cpu bench.
    pub fuel: Option<u64>,
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Linear memory + tables, bytes.
    pub memory: u64,
    /// Output cap, bytes.
    pub output: u64,
    /// Captured log cap, bytes.
    pub logs: u64,
    /// Most fuel a job may ask for; with a ceiling every job is metered.
    pub max_fuel: Option<u64>,
    /// Largest timeout a job may ask for.
    pub max_timeout: Duration,
    /// Largest memory a job may ask for (also the pooling allocator's slot size).
    pub max_memory: u64,
    /// Largest output cap a job may ask for.
    pub max_output: u64,
    /// Largest job input, bytes of JSON.
    pub max_input_bytes: usize,
}

/// Daemon log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_plugin_bytes: 32 << 20,
            max_concurrent_compiles: DEFAULT_MAX_CONCURRENT_COMPILES,
            plugin_cache_bytes: DEFAULT_PLUGIN_CACHE,
            max_request_bytes: 2 << 20,
            max_concurrent_runs: 32,
            jobs: JobDefaults {
                fuel: None,
                timeout: Duration::from_secs(30),
                memory: 64 << 20,
                output: 1 << 20,
                logs: 1 << 20,
                max_fuel: None,
                max_timeout: Duration::from_secs(24 * 3600),
                max_memory: 1 << 30,
                max_output: 64 << 20,
                max_input_bytes: 1 << 20,
            },
            log_format: LogFormat::Pretty,
            http_allow_private: Vec::new(),
            http_resolve: std::collections::HashMap::new(),
            secrets_key: None,
            secrets_key_file: None,
            admin_token: None,
            shutdown_grace: Duration::from_secs(10),
            smtp_url: None,
            smtp_from: "sandcron <sandcron@localhost>".to_string(),
            retention: Duration::from_secs(30 * 24 * 3600),
            max_runs_per_job: 10_000,
            fire_ahead: Duration::from_secs(2),
            flush_interval: Duration::from_millis(2),
            db_cache: DEFAULT_DB_CACHE,
            pool_size: None,
            http: HttpLimits::default(),
            storage_min_free: DEFAULT_STORAGE_MIN_FREE,
        }
    }
}

impl Config {
    /// The job defaults and ceilings.
    pub fn job_defaults(&self) -> JobDefaults {
        self.jobs.clone()
    }

    /// The sled database directory inside the data dir.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("db")
    }

    /// The admin token file inside the data dir.
    pub fn admin_token_path(&self) -> PathBuf {
        self.data_dir.join(ADMIN_TOKEN_FILE)
    }

    /// The secrets master key file.
    pub fn secrets_key_path(&self) -> PathBuf {
        self.secrets_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join(SECRETS_KEY_FILE))
    }
}

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
    /// `max_request_bytes = "2MiB"`.
    pub max_request_bytes: Option<NumberOrText>,
    /// `max_concurrent_runs = 16`.
    pub max_concurrent_runs: Option<usize>,
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
    /// Runs executing at once.
    #[arg(long, env = "SANDCRON_MAX_CONCURRENT_RUNS")]
    pub max_concurrent_runs: Option<usize>,
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

/// A setting that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The TOML file is not valid.
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("{key}: {message}")]
    Invalid {
        /// The setting.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn invalid(key: &'static str) -> impl Fn(String) -> ConfigError {
    move |message| ConfigError::Invalid { key, message }
}

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
        if let Some(value) = file.max_request_bytes {
            config.max_request_bytes = value.to_size().map_err(invalid("max_request_bytes"))?;
        }
        if let Some(runs) = self.max_concurrent_runs.or(file.max_concurrent_runs) {
            if runs == 0 {
                return Err(invalid("max_concurrent_runs")("must be at least 1".to_string()));
            }
            config.max_concurrent_runs = runs;
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

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.to_path_buf(),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandcron.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nmax_plugin_bytes = \"1MiB\"\ndefault_timeout = \"5s\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path.clone()),
            listen: Some("127.0.0.1:0".to_string()),
            ..ConfigArgs::default()
        };
        let config = args.resolve().unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:0");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.max_plugin_bytes, 1 << 20);
        assert_eq!(config.jobs.timeout, Duration::from_secs(5));
        assert_eq!(config.jobs.memory, 64 << 20);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let args = ConfigArgs {
            config: Some(path),
            ..ConfigArgs::default()
        };
        assert!(matches!(args.resolve(), Err(ConfigError::Parse { .. })));
        let args = ConfigArgs {
            listen: Some("nowhere".to_string()),
            ..ConfigArgs::default()
        };
        assert!(matches!(
            args.resolve(),
            Err(ConfigError::Invalid { key: "listen", .. })
        ));
    }

    #[test]
    fn fire_ahead_reads_a_duration_and_has_a_ceiling() {
        let with = |text: &str| {
            ConfigArgs {
                fire_ahead: Some(text.to_string()),
                ..ConfigArgs::default()
            }
            .resolve()
        };
        assert_eq!(with("250ms").unwrap().fire_ahead, Duration::from_millis(250));
        assert_eq!(with("0").unwrap().fire_ahead, Duration::ZERO);
        match with("2m") {
            Err(ConfigError::Invalid {
                key: "fire_ahead",
                message,
            }) => assert!(message.contains("1m"), "{message}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn storage_min_free_reads_a_size_from_a_flag_or_the_file() {
        let with = |text: &str| {
            ConfigArgs {
                storage_min_free: Some(text.to_string()),
                ..ConfigArgs::default()
            }
            .resolve()
        };
        assert_eq!(Config::default().storage_min_free, DEFAULT_STORAGE_MIN_FREE);
        assert_eq!(with("16MiB").unwrap().storage_min_free, 16 << 20);
        assert_eq!(with("0").unwrap().storage_min_free, 0);
        assert!(matches!(
            with("plenty"),
            Err(ConfigError::Invalid {
                key: "storage_min_free",
                ..
            })
        ));
        let file: ConfigFile = toml::from_str(r#"storage_min_free = "1GiB""#).unwrap();
        assert_eq!(file.storage_min_free.unwrap().to_size().unwrap(), 1 << 30);
    }

    #[test]
    fn db_cache_reads_a_size_and_has_a_floor() {
        let with = |text: &str| {
            ConfigArgs {
                db_cache: Some(text.to_string()),
                ..ConfigArgs::default()
            }
            .resolve()
        };
        assert_eq!(Config::default().db_cache, DEFAULT_DB_CACHE);
        assert_eq!(with("64MiB").unwrap().db_cache, 64 << 20);
        assert_eq!(with("1048576").unwrap().db_cache, 1 << 20);
        for refused in ["1000", "lots"] {
            assert!(
                matches!(with(refused), Err(ConfigError::Invalid { key: "db_cache", .. })),
                "{refused}"
            );
        }
    }

    #[test]
    fn plugin_compiles_and_cache_read_from_flags_and_the_file() {
        let defaults = Config::default();
        assert_eq!(defaults.max_concurrent_compiles, DEFAULT_MAX_CONCURRENT_COMPILES);
        assert_eq!(defaults.plugin_cache_bytes, DEFAULT_PLUGIN_CACHE);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandcron.toml");
        std::fs::write(&path, "max_concurrent_compiles = 4\nplugin_cache_bytes = \"64MiB\"\n").unwrap();
        let from_file = ConfigArgs {
            config: Some(path.clone()),
            ..ConfigArgs::default()
        };
        let config = from_file.resolve().unwrap();
        assert_eq!(
            (config.max_concurrent_compiles, config.plugin_cache_bytes),
            (4, 64 << 20)
        );
        let flags = ConfigArgs {
            config: Some(path),
            max_concurrent_compiles: Some(1),
            plugin_cache_bytes: Some("0".to_string()),
            ..ConfigArgs::default()
        };
        let config = flags.resolve().unwrap();
        assert_eq!((config.max_concurrent_compiles, config.plugin_cache_bytes), (1, 0));
        let none = ConfigArgs {
            max_concurrent_compiles: Some(0),
            ..ConfigArgs::default()
        };
        assert!(matches!(
            none.resolve(),
            Err(ConfigError::Invalid {
                key: "max_concurrent_compiles",
                ..
            })
        ));
        let bad = ConfigArgs {
            plugin_cache_bytes: Some("plenty".to_string()),
            ..ConfigArgs::default()
        };
        assert!(matches!(
            bad.resolve(),
            Err(ConfigError::Invalid {
                key: "plugin_cache_bytes",
                ..
            })
        ));
    }

    #[test]
    fn flush_interval_reads_a_duration_zero_included_and_has_a_ceiling() {
        let with = |text: &str| {
            ConfigArgs {
                flush_interval: Some(text.to_string()),
                ..ConfigArgs::default()
            }
            .resolve()
        };
        assert_eq!(Config::default().flush_interval, Duration::from_millis(2));
        assert_eq!(with("5ms").unwrap().flush_interval, Duration::from_millis(5));
        assert_eq!(with("0").unwrap().flush_interval, Duration::ZERO);
        assert!(matches!(
            with("2s"),
            Err(ConfigError::Invalid {
                key: "flush_interval",
                ..
            })
        ));
        assert!(matches!(
            with("soon"),
            Err(ConfigError::Invalid {
                key: "flush_interval",
                ..
            })
        ));
    }

    #[test]
    fn outbound_settings_read_ranges_addresses_and_pinned_names() {
        let args = ConfigArgs {
            http_allow_private: Some(vec!["127.0.0.0/8".into(), "::1".into(), " ".into()]),
            http_resolve: Some(vec!["Internal.Test=127.0.0.1".into(), "internal.test=[::1]".into()]),
            ..ConfigArgs::default()
        };
        let config = args.resolve().unwrap();
        let ranges: Vec<String> = config.http_allow_private.iter().map(ToString::to_string).collect();
        assert_eq!(ranges, ["127.0.0.0/8", "::1/128"]);
        let pinned: Vec<String> = config.http_resolve["internal.test"]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(pinned, ["127.0.0.1", "::1"]);
        for (ranges, resolve, key) in [
            (Some(vec!["10.0.0.0/33".to_string()]), None, "http_allow_private"),
            (Some(vec!["localhost".to_string()]), None, "http_allow_private"),
            (None, Some(vec!["no-equals".to_string()]), "http_resolve"),
            (None, Some(vec!["a.test=not-an-ip".to_string()]), "http_resolve"),
        ] {
            let args = ConfigArgs {
                http_allow_private: ranges,
                http_resolve: resolve,
                ..ConfigArgs::default()
            };
            match args.resolve() {
                Err(ConfigError::Invalid { key: found, .. }) => assert_eq!(found, key),
                other => panic!("expected {key} to be refused: {other:?}"),
            }
        }
    }

    #[test]
    fn http_limits_read_durations_counts_and_rates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandcron.toml");
        std::fs::write(
            &path,
            "http_header_timeout = \"5s\"\nhttp_idle_timeout = 30\nhttp_max_connections = 64\nunauthenticated_rate = \"600/m\"\n",
        )
        .unwrap();
        let args = ConfigArgs {
            config: Some(path),
            http_header_timeout: Some("2s".to_string()),
            unauthenticated_burst: Some(7),
            ..ConfigArgs::default()
        };
        let http = args.resolve().unwrap().http;
        assert_eq!(http.header_timeout, Duration::from_secs(2), "the flag beats the file");
        assert_eq!(http.idle_timeout, Duration::from_secs(30));
        assert_eq!(http.body_timeout, HttpLimits::default().body_timeout);
        assert_eq!(http.max_connections, 64);
        assert_eq!(http.unauthenticated_rate, 10.0);
        assert_eq!(http.unauthenticated_burst, 7);
        let off = ConfigArgs {
            unauthenticated_rate: Some("off".to_string()),
            ..ConfigArgs::default()
        };
        assert_eq!(off.resolve().unwrap().http.unauthenticated_rate, 0.0);
        for (args, key) in [
            (
                ConfigArgs {
                    http_header_timeout: Some("0".to_string()),
                    ..ConfigArgs::default()
                },
                "http_header_timeout",
            ),
            (
                ConfigArgs {
                    http_body_timeout: Some("soon".to_string()),
                    ..ConfigArgs::default()
                },
                "http_body_timeout",
            ),
            (
                ConfigArgs {
                    http_max_connections: Some(0),
                    ..ConfigArgs::default()
                },
                "http_max_connections",
            ),
            (
                ConfigArgs {
                    unauthenticated_rate: Some("20/day".to_string()),
                    ..ConfigArgs::default()
                },
                "unauthenticated_rate",
            ),
            (
                ConfigArgs {
                    unauthenticated_burst: Some(0),
                    ..ConfigArgs::default()
                },
                "unauthenticated_burst",
            ),
        ] {
            match args.resolve() {
                Err(ConfigError::Invalid { key: found, .. }) => assert_eq!(found, key),
                other => panic!("expected {key} to be refused: {other:?}"),
            }
        }
    }
}
