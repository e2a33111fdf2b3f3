//! Disk use under retention: cycles of writing finished runs (queued,
//! finished with output and log, as the executor writes them) for a set of
//! jobs, each cycle followed by the pruning the daemon does in the
//! background (`max_runs_per_job`), while the size of the sled directory is
//! measured. Bounded means the size stops growing once pruning keeps up.
//!
//! `cargo bench -p sandcron --bench retention_soak -- 40 20000 20 1000`
//! (cycles, runs per cycle, jobs, runs kept per job)

use std::path::Path;
use std::time::Instant;

use sandcron::model::{Run, RunStatus, Trigger};
use sandcron::store::{Durability, RunStore, SledStore};

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        dir_size(&path)
                    } else {
                        entry.metadata().map_or(0, |meta| meta.len())
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn finished_run(job: usize, sequence: u64) -> Run {
    let now = chrono::Utc::now();
    let mut run: Run = serde_json::from_value(serde_json::json!({
        "id": sandcron::model::new_id(),
        "tenant": "default",
        "job_id": format!("job-{job:03}"),
        "job_name": format!("job-{job:03}"),
        "plugin": "noop@1",
        "plugin_digest": "0".repeat(64),
        "trigger": "schedule",
        "attempt": 1,
        "status": "queued",
        "error": null,
        "scheduled_at": now,
        "queued_at": now,
        "started_at": null,
        "finished_at": null,
        "duration_ms": null,
        "lateness_ms": null,
        "fuel_consumed": null,
        "peak_memory": null,
        "output_size": 0,
        "log_size": 0,
        "input": "{}",
        "limits": {"fuel": 1, "timeout_ms": 1000, "memory": 1, "output": 1, "logs": 1},
    }))
    .expect("a run record");
    run.trigger = Trigger::Schedule;
    run.finish(RunStatus::Succeeded, None, now);
    run.output_size = sequence % 7;
    run
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let number = |index: usize, default: u64| args.get(index).and_then(|text| text.parse().ok()).unwrap_or(default);
    let (cycles, per_cycle, jobs, keep) = (
        number(0, 40),
        number(1, 20_000),
        number(2, 20) as usize,
        number(3, 1000) as usize,
    );
    let dir = tempfile::tempdir().expect("a temp dir");
    let store = SledStore::open(&dir.path().join("db")).expect("sled");
    let log = vec![b'l'; 2048];
    let output = vec![b'o'; 200];
    let mut sequence = 0;
    println!("cycle  runs_written  runs_pruned  db_MiB  write_s  prune_s");
    for cycle in 1..=cycles {
        let started = Instant::now();
        for _ in 0..per_cycle {
            let run = finished_run(sequence as usize % jobs, sequence);
            store.insert_run(&run).expect("insert");
            store.finish_run(&run, &output, &log).expect("finish");
            sequence += 1;
        }
        store.flush().expect("flush");
        let written = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let mut pruned = 0;
        loop {
            let count = store
                .prune_runs(chrono::DateTime::<chrono::Utc>::MIN_UTC, keep, 2_000)
                .expect("prune");
            pruned += count;
            if count < 2_000 {
                break;
            }
        }
        store.flush().expect("flush");
        let pruning = started.elapsed().as_secs_f64();
        let size = dir_size(dir.path()) as f64 / (1 << 20) as f64;
        println!("{cycle:>5}  {per_cycle:>12}  {pruned:>11}  {size:>6.1}  {written:>7.2}  {pruning:>7.2}");
    }
}
