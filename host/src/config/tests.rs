//! The settings' sources and how they merge, through the real path: the
//! flags and variables as clap reads them for `sandcron serve`, the TOML
//! file, the defaults, then the checks.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;

/// `sandcron serve`'s arguments, as the binary parses them.
#[derive(Parser)]
struct Serve {
    #[command(flatten)]
    args: ConfigArgs,
}

/// Held while a test parses: clap reads every `SANDCRON_*` variable, and
/// the precedence test sets some of them.
static ENVIRONMENT: Mutex<()> = Mutex::new(());

/// The configuration `sandcron serve FLAGS` would run with; a refusal as
/// its message (clap's for a value that does not parse, ours otherwise).
fn serve(flags: &[&str]) -> Result<Config, String> {
    let _environment = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    parse(flags)
}

fn parse(flags: &[&str]) -> Result<Config, String> {
    let serve = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
        .map_err(|error| error.to_string())?;
    serve.args.resolve().map_err(|error| error.to_string())
}

/// The refusal of `sandcron serve FLAGS`, as ours ([`ConfigError`]).
fn refused(flags: &[&str]) -> ConfigError {
    let _environment = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let serve = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).expect("flags that parse");
    serve.args.resolve().expect_err("a refused configuration")
}

/// A TOML file with `text` in a temp dir (kept while the dir lives).
fn file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandcron.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn flags_beat_the_file_and_the_file_beats_defaults() {
    let (_dir, path) = file(
        "listen = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/x\"\nmax_plugin_bytes = \"1MiB\"\ndefault_timeout = \"5s\"\n",
    );
    let config = serve(&["--config", &path, "--listen", "127.0.0.1:0"]).unwrap();
    assert_eq!(config.listen.to_string(), "127.0.0.1:0");
    assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(config.max_plugin_bytes, 1 << 20);
    assert_eq!(config.jobs.timeout, Duration::from_secs(5));
    assert_eq!(config.jobs.memory, 64 << 20);
}

#[test]
fn unknown_keys_and_bad_values_are_refused_naming_the_setting() {
    let (_dir, path) = file("lisen = \"x\"\n");
    let error = serve(&["--config", &path]).expect_err("an unknown key");
    assert!(error.contains("lisen"), "{error}");
    let (_dir, path) = file("listen = \"nowhere\"\n");
    let error = serve(&["--config", &path]).expect_err("a bad address");
    assert!(error.contains("listen"), "{error}");
    let error = serve(&["--listen", "nowhere"]).expect_err("a bad address");
    assert!(error.contains("--listen"), "{error}");
}

#[test]
fn fire_ahead_reads_a_duration_and_has_a_ceiling() {
    assert_eq!(
        serve(&["--fire-ahead", "250ms"]).unwrap().fire_ahead,
        Duration::from_millis(250)
    );
    assert_eq!(serve(&["--fire-ahead", "0"]).unwrap().fire_ahead, Duration::ZERO);
    match refused(&["--fire-ahead", "2m"]) {
        ConfigError::Invalid {
            key: "fire_ahead",
            message,
        } => assert!(message.contains("1m"), "{message}"),
        other => panic!("expected fire_ahead to be refused, got {other:?}"),
    }
}

#[test]
fn storage_min_free_reads_a_size_from_a_flag_or_the_file() {
    assert_eq!(Config::default().storage_min_free, DEFAULT_STORAGE_MIN_FREE);
    assert_eq!(
        serve(&["--storage-min-free", "16MiB"]).unwrap().storage_min_free,
        16 << 20
    );
    assert_eq!(serve(&["--storage-min-free", "0"]).unwrap().storage_min_free, 0);
    let error = serve(&["--storage-min-free", "plenty"]).expect_err("not a size");
    assert!(error.contains("--storage-min-free"), "{error}");
    let (_dir, path) = file("storage_min_free = \"1GiB\"\n");
    assert_eq!(serve(&["--config", &path]).unwrap().storage_min_free, 1 << 30);
}

