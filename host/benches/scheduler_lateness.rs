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

use chrono::{Timelike, Utc};
use sandcron::clock::SystemClock;
use sandcron::daemon::Daemon;
use sandcron::model::DEFAULT_TENANT;
use sandcron::store::RunFilter;
use serde_json::json;
use support::daemon::{
    add_jobs, all_runs, config, cpu_ticks, lateness_of, micros, open, rss_kib, spread, spread_json, upload_noop,
};

/// Lateness of the runs scheduled since `since` (start minus due instant,
/// in µs), and its two parts: due -> queued (the scheduler's wake-up and
/// pass) and queued -> started (the write, flush and dispatch).
fn lateness_report(daemon: &Daemon, since: chrono::DateTime<Utc>) -> String {
    let runs = all_runs(daemon);
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
    let first_start = |name: &str| {
        let job_id = daemon
            .store
            .job_id_by_name(DEFAULT_TENANT, name)
            .expect("lookup")
            .unwrap_or_else(|| panic!("{name} exists"));
        let filter = RunFilter {
            job_id: Some(job_id),
            limit: 1,
            ..RunFilter::default()
        };
        let runs = daemon.store.list_runs(DEFAULT_TENANT, &filter).expect("runs");
        runs.first().and_then(|run| Some((run.scheduled_at, run.started_at?)))
    };
    let wait_for = async |name: &str| loop {
        if let Some(fire) = first_start(name) {
            break fire;
        }
        assert!(
            opened.elapsed() < Duration::from_secs(60),
            "{name} did not fire within a minute"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let (_, overdue_started) = wait_for("soon").await;
    let overdue_ms = (overdue_started - opened_at).num_milliseconds();
    let (due, started_at) = wait_for("after-restart").await;
    let late_ms = micros(started_at - due) as f64 / 1000.0;
    println!(
        "restart with {jobs} jobs: Daemon::open (sled, engine) {open_took:?}, start (recovery, scheduler) {started:?}; the one-shot that came due while down ran {overdue_ms} ms after open returned; a job due after the restart started {late_ms:.2} ms late; RSS {} MiB",
        rss_kib() / 1024
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_ticks();
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let ticks = cpu_ticks() - before;
    let idle_cpu = ticks as f64 / idle.elapsed().as_secs_f64();
    let rss_mib = rss_kib() as f64 / 1024.0;
    println!(
        "idle {:?} with {jobs} jobs: CPU {idle_cpu:.2}% of one core; RSS {rss_mib:.0} MiB",
        idle.elapsed(),
    );
    println!(
        "RESULT {}",
        json!({"peer": "sandcron", "workload": "restart", "jobs": jobs.parse::<u64>().unwrap_or(0),
               "open_ms": open_took.as_secs_f64() * 1000.0, "start_ms": started.as_secs_f64() * 1000.0,
               "overdue_one_shot_ran": true, "overdue_ran_ms_after_open": overdue_ms,
               "first_fire_late_ms": late_ms, "rss_mib": rss_mib, "idle_cpu_percent": idle_cpu})
    );
    drop(daemon);
    let _ = std::fs::remove_dir_all(dir);
}

fn main() {
    support::daemon::run_main(run());
}

async fn run() {
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
            tokio::time::sleep(Duration::from_secs(2)).await;
            let since = Utc::now();
            let (ticks_before, window) = (cpu_ticks(), Instant::now());
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            let cpu_percent = (cpu_ticks() - ticks_before) as f64 / window.elapsed().as_secs_f64();
            let rss_mib = rss_kib() as f64 / 1024.0;
            let lateness = lateness_of(all_runs(&daemon).iter(), since);
            println!(
                "cron jobs {count} window {seconds}s: {}; RSS {rss_mib:.0} MiB; CPU {cpu_percent:.2}% of one core",
                lateness_report(&daemon, since)
            );
            println!(
                "RESULT {}",
                json!({"peer": "sandcron", "workload": "cron", "jobs": count, "seconds": seconds,
                       "fires": lateness.len(), "lateness": spread_json(lateness),
                       "rss_mib": rss_mib, "cpu_percent": cpu_percent})
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
            // Daily, twelve hours from now: none fires during the bench (a
            // fixed hour had a million fire mid-run when run at that hour).
            let hour = (Utc::now().hour() + 12) % 24;
            let specs = (0..count).map(move |index| {
                json!({"name": format!("idle-{index}"), "plugin": "noop", "schedule": {"cron": format!("{} {hour} * * *", index % 60)}})
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
            // And one due 3 s after the restart begins: how late is it?
            let at = (Utc::now() + chrono::Duration::milliseconds(800 + 3000)).to_rfc3339();
            add_jobs(
                &daemon,
                std::iter::once(json!({"name": "after-restart", "plugin": "noop", "schedule": {"at": at}})),
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
