//! Scheduler precision and scale, in process with the real store, executor
//! and sandbox (noop plugin), on the system clock:
//!
//! - `cron`: N cron jobs at second resolution, each firing every 10 minutes
//!   at its own second (N = 10,000 gives ~1,000 fires a minute); lateness
//!   (start minus due instant) p50/p99/max over the measured window.
//! - `every`: one `every: 1s` job for the window; lateness p50/p99/max.
//! - `scale`: N idle jobs (next fire hours away) plus one that comes due
//!   while the daemon is down: RSS after creating them; then a new process
//!   (`scale-restart`) opens the data dir and reports the time from opening
//!   to the first fire, its RSS, and its CPU while idle.
//!
//! `cargo bench -p sandcron --bench scheduler_lateness -- cron 10000 120`
//! `cargo bench -p sandcron --bench scheduler_lateness -- every 1 60`
//! `cargo bench -p sandcron --bench scheduler_lateness -- scale 100000 10`

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sandcron::clock::SystemClock;
use sandcron::config::Config;
use sandcron::daemon::Daemon;
use sandcron::model::DEFAULT_TENANT;
use sandcron::model::validate::{parse_spec, validate};
use sandcron::store::RunFilter;
use serde_json::{Value, json};

/// The default config on `dir`; `FIRE_AHEAD=500ms` and `MAX_CONCURRENT_RUNS=32`
/// in the environment try other settings.
fn config(dir: &Path) -> Config {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    if let Ok(text) = std::env::var("FIRE_AHEAD") {
        config.fire_ahead = sandcron::units::parse_duration(&text).expect("FIRE_AHEAD");
    }
    if let Ok(text) = std::env::var("MAX_CONCURRENT_RUNS") {
        config.max_concurrent_runs = text.parse().expect("MAX_CONCURRENT_RUNS");
    }
    config
}

async fn open(dir: &Path) -> Daemon {
    let daemon = Daemon::open(&config(dir), Arc::new(SystemClock)).expect("open");
    daemon.start().await.expect("start");
    daemon
}

fn add_jobs(daemon: &Daemon, specs: impl Iterator<Item = Value>) -> usize {
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

fn percentile(sorted: &[i64], fraction: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * fraction).round() as usize]
}

/// p50/p99/max of microsecond figures, as "p50 a p99 b max c".
fn spread(mut values: Vec<i64>) -> String {
    values.sort_unstable();
    format!(
        "p50 {} p99 {} max {}",
        percentile(&values, 0.50),
        percentile(&values, 0.99),
        values.last().copied().unwrap_or(0)
    )
}