#[test]
fn db_cache_reads_a_size_and_has_a_floor() {
    assert_eq!(Config::default().db_cache, DEFAULT_DB_CACHE);
    assert_eq!(serve(&["--db-cache", "64MiB"]).unwrap().db_cache, 64 << 20);
    assert_eq!(serve(&["--db-cache", "1048576"]).unwrap().db_cache, 1 << 20);
    assert!(matches!(
        refused(&["--db-cache", "1000"]),
        ConfigError::Invalid { key: "db_cache", .. }
    ));
    assert!(
        serve(&["--db-cache", "lots"])
            .expect_err("not a size")
            .contains("--db-cache")
    );
}

#[test]
fn plugin_compiles_and_cache_read_from_flags_and_the_file() {
    let defaults = Config::default();
    assert_eq!(defaults.max_concurrent_compiles, DEFAULT_MAX_CONCURRENT_COMPILES);
    assert_eq!(defaults.plugin_cache_bytes, DEFAULT_PLUGIN_CACHE);
    assert_eq!(defaults.artifact_cache_bytes, DEFAULT_ARTIFACT_CACHE);
    assert_eq!(defaults.pool_core_instances, DEFAULT_POOL_CORE_INSTANCES);
    let (_dir, path) = file(
        "max_concurrent_compiles = 4\nplugin_cache_bytes = \"64MiB\"\nartifact_cache_bytes = \"1GiB\"\npool_core_instances = 24\n",
    );
    let config = serve(&["--config", &path]).unwrap();
    assert_eq!(
        (config.max_concurrent_compiles, config.plugin_cache_bytes),
        (4, 64 << 20)
    );
    assert_eq!((config.artifact_cache_bytes, config.pool_core_instances), (1 << 30, 24));
    let config = serve(&[
        "--config",
        &path,
        "--max-concurrent-compiles",
        "1",
        "--plugin-cache-bytes",
        "0",
    ])
    .unwrap();
    assert_eq!((config.max_concurrent_compiles, config.plugin_cache_bytes), (1, 0));
    assert!(matches!(
        refused(&["--max-concurrent-compiles", "0"]),
        ConfigError::Invalid {
            key: "max_concurrent_compiles",
            ..
        }
    ));
    let error = serve(&["--plugin-cache-bytes", "plenty"]).expect_err("not a size");
    assert!(error.contains("--plugin-cache-bytes"), "{error}");
}

#[test]
fn flush_interval_reads_a_duration_zero_included_and_has_a_ceiling() {
    assert_eq!(Config::default().flush_interval, Duration::from_millis(2));
    assert_eq!(
        serve(&["--flush-interval", "5ms"]).unwrap().flush_interval,
        Duration::from_millis(5)
    );
    assert_eq!(
        serve(&["--flush-interval", "0"]).unwrap().flush_interval,
        Duration::ZERO
    );
    assert!(matches!(
        refused(&["--flush-interval", "2s"]),
        ConfigError::Invalid {
            key: "flush_interval",
            ..
        }
    ));
    assert!(
        serve(&["--flush-interval", "soon"])
            .expect_err("not a duration")
            .contains("--flush-interval")
    );
}

#[test]
fn outbound_settings_read_ranges_addresses_and_pinned_names() {
    let config = serve(&[
        "--http-allow-private",
        "127.0.0.0/8, ::1",
        "--http-resolve",
        "Internal.Test=127.0.0.1,internal.test=[::1]",
    ])
    .unwrap();
    let ranges: Vec<String> = config.http_allow_private.iter().map(ToString::to_string).collect();
    assert_eq!(ranges, ["127.0.0.0/8", "::1/128"]);
    let pinned: Vec<String> = config.http_resolve["internal.test"]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(pinned, ["127.0.0.1", "::1"]);
    for (flag, value) in [
        ("--http-allow-private", "10.0.0.0/33"),
        ("--http-allow-private", "localhost"),
        ("--http-resolve", "no-equals"),
        ("--http-resolve", "a.test=not-an-ip"),
    ] {
        let error = serve(&[flag, value]).expect_err("a refused value");
        assert!(error.contains(flag), "{flag} {value}: {error}");
    }
    let (_dir, path) = file("http_allow_private = [\"10.0.0.0/8\"]\nhttp_resolve = [\"db.test=10.0.0.9\"]\n");
    let config = serve(&["--config", &path]).unwrap();
    assert_eq!(config.http_allow_private[0].to_string(), "10.0.0.0/8");
    assert_eq!(config.http_resolve["db.test"][0].to_string(), "10.0.0.9");
}

