//! Durable throughput and bursts of the noop job (issue 7, benchmarks 2-4):
//!
//! - `api N C`: the real `sandcron` binary; `N` runs of one noop job asked
//!   for with `POST /v1/jobs/noop/run` by `C` concurrent clients over HTTP;
//!   runs per second from the first request until `/metrics` counts all `N`
//!   finished (each queued record is flushed before its answer, each
//!   finished record before it is counted).
//! - `schedule J S`: in process; `J` jobs firing every second (cron
//!   `* * * * * *`) for `S` seconds: finished runs per second and lateness.
//! - `burst N R`: in process; `R` rounds of `N` one-shot (`at`) jobs due at
//!   the same instant, while an `every: 1s` job (`tick`, priority from
//!   `TICK_PRIORITY`, default normal) fires on the same instants: time from
//!   the instant until the last burst run is durably finished, lateness
//!   p50/p99 of the burst, and the tick's lateness in the idle seconds
//!   before the first round and at the burst instants.
//!
//! `cargo bench -p sandcron --bench throughput -- api 20000 64`
//! `cargo bench -p sandcron --bench throughput -- schedule 5000 20`
//! `cargo bench -p sandcron --bench throughput -- burst 10000 3`
//! Settings through the environment: `FLUSH_INTERVAL`, `FIRE_AHEAD`,
//! `MAX_CONCURRENT_RUNS`, `DB_CACHE` (see `support/daemon.rs`).

#[path = "support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use support::daemon::{add_jobs, all_runs, lateness_of, micros, open, spread, spread_json, until_idle, upload_noop};

/// Seconds the burst workload's tick runs alone before the first burst
/// (its idle lateness).
const IDLE_SECONDS: i64 = 10;

