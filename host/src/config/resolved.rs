//! The configuration the daemon runs with, after every source is merged:
//! [`Config`] and its parts, and the error of a setting that cannot be read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::defaults::*;

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
    /// Compiled code kept on disk, bytes; past it the code used longest ago
    /// is deleted and compiled again when a run needs it.
    pub artifact_cache_bytes: u64,
    /// Largest JSON request body, bytes.
    pub max_request_bytes: u64,
    /// Runs executing at once across the daemon.
    pub max_concurrent_runs: usize,
    /// Event streams each tenant may hold open at once.
    pub max_event_streams: usize,
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
    /// The PostgreSQL database holding all state, shared by the nodes of a
    /// cluster; None keeps it in sled in the data dir.
    pub database_url: Option<String>,
    /// This node's name in a cluster; None makes one from the host name
    /// and a random suffix at start.
    pub node_id: Option<String>,
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
    /// Core instances the pool keeps per slot, on average: a component
    /// needs one per core module it instantiates (a Rust plugin 3, a
    /// QuickJS one 9, a Python one 14).
    pub pool_core_instances: u32,
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
    /// Tape cap of a recorded run, bytes.
    pub record_bytes: u64,
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
            artifact_cache_bytes: DEFAULT_ARTIFACT_CACHE,
            max_request_bytes: 2 << 20,
            max_concurrent_runs: 32,
            max_event_streams: DEFAULT_MAX_EVENT_STREAMS,
            jobs: JobDefaults {
                fuel: None,
                timeout: Duration::from_secs(30),
                memory: 64 << 20,
                output: 1 << 20,
                logs: 1 << 20,
                record_bytes: 1 << 20,
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
            database_url: None,
            node_id: None,
            retention: Duration::from_secs(30 * 24 * 3600),
            max_runs_per_job: 10_000,
            fire_ahead: Duration::from_secs(2),
            flush_interval: Duration::from_millis(2),
            db_cache: DEFAULT_DB_CACHE,
            pool_size: None,
            pool_core_instances: DEFAULT_POOL_CORE_INSTANCES,
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

pub(super) fn invalid(key: &'static str) -> impl Fn(String) -> ConfigError {
    move |message| ConfigError::Invalid { key, message }
}