#[test]
fn http_limits_read_durations_counts_and_rates() {
    let (_dir, path) = file(
        "http_header_timeout = \"5s\"\nhttp_idle_timeout = 30\nhttp_max_connections = 64\nunauthenticated_rate = \"600/m\"\n",
    );
    let http = serve(&[
        "--config",
        &path,
        "--http-header-timeout",
        "2s",
        "--unauthenticated-burst",
        "7",
    ])
    .unwrap()
    .http;
    assert_eq!(http.header_timeout, Duration::from_secs(2), "the flag beats the file");
    assert_eq!(http.idle_timeout, Duration::from_secs(30));
    assert_eq!(http.body_timeout, HttpLimits::default().body_timeout);
    assert_eq!(http.max_connections, 64);
    assert_eq!(http.unauthenticated_rate, 10.0);
    assert_eq!(http.unauthenticated_burst, 7);
    let off = serve(&["--unauthenticated-rate", "off"]).unwrap();
    assert_eq!(off.http.unauthenticated_rate, 0.0);
    for (flags, key) in [
        (["--http-header-timeout", "0"], "http_header_timeout"),
        (["--http-max-connections", "0"], "http_max_connections"),
        (["--unauthenticated-burst", "0"], "unauthenticated_burst"),
    ] {
        match refused(&flags) {
            ConfigError::Invalid { key: found, .. } => assert_eq!(found, key),
            other => panic!("expected {key} to be refused: {other:?}"),
        }
    }
    for flags in [["--http-body-timeout", "soon"], ["--unauthenticated-rate", "20/day"]] {
        let error = serve(&flags).expect_err("a value that does not parse");
        assert!(error.contains(flags[0]), "{error}");
    }
}

#[test]
fn job_defaults_and_ceilings_are_settings_like_any_other_and_must_agree() {
    let config = serve(&[
        "--default-fuel",
        "1000",
        "--default-timeout",
        "5s",
        "--default-memory",
        "16MiB",
        "--max-memory",
        "128MiB",
        "--max-request-bytes",
        "4MiB",
    ])
    .unwrap();
    assert_eq!(config.jobs.fuel, Some(1000));
    assert_eq!(config.jobs.timeout, Duration::from_secs(5));
    assert_eq!((config.jobs.memory, config.jobs.max_memory), (16 << 20, 128 << 20));
    assert_eq!(config.max_request_bytes, 4 << 20);
    assert!(matches!(
        refused(&["--default-memory", "2GiB"]),
        ConfigError::Invalid {
            key: "default_memory",
            ..
        }
    ));
    assert!(matches!(
        refused(&["--default-fuel", "0"]),
        ConfigError::Invalid {
            key: "default_fuel",
            ..
        }
    ));
}

