//! What the in-process daemon benches share: a daemon on a temp dir with
//! settings from the environment, bulk job creation, the noop plugin, and
//! the figures (percentiles, RSS, CPU time) read off runs and the process.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sandcron::clock::SystemClock;
use sandcron::config::Config;
use sandcron::daemon::Daemon;
use sandcron::model::validate::{parse_spec, validate};
use sandcron::model::{DEFAULT_TENANT, Run};
use sandcron::store::RunFilter;
use serde_json::Value;

/// The default config on `dir`; these variables try other settings:
/// `FIRE_AHEAD=500ms`, `FLUSH_INTERVAL=0`, `MAX_CONCURRENT_RUNS=16`,
/// `DB_CACHE=64MiB`.
pub fn config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    let duration = |name: &str| {
        std::env::var(name)
            .ok()
            .map(|text| sandcron::units::parse_duration(&text).unwrap_or_else(|error| panic!("{name}: {error}")))
    };
    if let Some(fire_ahead) = duration("FIRE_AHEAD") {
        config.fire_ahead = fire_ahead;
    }
    if let Some(flush_interval) = duration("FLUSH_INTERVAL") {
        config.flush_interval = flush_interval;
    }
    if let Ok(text) = std::env::var("DB_CACHE") {
        config.db_cache = sandcron::units::parse_size(&text).expect("DB_CACHE");
    }
    if let Ok(text) = std::env::var("MAX_CONCURRENT_RUNS") {
        config.max_concurrent_runs = text.parse().expect("MAX_CONCURRENT_RUNS");
    }
    config
}

/// Opens and starts a daemon on `dir`.
pub async fn open(dir: &Path) -> Daemon {
    let daemon = Daemon::open(&config(dir), Arc::new(SystemClock)).expect("open");
    daemon.start().await.expect("start");
    daemon
}

/// Validates and stores jobs of the default tenant, then wakes the scheduler.
pub fn add_jobs(daemon: &Daemon, specs: impl Iterator<Item = Value>) -> usize {
    // Thousands of writes: off this runtime thread, so the daemon's tasks
    // on it (the tick the burst bench measures) are not held up.
    tokio::task::block_in_place(|| insert_jobs(daemon, specs))
}

fn insert_jobs(daemon: &Daemon, specs: impl Iterator<Item = Value>) -> usize {
    let defaults = Config::default().job_defaults();
    let mut count = 0;
    for spec in specs {
        let job = validate(
            parse_spec(&spec).expect("spec"),
            DEFAULT_TENANT,
            None,
            &defaults,
            Utc::now(),
        )
        .expect("job");
        daemon.store.insert_job(&job).expect("insert");
        count += 1;
    }
    daemon.store.flush().expect("flush");
    daemon.scheduler.job_changed();
    count
}

/// Uploads the noop plugin as `noop`.
pub async fn upload_noop(daemon: &Daemon) {
    daemon
        .plugins
        .upload(DEFAULT_TENANT, "noop", super::noop_bytes(), None)
        .await
        .expect("upload");
}

/// Every run of the default tenant.
pub fn all_runs(daemon: &Daemon) -> Vec<Run> {
    let filter = RunFilter {
        limit: usize::MAX,
        ..RunFilter::default()
    };
    daemon.store.list_runs(DEFAULT_TENANT, &filter).expect("runs")
}

/// Waits until nothing is queued or running (checked every millisecond).
pub async fn until_idle(daemon: &Daemon, at_most: Duration) {
    let began = std::time::Instant::now();
    while !daemon.executor.is_idle() {
        assert!(began.elapsed() < at_most, "still busy after {at_most:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The value at `fraction` of sorted figures.
pub fn percentile(sorted: &[i64], fraction: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

/// p50/p99/max of figures, as "p50 a p99 b max c".
pub fn spread(mut values: Vec<i64>) -> String {
    values.sort_unstable();
    format!(
        "p50 {} p99 {} max {}",
        percentile(&values, 0.50),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(0)
    )
}

/// p50/p99/max of µs figures as JSON, for the side-by-side table.
pub fn spread_json(mut values: Vec<i64>) -> Value {
    values.sort_unstable();
    serde_json::json!({
        "p50_us": percentile(&values, 0.50),
        "p99_us": percentile(&values, 0.99),
        "max_us": values.last().copied().unwrap_or(0),
    })
}

/// Microseconds of a time difference.
pub fn micros(delta: chrono::TimeDelta) -> i64 {
    delta.num_microseconds().unwrap_or(i64::MAX)
}

/// Lateness (start minus due instant, µs) of runs due at or after `since`.
pub fn lateness_of<'a>(runs: impl Iterator<Item = &'a Run>, since: DateTime<Utc>) -> Vec<i64> {
    runs.filter(|run| run.scheduled_at >= since)
        .filter_map(|run| Some(micros(run.started_at? - run.scheduled_at)))
        .collect()
}

/// Resident memory of this process, KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process so far (user + system), in clock ticks (1/100 s).
pub fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// Runs a bench's async main as the daemon's own `main` runs the daemon:
/// the allocator set up first, then a multi-threaded runtime.
pub fn run_main(main: impl std::future::Future<Output = ()>) {
    sandcron::daemon::tune_allocator();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(main);
}
