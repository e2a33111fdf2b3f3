//! The settings' sources and how they merge, table by table.

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
    assert_eq!(defaults.artifact_cache_bytes, DEFAULT_ARTIFACT_CACHE);
    assert_eq!(defaults.pool_core_instances, DEFAULT_POOL_CORE_INSTANCES);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sandcron.toml");
    std::fs::write(
        &path,
        "max_concurrent_compiles = 4\nplugin_cache_bytes = \"64MiB\"\nartifact_cache_bytes = \"1GiB\"\npool_core_instances = 24\n",
    )
    .unwrap();
    let from_file = ConfigArgs {
        config: Some(path.clone()),
        ..ConfigArgs::default()
    };
    let config = from_file.resolve().unwrap();
    assert_eq!(
        (config.max_concurrent_compiles, config.plugin_cache_bytes),
        (4, 64 << 20)
    );
    assert_eq!((config.artifact_cache_bytes, config.pool_core_instances), (1 << 30, 24));
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