/// Every setting with three different values: for the file (as TOML),
/// for a flag, and for the environment.
const EVERY_SETTING: &[(&str, &str, &str, &str)] = &[
    ("listen", "\"127.0.0.1:9001\"", "127.0.0.1:9002", "127.0.0.1:9003"),
    ("data_dir", "\"/tmp/a\"", "/tmp/b", "/tmp/c"),
    ("max_plugin_bytes", "\"1MiB\"", "2MiB", "3MiB"),
    ("max_concurrent_compiles", "3", "4", "5"),
    ("plugin_cache_bytes", "\"1MiB\"", "2MiB", "3MiB"),
    ("artifact_cache_bytes", "\"1MiB\"", "2MiB", "3MiB"),
    ("max_request_bytes", "\"1MiB\"", "3MiB", "4MiB"),
    ("max_concurrent_runs", "3", "4", "5"),
    ("max_event_streams", "3", "4", "5"),
    ("default_fuel", "1000", "2000", "3000"),
    ("default_timeout", "\"5s\"", "6s", "7s"),
    ("default_memory", "\"8MiB\"", "16MiB", "32MiB"),
    ("default_output", "\"8KiB\"", "16KiB", "32KiB"),
    ("max_log_bytes", "\"8KiB\"", "16KiB", "32KiB"),
    ("max_record_bytes", "\"8KiB\"", "16KiB", "32KiB"),
    ("max_timeout", "\"1h\"", "2h", "3h"),
    ("max_memory", "\"256MiB\"", "512MiB", "768MiB"),
    ("log_format", "\"json\"", "pretty", "json"),
    ("http_allow_private", "[\"10.0.0.0/8\"]", "10.1.0.0/16", "10.2.0.0/16"),
    (
        "http_resolve",
        "[\"a.test=10.0.0.1\"]",
        "b.test=10.0.0.2",
        "c.test=10.0.0.3",
    ),
    ("secrets_key", "\"key-a\"", "key-b", "key-c"),
    ("secrets_key_file", "\"/tmp/key-a\"", "/tmp/key-b", "/tmp/key-c"),
    (
        "admin_token",
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        "cccccccccccccccccccccccccccccccccccc",
    ),
    ("shutdown_grace", "\"1s\"", "2s", "3s"),
    ("smtp_url", "\"smtp://a.test\"", "smtp://b.test", "smtp://c.test"),
    ("smtp_from", "\"a@test\"", "b@test", "c@test"),
    ("database_url", "\"postgres://a/x\"", "postgres://b/x", "postgres://c/x"),
    ("node_id", "\"a\"", "b", "c"),
    ("retention", "\"1d\"", "2d", "3d"),
    ("max_runs_per_job", "3", "4", "5"),
    ("fire_ahead", "\"1s\"", "3s", "4s"),
    ("flush_interval", "\"1ms\"", "3ms", "4ms"),
    ("db_cache", "\"2MiB\"", "3MiB", "4MiB"),
    ("pool_size", "3", "4", "5"),
    ("pool_core_instances", "3", "4", "5"),
    ("http_header_timeout", "\"1s\"", "2s", "3s"),
    ("http_body_timeout", "\"1s\"", "2s", "3s"),
    ("http_idle_timeout", "\"1s\"", "2s", "3s"),
    ("http_max_connections", "3", "4", "5"),
    ("unauthenticated_rate", "\"1/s\"", "2/s", "3/s"),
    ("unauthenticated_burst", "3", "4", "5"),
    ("storage_min_free", "\"1MiB\"", "2MiB", "3MiB"),
];

#[test]
fn every_setting_is_a_flag_a_variable_and_a_file_key_flags_first_then_variables_then_the_file() {
    let listed: std::collections::BTreeSet<String> = EVERY_SETTING.iter().map(|(key, ..)| key.to_string()).collect();
    let settings: std::collections::BTreeSet<String> = Serve::command()
        .get_arguments()
        .map(|argument| argument.get_id().to_string())
        .filter(|id| id != "config")
        .collect();
    assert_eq!(listed, settings, "every setting is in the table");

    let _environment = ENVIRONMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let shown = |config: Result<Config, String>| format!("{:?}", config.expect("a configuration"));
    let defaults = format!("{:?}", Config::default());
    for (key, in_file, flag_value, env_value) in EVERY_SETTING {
        let (_dir, path) = file(&format!("{key} = {in_file}\n"));
        let flag = format!("--{}", key.replace('_', "-"));
        let variable = format!("SANDCRON_{}", key.to_ascii_uppercase());
        let from_file = shown(parse(&["--config", &path]));
        let from_flag = shown(parse(&[&flag, flag_value]));
        assert_ne!(from_file, defaults, "{key}: the file sets it");
        assert_ne!(from_flag, from_file, "{key}: the values differ");
        assert_eq!(
            shown(parse(&["--config", &path, &flag, flag_value])),
            from_flag,
            "{key}: the flag beats the file"
        );
        // SAFETY: the lock keeps every other test of this module from
        // reading the environment meanwhile, and no other code reads it.
        unsafe { std::env::set_var(&variable, flag_value) };
        let from_variable = shown(parse(&["--config", &path]));
        unsafe { std::env::set_var(&variable, env_value) };
        let flag_over_variable = shown(parse(&[&flag, flag_value]));
        unsafe { std::env::remove_var(&variable) };
        assert_eq!(
            from_variable, from_flag,
            "{key}: {variable} beats the file and reads as the flag"
        );
        assert_eq!(flag_over_variable, from_flag, "{key}: the flag beats {variable}");
    }
}