/// The real daemon on a free port with a temp data dir; its output is
/// read for the address and then dropped.
struct Server {
    child: std::process::Child,
    url: String,
    token: String,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sandcron"));
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "warn,sandcron=info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for name in ["FLUSH_INTERVAL", "MAX_CONCURRENT_RUNS", "FIRE_AHEAD", "DB_CACHE"] {
            if let Ok(value) = std::env::var(name) {
                command.env(format!("SANDCRON_{name}"), value);
            }
        }
        let mut child = command.spawn().expect("starting sandcron serve");
        // The daemon logs to stderr.
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let url = loop {
            let line = lines.next().expect("the daemon printed its address").expect("a line");
            if let Some(at) = line.find("listening on http://") {
                let address: String = line[at + "listening on ".len()..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
                break address;
            }
        };
        // Keep reading (and dropping) what it prints, so it never blocks.
        std::thread::spawn(move || for _ in lines {});
        let token = std::fs::read_to_string(dir.path().join("admin-token"))
            .expect("admin token")
            .trim()
            .to_string();
        Server {
            child,
            url,
            token,
            _dir: dir,
        }
    }

    async fn finished_runs(&self, client: &reqwest::Client) -> u64 {
        let text = client
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|line| line.starts_with("sandcron_runs_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn api(total: usize, clients: usize) {
    let server = Server::start();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let post = |path: &str| client.post(format!("{}{path}", server.url)).bearer_auth(&server.token);
    let uploaded = post("/v1/plugins?name=noop")
        .body(support::noop_bytes())
        .send()
        .await
        .expect("upload");
    assert!(uploaded.status().is_success(), "upload: {}", uploaded.status());
    let created = post("/v1/jobs")
        // Runs side by side (overlap allow); the default runs a job's
        // runs one after another.
        .json(&json!({"name": "noop", "plugin": "noop", "policy": {"overlap": "allow"}}))
        .send()
        .await
        .expect("job");
    assert!(created.status().is_success(), "job: {}", created.status());
    let began = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, next) = (client.clone(), next.clone());
            let (url, token) = (format!("{}/v1/jobs/noop/run", server.url), server.token.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < total {
                    let asked = Instant::now();
                    let answer = client.post(&url).bearer_auth(&token).send().await.expect("run");
                    assert_eq!(answer.status().as_u16(), 202, "POST run");
                    answered.push(asked.elapsed().as_micros() as i64);
                }
                answered
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("client task"));
    }
    let queued = began.elapsed();
    while server.finished_runs(&client).await < total as u64 {
        assert!(began.elapsed() < Duration::from_secs(600), "runs did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let finished = began.elapsed();
    println!(
        "api: {total} runs by {clients} clients: all queued in {queued:?} ({:.0} requests/s; answer µs {}), all finished in {finished:?}: {:.0} runs/s",
        total as f64 / queued.as_secs_f64(),
        spread(answers),
        total as f64 / finished.as_secs_f64()
    );
}

async fn schedule(jobs: usize, seconds: u64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = open(dir.path()).await;
    upload_noop(&daemon).await;
    let specs = (0..jobs)
        .map(|index| json!({"name": format!("tick-{index}"), "plugin": "noop", "schedule": {"cron": "* * * * * *"}}));
    add_jobs(&daemon, specs);
    // Measure whole seconds after a warm-up second.
    let since = next_second(Utc::now() + chrono::Duration::seconds(2));
    let until = since + chrono::Duration::seconds(seconds as i64);
    tokio::time::sleep(Duration::from_millis(
        (until - Utc::now()).num_milliseconds().max(0) as u64 + 1500,
    ))
    .await;
    let runs = all_runs(&daemon);
    let window: Vec<_> = runs
        .iter()
        .filter(|run| run.scheduled_at >= since && run.scheduled_at < until)
        .collect();
    let done = window.iter().filter(|run| run.finished_at.is_some()).count();
    let last = window.iter().filter_map(|run| run.finished_at).max();
    println!(
        "schedule: {jobs} jobs every second, {seconds}s: {} fires, {done} finished ({:.0} runs/s), last finished {} ms after the window; lateness µs {}",
        window.len(),
        done as f64 / seconds as f64,
        last.map_or(0, |last| (last - until).num_milliseconds()),
        spread(lateness_of(window.iter().copied(), since))
    );
}

fn next_second(at: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(at.timestamp() + 1, 0).expect("a valid instant")
}

async fn burst(count: usize, rounds: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let daemon = open(dir.path()).await;
    upload_noop(&daemon).await;
    let priority = std::env::var("TICK_PRIORITY").unwrap_or_else(|_| "normal".to_string());
    // The tick fires on whole seconds, the instants of the bursts.
    let tick_at = next_second(Utc::now());
    tokio::time::sleep(Duration::from_millis(
        (tick_at - Utc::now()).num_milliseconds().max(0) as u64
    ))
    .await;
    add_jobs(
        &daemon,
        std::iter::once(
            json!({"name": "tick", "plugin": "noop", "schedule": {"cron": "* * * * * *"}, "policy": {"priority": priority}}),
        ),
    );
    let tick_id = daemon
        .store
        .job_id_by_name(sandcron::model::DEFAULT_TENANT, "tick")
        .expect("lookup")
        .expect("tick");
    // Idle seconds first: the tick alone.
    let idle_until = tick_at + chrono::Duration::seconds(IDLE_SECONDS);
    tokio::time::sleep(Duration::from_millis(
        (idle_until - Utc::now()).num_milliseconds().max(0) as u64,
    ))
    .await;
    let (mut instants, mut rounds_json) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Created well before fire_ahead reaches them.
        let instant = next_second(Utc::now() + chrono::Duration::milliseconds(2000 + count as i64 / 4));
        let at = instant.to_rfc3339();
        let specs = (0..count)
            .map(|index| json!({"name": format!("once-{round}-{index}"), "plugin": "noop", "schedule": {"at": at}}));
        add_jobs(&daemon, specs);
        assert!(
            Utc::now() < instant - chrono::Duration::milliseconds(1100),
            "jobs created too late for round {round}"
        );
        let wait = (instant - Utc::now()).num_milliseconds().max(0) as u64;
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let observed = Instant::now();
        until_idle(&daemon, Duration::from_secs(300)).await;
        let all_done = observed.elapsed();
        let runs = all_runs(&daemon);
        let burst: Vec<_> = runs
            .iter()
            .filter(|run| run.job_id != tick_id && run.scheduled_at == instant)
            .collect();
        let last = burst
            .iter()
            .filter_map(|run| run.finished_at)
            .max()
            .expect("runs finished");
        let tick = runs
            .iter()
            .find(|run| run.job_id == tick_id && run.scheduled_at == instant);
        let mut starts: Vec<i64> = burst
            .iter()
            .filter_map(|run| Some(micros(run.started_at? - instant)))
            .collect();
        starts.sort_unstable();
        println!(
            "  parts, µs: queued relative to the instant {}; started {} (first {}); run (start to finish) {}",
            spread(burst.iter().map(|run| micros(run.queued_at - instant)).collect()),
            spread(starts.clone()),
            starts.first().copied().unwrap_or(0),
            spread(
                burst
                    .iter()
                    .filter_map(|run| Some(micros(run.finished_at? - run.started_at?)))
                    .collect()
            ),
        );
        println!(
            "burst round {round}: {} runs due at once; last finished {} ms after the instant (idle seen after {all_done:?}); lateness µs {}; tick at the instant (priority {priority}): lateness {} µs",
            burst.len(),
            (last - instant).num_milliseconds(),
            spread(lateness_of(burst.iter().copied(), instant)),
            tick.and_then(|run| Some(micros(run.started_at? - run.scheduled_at)))
                .unwrap_or(-1),
        );
        instants.push(instant);
        rounds_json.push(
            json!({"round": round, "runs": burst.len(), "all_ran_ms": (last - instant).num_milliseconds(),
            "lateness": spread_json(lateness_of(burst.iter().copied(), instant))}),
        );
    }
    let runs = all_runs(&daemon);
    let ticks = runs.iter().filter(|run| run.job_id == tick_id);
    let lateness: Vec<(DateTime<Utc>, i64)> = ticks
        .filter_map(|run| Some((run.scheduled_at, micros(run.started_at? - run.scheduled_at))))
        .collect();
    let of = |keep: &dyn Fn(&DateTime<Utc>) -> bool| -> Vec<i64> {
        lateness
            .iter()
            .filter(|(at, _)| keep(at))
            .map(|(_, late)| *late)
            .collect()
    };
    let idle = of(&|at| *at < idle_until);
    let during = of(&|at| instants.contains(at));
    let busy = of(&|at| *at >= idle_until && !instants.contains(at));
    println!(
        "tick lateness µs, idle seconds (before the first burst): {}; at burst instants: {}; other seconds (jobs added, bursts running): {}",
        spread(idle.clone()),
        spread(during.clone()),
        spread(busy)
    );
    let at_instants = format!("{} of {rounds}", during.len());
    let mut all_ran: Vec<i64> = rounds_json
        .iter()
        .filter_map(|round| round["all_ran_ms"].as_i64())
        .collect();
    all_ran.sort_unstable();
    println!(
        "RESULT {}",
        json!({"peer": "sandcron", "workload": "burst", "store": "sled", "rounds": rounds_json,
               "all_ran_ms_median": all_ran[all_ran.len() / 2],
               "tick_lateness_idle": spread_json(idle), "tick_lateness_during_burst": spread_json(during),
               "tick_fires_at_burst_instants": at_instants})
    );
}

fn main() {
    support::daemon::run_main(run());
}

async fn run() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let number = |index: usize, default: usize| args.get(index).and_then(|value| value.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str).unwrap_or("burst") {
        "api" => api(number(1, 20_000), number(2, 64)).await,
        "schedule" => schedule(number(1, 5_000), number(2, 20) as u64).await,
        "burst" => burst(number(1, 10_000), number(2, 3)).await,
        other => panic!("unknown scenario {other}; use api, schedule or burst"),
    }
}
