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
    let fire = Fire {
        job: job.clone(),
        runs,
        runs_only: false,
    };
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

#[test]
fn workflow_runs_and_joins_ride_the_run_writes_and_old_finished_workflow_runs_are_pruned() {
    use crate::model::workflow::{check, parse_spec};
    use crate::model::workflow_run::{WorkflowRun, WorkflowRunStatus};
    use crate::model::{RunStatus, Trigger};
    use crate::store::records::RunWrite;
    use crate::store::traits::{RunStore, WorkflowStore};

    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    let body = serde_json::json!({"name": "w", "steps": [{"id": "a", "job": "j"}]});
    let workflow = check(parse_spec(&body).unwrap(), "t", None, 1 << 20, Utc::now()).unwrap();
    let now = Utc::now();
    let record = |hours_ago: i64, status: WorkflowRunStatus| {
        let started = now - chrono::Duration::hours(hours_ago);
        let id = ulid::Ulid::from_parts(started.timestamp_millis() as u64, u128::from(status as u8))
            .to_string()
            .to_ascii_lowercase();
        let mut run = WorkflowRun::new(id, &workflow, Trigger::Manual, None, started, started);
        run.status = status;
        run
    };
    let old_done = record(48, WorkflowRunStatus::Succeeded);
    let old_going = record(48, WorkflowRunStatus::Running);
    let new_done = record(0, WorkflowRunStatus::Failed);
    let mut join = crate::model::dependency::Join {
        tenant: "t".into(),
        job_id: "after".into(),
        ..Default::default()
    };
    join.seen.insert("a".into(), RunStatus::Succeeded);
    let writes: Vec<RunWrite<'_>> = [&old_done, &old_going, &new_done]
        .into_iter()
        .map(RunWrite::Workflow)
        .chain([RunWrite::Join(&join)])
        .collect();
    store.write_runs(&writes).unwrap();
    assert_eq!(store.join("t", "after").unwrap(), Some(join));
    assert_eq!(store.running_workflow_runs().unwrap(), vec![old_going.clone()]);
    let listed = store.list_workflow_runs("t", Some("w"), None, 10).unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0], new_done, "newest first");

    assert_eq!(
        store
            .prune_workflow_runs(now - chrono::Duration::hours(24), 100)
            .unwrap(),
        1
    );
    assert_eq!(store.workflow_run("t", &old_done.id).unwrap(), None);
    assert!(
        store.workflow_run("t", &old_going.id).unwrap().is_some(),
        "a running one stays"
    );
    assert!(
        store.workflow_run("t", &new_done.id).unwrap().is_some(),
        "a recent one stays"
    );
    assert_eq!(
        store
            .prune_workflow_runs(now - chrono::Duration::hours(24), 100)
            .unwrap(),
        0
    );
}
