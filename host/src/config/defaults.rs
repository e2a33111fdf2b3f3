//! Every default, floor and ceiling of the settings, and the names of the
//! files the daemon keeps in its data dir.

use std::time::Duration;

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

/// Compiled code kept on disk when nothing says otherwise: ~50 Python
/// plugins' (35 MB each) or hundreds of Rust ones'.
pub const DEFAULT_ARTIFACT_CACHE: u64 = 2 << 30;

/// Plugin compilations at once when nothing says otherwise.
pub const DEFAULT_MAX_CONCURRENT_COMPILES: usize = 2;

/// Core instances per pool slot when nothing says otherwise: room for a
/// Python plugin (14) in every slot.
pub const DEFAULT_POOL_CORE_INSTANCES: u32 = 16;

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

/// Event streams (`GET /v1/events`) a tenant may hold open at once, by
/// default: each holds a connection for as long as it lasts, and the
/// server's connections are shared by every tenant.
pub const DEFAULT_MAX_EVENT_STREAMS: usize = 16;
/// Free bytes the data volume must have again before failing storage is
/// reopened (`storage_min_free`): room for sled's log segments (512 KiB
/// each) to grow for a while, so a daemon restarted into a volume with a
/// few kilobytes free does not fail again at once.
pub const DEFAULT_STORAGE_MIN_FREE: u64 = 64 << 20;
