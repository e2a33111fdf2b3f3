//! What sled 0.34 charges per key, apart from the daemon: the writes a
//! fire makes, with the daemon's settings (32 MiB cache, no timer flusher),
//! 100,000 operations into a database that already holds 10,000 jobs and
//! their due entries. Prints microseconds per operation.
//!
//! `cargo bench -p sandcron --bench sled_keys -- [insert|fire|fire_no_runs|fire_small_state|fire_batches]...`
//! (all when none is named). `fire_small_state` is `fire` with a 24-byte
//! value under the job's key instead of its record (`JOB_RECORD` bytes, as
//! `job_codec` writes a cron job): what a fire would cost if it wrote only
//! the job's fire state.

use std::time::Instant;

use sled::Transactional;
use sled::transaction::ConflictableTransactionError;

const OPERATIONS: usize = 100_000;
const JOBS: usize = 10_000;
const FIRES_PER_WRITE: usize = 1_000;
/// Bytes of a cron job's record (600 while records were JSON).
const JOB_RECORD: usize = 130;

struct Trees {
    jobs: sled::Tree,
    due: sled::Tree,
    runs: sled::Tree,
}

fn job_key(index: usize) -> Vec<u8> {
    format!("tenant\0job-{:08}", index % JOBS).into_bytes()
}

fn due_key(pass: usize, index: usize) -> Vec<u8> {
    [&(pass as u64).to_be_bytes()[..], &job_key(index)].concat()
}

fn run_key(index: usize) -> Vec<u8> {
    format!("Rtenant\0{index:020}").into_bytes()
}

fn by_job_key(index: usize) -> Vec<u8> {
    format!("Jtenant\0job-{:08}\0{index:020}", index % JOBS).into_bytes()
}

/// One fire's writes (as `record_fires` makes them), `with_runs` adding
/// the two keys a queued run inserts; `job` is what the fire writes under
/// the job's key (its whole record, or only its fire state).
fn fire(trees: &Trees, with_runs: bool, job: &[u8]) {
    let record = vec![7u8; 229];
    for pass in 0..OPERATIONS / FIRES_PER_WRITE {
        (&trees.jobs, &trees.due, &trees.runs)
            .transaction(|(jobs, due, runs)| {
                for index in pass * FIRES_PER_WRITE..(pass + 1) * FIRES_PER_WRITE {
                    jobs.get(job_key(index))?;
                    due.remove(due_key(pass, index))?;
                    due.insert(due_key(pass + 10, index), &[] as &[u8])?;
                    jobs.insert(job_key(index), job)?;
                    if with_runs {
                        runs.get(run_key(index))?;
                        runs.insert(run_key(index), record.as_slice())?;
                        runs.insert(by_job_key(index), &[] as &[u8])?;
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .expect("transaction");
    }
}

/// The same writes as three batches, one per tree (not atomic together).
fn fire_batches(trees: &Trees) {
    let (record, job) = (vec![7u8; 229], vec![9u8; JOB_RECORD]);
    for pass in 0..OPERATIONS / FIRES_PER_WRITE {
        let (mut jobs, mut due, mut runs) = (sled::Batch::default(), sled::Batch::default(), sled::Batch::default());
        for index in pass * FIRES_PER_WRITE..(pass + 1) * FIRES_PER_WRITE {
            trees.jobs.get(job_key(index)).expect("get");
            due.remove(due_key(pass, index));
            due.insert(due_key(pass + 10, index), &[] as &[u8]);
            jobs.insert(job_key(index), job.as_slice());
            trees.runs.get(run_key(index)).expect("get");
            runs.insert(run_key(index), record.as_slice());
            runs.insert(by_job_key(index), &[] as &[u8]);
        }
        trees.jobs.apply_batch(jobs).expect("batch");
        trees.due.apply_batch(due).expect("batch");
        trees.runs.apply_batch(runs).expect("batch");
    }
}

fn measure(scenario: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(sandcron::config::DEFAULT_DB_CACHE)
        .flush_every_ms(None)
        .open()
        .expect("open");
    let tree = |name: &str| db.open_tree(name).expect("tree");
    let trees = Trees {
        jobs: tree("jobs"),
        due: tree("due"),
        runs: tree("runs"),
    };
    // What each job's key holds: its record, or only its fire state.
    let job = vec![9u8; if scenario == "fire_small_state" { 24 } else { JOB_RECORD }];
    for index in 0..JOBS {
        trees.jobs.insert(job_key(index), job.as_slice()).expect("insert");
        trees.due.insert(due_key(0, index), &[] as &[u8]).expect("insert");
    }
    let started = Instant::now();
    match scenario {
        "insert" => {
            for index in 0..OPERATIONS {
                trees.runs.insert(run_key(index), vec![7u8; 229]).expect("insert");
            }
        }
        "fire" | "fire_small_state" => fire(&trees, true, &job),
        "fire_no_runs" => fire(&trees, false, &job),
        "fire_batches" => fire_batches(&trees),
        other => panic!("unknown scenario {other}; use insert, fire, fire_no_runs, fire_small_state or fire_batches"),
    }
    let micros = started.elapsed().as_secs_f64() * 1e6 / OPERATIONS as f64;
    println!("{scenario}: {micros:.1} µs per operation");
}

fn main() {
    let named: Vec<String> = std::env::args().skip(1).filter(|arg| !arg.starts_with("--")).collect();
    let all = ["insert", "fire", "fire_no_runs", "fire_small_state", "fire_batches"]
        .map(String::from)
        .to_vec();
    for scenario in if named.is_empty() { all } else { named } {
        measure(&scenario);
    }
}
