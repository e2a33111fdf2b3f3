//! What the store's writes of a run's life cost, as the daemon makes them,
//! with the daemon's settings (32 MiB cache, no timer flusher, no flush):
//!
//! - `manual`: a run queued on its own (`POST /v1/jobs/{id}/run`), its
//!   `running` mark and its outcome: three writes.
//! - `fire`: a fire of one run recorded in its own transaction, then its
//!   outcome in a batch of its own (a quiet daemon).
//! - `pass`: a pass of 64 fires in one transaction and their 64 outcomes
//!   in one batch (a busy daemon: the recorder gathers outcomes).
//!
//! Prints, per run, the wall time and the CPU time of the whole process
//! (all threads, from `/proc/self/stat`: steadier than the wall time on a
//! shared machine). Each workload's run is one call of a function of its
//! name, so `valgrind --tool=callgrind` counts its instructions per run.
//!
//! `cargo bench -p sandcron --bench run_writes -- [manual|fire|pass]... [RUNS]`
//! (all, 20,000 runs each, when none is named).

use std::time::Instant;

use chrono::Utc;
use sandcron::model::run::RunLimits;
use sandcron::model::validate::{parse_spec, validate};
use sandcron::model::{Job, Run, RunStatus, Trigger};
use sandcron::store::{Fire, JobStore, RunStore, RunWrite, SledStore};

/// Fires per pass in `pass`.
const PASS: usize = 64;

/// A queued run of `job`, numbered `index` (ids sort by it).
fn queued(index: usize, job: &str, trigger: Trigger) -> Run {
    let now = Utc::now();
    Run {
        id: ulid::Ulid::from_parts(1_700_000_000_000 + index as u64, index as u128)
            .to_string()
            .to_ascii_lowercase(),
        tenant: "default".into(),
        job_id: job.into(),
        job_name: "job".into(),
        plugin: "noop@1".into(),
        plugin_digest: "0".repeat(64),
        trigger,
        attempt: 1,
        status: RunStatus::Queued,
        error: None,
        scheduled_at: now,
        jitter_ms: 0,
        queued_at: now,
        started_at: None,
        finished_at: None,
        duration_ms: None,
        lateness_ms: None,
        fuel_consumed: None,
        peak_memory: None,
        output_size: 0,
        log_size: 0,
        tape: None,
        input: b"{}".to_vec(),
        limits: RunLimits {
            fuel: None,
            timeout_ms: 30_000,
            memory: 64 << 20,
            output: 1 << 20,
            logs: 1 << 20,
        },
        priority: Default::default(),
        retry: Default::default(),
        exclusive: false,
        concurrency: None,
        retry_of: None,
        http_allow: Vec::new(),
        secrets: Vec::new(),
        record: false,
        workflow: None,
        node: None,
    }
}

/// The run as it ends: succeeded with a 2-byte output.
fn finished(mut run: Run) -> Run {
    run.status = RunStatus::Running;
    run.started_at = Some(Utc::now());
    run.lateness_ms = Some(0);
    run.output_size = 2;
    run.peak_memory = Some(1 << 20);
    run.finish(RunStatus::Succeeded, None, Utc::now());
    run
}

fn outcome(run: &Run) -> RunWrite<'_> {
    RunWrite::Finished {
        run,
        output: b"{}",
        log: b"",
        tape: b"",
        next: None,
    }
}

#[inline(never)]
fn manual(store: &SledStore, index: usize) {
    let mut run = queued(index, "job", Trigger::Manual);
    store.insert_run(&run).expect("queued");
    run.status = RunStatus::Running;
    run.started_at = Some(Utc::now());
    store.update_run(&run).expect("running");
    let run = finished(run);
    store.write_runs(&[outcome(&run)]).expect("finished");
}

#[inline(never)]
fn fire(store: &SledStore, job: &Job, index: usize) {
    let run = queued(index, &job.id, Trigger::Schedule);
    let current = store.job(&job.tenant, &job.id).expect("job").expect("a job");
    let fire = Fire {
        job: current,
        runs: vec![run.clone()],
        runs_only: false,
    };
    store.record_fires(std::slice::from_ref(&fire)).expect("fire");
    let run = finished(run);
    store.write_runs(&[outcome(&run)]).expect("finished");
}

#[inline(never)]
fn pass(store: &SledStore, job: &Job, first: usize) {
    let runs: Vec<Run> = (first..first + PASS)
        .map(|index| queued(index, &job.id, Trigger::Schedule))
        .collect();
    let current = store.job(&job.tenant, &job.id).expect("job").expect("a job");
    let fire = Fire {
        job: current,
        runs: runs.clone(),
        runs_only: false,
    };
    store.record_fires(std::slice::from_ref(&fire)).expect("fires");
    let runs: Vec<Run> = runs.into_iter().map(finished).collect();
    let outcomes: Vec<RunWrite<'_>> = runs.iter().map(outcome).collect();
    store.write_runs(&outcomes).expect("outcomes");
}

/// Seconds of CPU the process has used (all threads).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command (which may hold spaces) start after ')'.
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime (fields 14 and 15 of the line, 12 and 13 here) are
    // in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| arg != "--bench").collect();
    let runs: usize = args.iter().find_map(|arg| arg.parse().ok()).unwrap_or(20_000);
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|arg| ["manual", "fire", "pass"].contains(arg))
        .collect();
    let workloads = if named.is_empty() {
        vec!["manual", "fire", "pass"]
    } else {
        named
    };
    for workload in workloads {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = SledStore::open_with(
            &dir.path().join("db"),
            std::time::Duration::ZERO,
            sandcron::config::DEFAULT_DB_CACHE,
        )
        .expect("open");
        let spec = serde_json::json!({"name": "fired", "plugin": "noop", "schedule": {"every": "1h"}});
        let defaults = sandcron::config::Config::default().job_defaults();
        let job = validate(parse_spec(&spec).expect("spec"), "default", None, &defaults, Utc::now()).expect("job");
        store.insert_job(&job).expect("insert job");
        let (started, cpu) = (Instant::now(), cpu_seconds());
        match workload {
            "manual" => (0..runs).for_each(|index| manual(&store, index)),
            "fire" => (0..runs).for_each(|index| fire(&store, &job, index)),
            _ => (0..runs / PASS).for_each(|pass_index| pass(&store, &job, pass_index * PASS)),
        }
        let done = if workload == "pass" { runs / PASS * PASS } else { runs };
        let per_run = |seconds: f64| seconds * 1e6 / done as f64;
        println!(
            "{workload:<6} {done} runs: {:.1} µs wall, {:.1} µs CPU per run",
            per_run(started.elapsed().as_secs_f64()),
            per_run(cpu_seconds() - cpu)
        );
    }
}
