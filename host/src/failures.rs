//! What a job's runs failing and succeeding again lead to. Each run's last
//! attempt (a run retried counts once, by its last attempt; cancelled runs
//! not at all) moves its job's count of failed runs in a row
//! (`Job::failures`). Then:
//!
//! - a success after failed runs is announced as `run.recovered` (an event,
//!   and webhooks listing `recovered`);
//! - a job whose policy says `pause_after_failures: N` is paused when the
//!   count reaches N (`job.paused` with the reason; webhooks listing
//!   `paused`); resuming it starts the count again;
//! - a job naming a `failure_handler` job has that job run (trigger
//!   `dependency`) with the failed run in its input (a handler's run that
//!   fails calls no handler in turn).
//!
//! Each node hears the ends of its own runs; the count lives in the job's
//! record, so it holds across nodes and restarts.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::events::EventBus;
use crate::executor::Executor;
use crate::jobs::Jobs;
use crate::model::run::RunEnded;
use crate::model::{Job, Run, RunStatus, Trigger};
use crate::scheduler::Scheduler;
use crate::store::Store;

/// Hears the last attempts' ends and acts on them.
pub struct FailureWatch {
    /// Jobs, runs and jobs' hooks.
    pub store: Arc<dyn Store>,
    /// Counts a job's failed runs under its lock.
    pub scheduler: Arc<Scheduler>,
    /// Pauses jobs.
    pub jobs: Arc<Jobs>,
    /// Queues failure handlers' runs.
    pub executor: Arc<Executor>,
    /// `run.recovered`.
    pub events: Arc<EventBus>,
}

/// The input of a `failure_handler` job's run: its own input (an object) with
/// `failed_run` added, or `{"failed_run", "input"}` for any other input.
pub fn handler_input(handler: &Job, failed: &Run) -> Value {
    let input = String::from_utf8(failed.input.clone())
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
        .unwrap_or(Value::Null);
    let failed_run = json!({
        "run_id": failed.id,
        "job_id": failed.job_id,
        "job_name": failed.job_name,
        "attempt": failed.attempt,
        "trigger": failed.trigger,
        "scheduled_at": failed.scheduled_at,
        "finished_at": failed.finished_at,
        "error": failed.error,
        "input": input,
    });
    match &handler.input {
        Value::Object(own) => {
            let mut own = own.clone();
            own.insert("failed_run".to_string(), failed_run);
            Value::Object(own)
        }
        Value::Null => json!({ "failed_run": failed_run }),
        other => json!({ "failed_run": failed_run, "input": other }),
    }
}

/// True for a run a failure handler was queued for (trigger `dependency`,
/// `failed_run` in its input): its own failure calls no handler, so two
/// jobs handling each other's failures do not call each other for ever.
fn is_handler_run(run: &Run) -> bool {
    run.trigger == Trigger::Dependency
        && serde_json::from_slice::<Value>(&run.input).is_ok_and(|input| input.get("failed_run").is_some())
}

impl FailureWatch {
    /// Acts on each end `ends` brings, until it closes.
    pub fn start(self: Arc<Self>, mut ends: mpsc::UnboundedReceiver<RunEnded>) {
        tokio::spawn(async move {
            while let Some(ended) = ends.recv().await {
                self.ended(ended).await;
            }
        });
    }