/// Lateness of the runs scheduled since `since` (start minus due instant,
/// in µs), and its two parts: due -> queued (the scheduler's wake-up and
/// pass) and queued -> started (the write, flush and dispatch).
fn lateness_report(daemon: &Daemon, since: chrono::DateTime<Utc>) -> String {
    let runs = daemon
        .store
        .list_runs(
            DEFAULT_TENANT,
            &RunFilter {
                limit: usize::MAX,
                ..RunFilter::default()
            },
        )
        .expect("runs");
    let micros = |delta: chrono::TimeDelta| delta.num_microseconds().unwrap_or(i64::MAX);
    let started: Vec<_> = runs
        .iter()
        .filter(|run| run.scheduled_at >= since)
        .filter_map(|run| Some((run, run.started_at?)))
        .collect();
    format!(
        "fires {}; lateness µs {}; due->queued µs {}; queued->started µs {}",
        started.len(),
        spread(started.iter().map(|(run, at)| micros(*at - run.scheduled_at)).collect()),
        spread(
            started
                .iter()
                .map(|(run, _)| micros(run.queued_at - run.scheduled_at))
                .collect()
        ),
        spread(started.iter().map(|(run, at)| micros(*at - run.queued_at)).collect()),
    )
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or_default().split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line (11 and 12 here).
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

async fn upload_noop(daemon: &Daemon) {
    daemon
        .plugins
        .upload(DEFAULT_TENANT, "noop", support::noop_bytes(), None)
        .await
        .expect("upload");
}

/// The second half of `scale`: open the data dir left by the first process
/// (waiting for its lock), time the first fire, then watch CPU while idle.
async fn restart(dir: &Path, jobs: &str, seconds: u64) {
    let began = Instant::now();
    let (daemon, open_took) = loop {
        let attempt = Instant::now();
        match Daemon::open(&config(dir), Arc::new(SystemClock)) {
            Ok(daemon) => break (daemon, attempt.elapsed()),
            Err(_) if began.elapsed() < Duration::from_secs(30) => std::thread::sleep(Duration::from_millis(5)),
            Err(error) => panic!("reopening: {error:#}"),
        }
    };
    let opened = Instant::now();
    let opened_at = Utc::now();
    daemon.start().await.expect("start");
    let started = opened.elapsed();
    let soon = daemon
        .store
        .job_id_by_name(DEFAULT_TENANT, "soon")
        .expect("lookup")
        .expect("soon exists");
    let first_fire = loop {
        let filter = RunFilter {
            job_id: Some(soon.clone()),
            limit: 1,
            ..RunFilter::default()
        };
        let runs = daemon.store.list_runs(DEFAULT_TENANT, &filter).expect("runs");
        if let Some(started) = runs.first().and_then(|run| run.started_at) {
            break started;
        }
        assert!(opened.elapsed() < Duration::from_secs(60), "no fire within a minute");
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    println!(
        "restart with {jobs} jobs: Daemon::open (sled, engine) {open_took:?}, start (recovery, scheduler) {started:?}, first fire started {} ms after open returned; RSS {} MiB",
        (first_fire - opened_at).num_milliseconds(),
        rss_kib() / 1024
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks();
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let ticks = cpu_ticks() - before;
    println!(
        "idle {:?} with {jobs} jobs: CPU {:.2}% of one core; RSS {} MiB",
        idle.elapsed(),
        100.0 * ticks as f64 / 100.0 / idle.elapsed().as_secs_f64(),
        rss_kib() / 1024
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let scenario = args.first().map(String::as_str).unwrap_or("cron");
    let count: usize = args.get(1).and_then(|value| value.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = args.get(2).and_then(|value| value.parse().ok()).unwrap_or(60);
    if scenario == "scale-restart" {
        let idle_seconds = args.get(3).and_then(|value| value.parse().ok()).unwrap_or(10);
        restart(Path::new(&args[1]), &args[2], idle_seconds).await;
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = open(dir.path()).await;
    upload_noop(&daemon).await;
    match scenario {
        "cron" => {
            let specs = (0..count).map(|index| {
                let cron = format!("{} {}/10 * * * *", index % 60, (index / 60) % 10);
                json!({"name": format!("cron-{index}"), "plugin": "noop", "schedule": {"cron": cron}})
            });
            add_jobs(&daemon, specs);
            let since = Utc::now() + chrono::Duration::seconds(2);
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            println!(
                "cron jobs {count} window {seconds}s: {}",
                lateness_report(&daemon, since)
            );
        }
        "every" => {
            add_jobs(
                &daemon,
                std::iter::once(json!({"name": "tick", "plugin": "noop", "schedule": {"every": "1s"}})),
            );
            let since = Utc::now();
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            println!("every 1s window {seconds}s: {}", lateness_report(&daemon, since));
        }
        "scale" => {
            let rss_before = rss_kib();
            let created = Instant::now();
            let specs = (0..count).map(|index| {
                json!({"name": format!("idle-{index}"), "plugin": "noop", "schedule": {"cron": format!("{} 3 * * *", index % 60)}})
            });
            add_jobs(&daemon, specs);
            println!(
                "created {count} jobs in {:?}; RSS {} MiB -> {} MiB",
                created.elapsed(),
                rss_before / 1024,
                rss_kib() / 1024
            );
            // A fire that comes due while the daemon is down: the first pass
            // after the restart runs it (misfire run_once).
            daemon.scheduler.pause().await.expect("pause");
            let at = (Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
            add_jobs(
                &daemon,
                std::iter::once(json!({"name": "soon", "plugin": "noop", "schedule": {"at": at}})),
            );
            tokio::time::sleep(Duration::from_millis(800)).await;
            daemon.store.flush().expect("flush");
            // The restart is a new process: this one holds the database lock
            // until it exits.
            let kept = dir.keep();
            std::process::Command::new(std::env::current_exe().expect("own path"))
                .args([
                    "scale-restart",
                    &kept.display().to_string(),
                    &(count + 1).to_string(),
                    &seconds.to_string(),
                ])
                .spawn()
                .expect("spawning the restart");
            std::process::exit(0);
        }
        other => panic!("unknown scenario {other}; use cron, every or scale"),
    }
}
