//! Helpers the sled subjects' tests share (a validated job, a stored job
//! and a fire of it), and the tests of opening and durability.

use chrono::Utc;

use super::database::SledStore;
use crate::model::{Job, Run};
use crate::store::error::StoreError;
use crate::store::records::Fire;
use crate::store::traits::{Durability, JobStore, KvStore};

/// A job of tenant `t` from its spec, with the default limits.
pub(super) fn validated(spec: &serde_json::Value) -> Job {
    let defaults = crate::config::Config::default().job_defaults();
    let parsed = crate::model::validate::parse_spec(spec).unwrap();
    crate::model::validate::validate(parsed, "t", None, &defaults, Utc::now()).unwrap()
}

/// A stored job of tenant `t` and the fire of `runs` of it, due now.
pub(super) fn job_and_fire(store: &SledStore, name: &str, runs: usize) -> (Job, Fire) {
    let spec = serde_json::json!({"name": name, "plugin": "p", "schedule": {"every": "1h"}});
    let job = validated(&spec);
    store.insert_job(&job).unwrap();
    let now = Utc::now();
    let runs = (0..runs)
        .map(|index| {
            let mut run = Run::sample(&format!("{name}-run-{index}"), &job.id, now);
            run.job_id = job.id.clone();
            run
        })
        .collect();
    let fire = Fire { job: job.clone(), runs };
    (job, fire)
}

#[tokio::test]
async fn after_an_io_error_flushes_fail_with_it_at_once_instead_of_reaching_sled() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    store.kv_set("t", "j", "k", b"v").unwrap();
    store.flush().unwrap();
    // Not an I/O error: flushes go on.
    store.broken.note(StoreError::Conflict("changed".into()));
    store.flush_async().await.unwrap();
    store
        .broken
        .note(StoreError::NoSpace("no space left on the data volume".into()));
    store
        .broken
        .note(StoreError::Unavailable("a later, other error".into()));
    for flushed in [store.flush(), store.flush_async().await] {
        match flushed {
            Err(StoreError::NoSpace(message)) => assert!(message.contains("no space"), "{message}"),
            other => panic!("a flush after an I/O error answered {other:?}"),
        }
    }
    // Reads go on.
    assert_eq!(store.kv_get("t", "j", "k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    // sled's lock is per process file lock; a second open in the same
    // process is refused too.
    match SledStore::open(dir.path()) {
        Err(StoreError::Locked(message)) => assert!(message.contains("in use")),
        Err(other) => panic!("expected Locked, got {other}"),
        Ok(_) => panic!("a second open must fail"),
    }
}