    async fn ended(&self, ended: RunEnded) {
        let failed = match ended.status {
            RunStatus::Failed => true,
            RunStatus::Succeeded => false,
            RunStatus::Queued | RunStatus::Running | RunStatus::Cancelled => return,
        };
        // Most successes follow successes: told from the job's hooks.
        if !failed
            && !matches!(self.store.job_hooks(&ended.tenant, &ended.job_id), Ok(Some(hooks)) if hooks.failures > 0)
        {
            return;
        }
        let (job, before) = match self.scheduler.count_outcome(&ended.tenant, &ended.job_id, failed) {
            Ok(Some(counted)) => counted,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(job_id = %ended.job_id, %error, "cannot count the job's failed runs");
                return;
            }
        };
        let run = match self.store.run(&ended.tenant, &ended.run_id) {
            Ok(Some(run)) => run,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(run_id = %ended.run_id, %error, "cannot read the run that ended");
                return;
            }
        };
        if !failed {
            tracing::info!(job_id = %job.id, run_id = %run.id, failures = before, "job recovered");
            self.events.run("run.recovered", &run);
            return;
        }
        if let Some(limit) = job.policy.pause_after_failures
            && job.enabled
            && job.failures >= u64::from(limit)
        {
            let reason = format!("paused after {} failed runs in a row", job.failures);
            tracing::warn!(job_id = %job.id, failures = job.failures, "job paused after failed runs");
            if let Err(error) = self
                .jobs
                .set_enabled_because(&job.tenant, &job.id, false, Some(reason))
                .await
            {
                tracing::error!(job_id = %job.id, %error, "cannot pause the job after its failed runs");
            }
        }
        if let Some(name) = &job.failure_handler
            && !is_handler_run(&run)
        {
            self.run_handler(&job, name, &run).await;
        }
    }

    /// Queues a run of the job `name` with the failed run in its input.
    async fn run_handler(&self, job: &Job, name: &str, failed: &Run) {
        let handler = match self.jobs.find(&job.tenant, name) {
            Ok(handler) => handler,
            Err(error) => {
                tracing::warn!(job_id = %job.id, handler = name, %error, "the failure handler cannot run");
                return;
            }
        };
        let input = handler_input(&handler, failed);
        match self.executor.queue(&handler, Trigger::Dependency, Some(&input)).await {
            Ok(run) => tracing::info!(job_id = %job.id, handler = name, run_id = %run.id, "failure handler queued"),
            Err(error) => tracing::warn!(job_id = %job.id, handler = name, %error, "the failure handler cannot run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handler_keeps_its_own_input_and_gets_the_failed_run_beside_it() {
        let mut failed = Run::sample("r1", "j1", chrono::Utc::now());
        failed.input = br#"{"n": 1}"#.to_vec();
        failed.status = RunStatus::Failed;
        let defaults = crate::config::Config::default().job_defaults();
        let handler = |input: Value| {
            let body = json!({"name": "cleanup", "plugin": "p", "input": input});
            let spec = crate::model::validate::parse_spec(&body).unwrap();
            crate::model::validate::validate(spec, "t", None, &defaults, chrono::Utc::now()).unwrap()
        };
        let object = handler_input(&handler(json!({"channel": "ops"})), &failed);
        assert_eq!(object["channel"], "ops");
        assert_eq!(
            (object["failed_run"]["run_id"].as_str(), &object["failed_run"]["input"]),
            (Some("r1"), &json!({"n": 1}))
        );
        assert_eq!(handler_input(&handler(json!([1])), &failed)["input"], json!([1]));
        let bare = handler_input(&handler(Value::Null), &failed);
        assert_eq!(bare.as_object().map(|object| object.len()), Some(1));
        failed.input = vec![0xff];
        assert_eq!(
            handler_input(&handler(Value::Null), &failed)["failed_run"]["input"],
            Value::Null
        );
    }

    #[test]
    fn a_handlers_own_run_failing_calls_no_handler() {
        let mut run = Run::sample("r1", "j1", chrono::Utc::now());
        run.trigger = Trigger::Dependency;
        run.input = serde_json::to_vec(&json!({"failed_run": {"run_id": "r0"}})).unwrap();
        assert!(is_handler_run(&run));
        run.trigger = Trigger::Manual;
        assert!(!is_handler_run(&run), "a run asked for is no handler's");
        run.trigger = Trigger::Dependency;
        run.input = br#"{"note": 1}"#.to_vec();
        assert!(!is_handler_run(&run), "an after_jobs run is no handler's");
    }
}
