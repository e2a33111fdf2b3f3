//! The workflow engine: the workflow runs going now, in memory, each moved
//! on under one lock as its steps' runs end (the rules are
//! [`WorkflowRun::advance`]'s). Every write of a workflow run after it
//! starts goes through the executor's recorder, which writes the latest
//! record from here in the same batch as the step outcomes that changed it,
//! so records land in order and never apart from their runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::error::WorkflowError;
use super::planner::{Planner, Waiting};
use crate::clock::Clock;
use crate::events::EventBus;
use crate::executor::{Executor, Followers, StepHook};
use crate::metrics::Metrics;
use crate::model::dependency::Join;
use crate::model::run::{NewRun, StepOf};
use crate::model::workflow::Workflow;
use crate::model::workflow_run::{StepStart, StepStatus, Stopping, WorkflowRun};
use crate::model::{Run, Trigger};
use crate::plugin::Plugins;
use crate::store::{Store, StoreError};
use crate::sync::lock;

/// How often a wait for a workflow run another node of a cluster drives
/// reads it (nothing tells this node of its changes).
const READ_AGAIN: Duration = Duration::from_millis(100);

/// What the engine is made of.
pub struct WorkflowsParts {
    /// Where workflows, their runs and the steps' jobs are.
    pub store: Arc<dyn Store>,
    /// Runs the steps (and writes every workflow run change).
    pub executor: Arc<Executor>,
    /// Resolves a step's job's plugin when the step starts.
    pub plugins: Arc<Plugins>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Where `workflow.started` and `workflow.finished` go.
    pub events: Arc<EventBus>,
    /// Workflow runs and step durations.
    pub metrics: Arc<Metrics>,
    /// The largest input a step may get (the jobs' input limit).
    pub max_input_bytes: usize,
    /// The log cap of each step's run.
    pub run_log_bytes: u64,
}

/// A workflow run going now: its working record, the record as last
/// written (what callers see), and the outputs its later steps still read.
struct Active {
    record: WorkflowRun,
    shown: WorkflowRun,
    outputs: HashMap<String, Vec<u8>>,
}

impl Active {
    fn new(record: WorkflowRun) -> Active {
        Active {
            shown: record.clone(),
            record,
            outputs: HashMap::new(),
        }
    }
}

/// Defines workflows and runs them.
pub struct Workflows {
    pub(super) store: Arc<dyn Store>,
    pub(super) executor: Arc<Executor>,
    pub(super) plugins: Arc<Plugins>,
    pub(super) clock: Arc<dyn Clock>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    pub(super) max_input_bytes: usize,
    pub(super) run_log_bytes: u64,
    active: Mutex<HashMap<String, Active>>,
    /// Bumped after every write of workflow runs: waiters look again.
    changed: watch::Sender<u64>,
    /// The schedule loop's state (see `schedule`).
    pub(super) planner: Mutex<Planner>,
    /// Wakes the schedule loop: a definition changed or a run ended.
    pub(super) schedule_changed: Notify,
    /// Workflow runs whose end is written but not told yet: told after
    /// the end of the step run that ended them.
    untold: Mutex<HashMap<String, WorkflowRun>>,
    /// The jobs waiting for each job (see `after`).
    pub(super) waiting: Mutex<Waiting>,
    /// The joins of waiting jobs, read once from the store.
    pub(super) joins: Mutex<HashMap<(String, String), Join>>,
}

impl Workflows {
    /// An engine over its parts; hand it to [`Executor::chain`] before the
    /// executor records, and call [`Workflows::recover`] before the
    /// executor recovers its runs.
    pub fn new(parts: WorkflowsParts) -> Arc<Workflows> {
        Arc::new(Workflows {
            store: parts.store,
            executor: parts.executor,
            plugins: parts.plugins,
            clock: parts.clock,
            events: parts.events,
            metrics: parts.metrics,
            max_input_bytes: parts.max_input_bytes,
            run_log_bytes: parts.run_log_bytes,
            active: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            planner: Mutex::new(Planner::default()),
            schedule_changed: Notify::new(),
            untold: Mutex::new(HashMap::new()),
            waiting: Mutex::new(Waiting::new()),
            joins: Mutex::new(HashMap::new()),
        })
    }

    /// Reads which jobs wait for which, takes back the workflow runs that
    /// were going when the daemon stopped (their steps' runs are recovered
    /// by the executor, whose outcomes then move them on) and arms their
    /// timeouts.
    pub fn recover(&self) -> Result<usize, StoreError> {
        self.index_waiting()?;
        let running = self.store.running_workflow_runs()?;
        Ok(self.resume(running))
    }

    /// Drives running workflow runs from here on (a start's, or those of a
    /// dead node of the cluster); how many.
    pub fn resume(&self, running: Vec<WorkflowRun>) -> usize {
        let count = running.len();
        for record in running {
            self.arm_timeout(&record);
            lock(&self.active).insert(record.id.clone(), Active::new(record));
        }
        if count > 0 {
            tracing::info!(workflow_runs = count, "resuming workflow runs");
        }
        count
    }

    /// Starts a run of the tenant's workflow `name` (`input` replaces the
    /// workflow's own): its root steps are queued at once.
    pub async fn start(
        &self,
        tenant: &str,
        name: &str,
        input: Option<&Value>,
        trigger: Trigger,
        scheduled_at: Option<DateTime<Utc>>,
    ) -> Result<WorkflowRun, WorkflowError> {
        let workflow = self
            .store
            .workflow(tenant, name)?
            .ok_or_else(|| WorkflowError::NotFound(name.to_string()))?;
        self.start_as(workflow, crate::model::new_id(), input, trigger, scheduled_at)
            .await
    }

    /// Starts a run of `workflow` with the id `id`.
    pub(super) async fn start_as(
        &self,
        workflow: Workflow,
        id: String,
        input: Option<&Value>,
        trigger: Trigger,
        scheduled_at: Option<DateTime<Utc>>,
    ) -> Result<WorkflowRun, WorkflowError> {
        let now = self.clock.now();
        let record = WorkflowRun::new(
            id.clone(),
            &workflow,
            trigger,
            workflow.input_of(input),
            scheduled_at.unwrap_or(now),
            now,
        );
        let runs = {
            let mut active = lock(&self.active);
            let entry = active.entry(id.clone()).or_insert_with(|| Active::new(record));
            self.advance(entry)
        };
        tracing::info!(workflow = %workflow.name, workflow_run = %id, steps = runs.len(), "workflow run started");
        if let Err(error) = self.executor.write_workflow(id.clone(), runs.clone()).await {
            // Never written: it does not exist.
            lock(&self.active).remove(&id);
            return Err(error.into());
        }
        let record = self
            .run(&workflow.tenant, &id)?
            .ok_or_else(|| WorkflowError::RunNotFound(id.clone()))?;
        self.events.workflow("workflow.started", &record);
        self.executor.queued(runs);
        self.tell(&id);
        self.arm_timeout(&record);
        Ok(record)
    }

    /// True if this node drives the workflow run (it is going here).
    pub(super) fn drives(&self, id: &str) -> bool {
        lock(&self.active).contains_key(id)
    }

    /// The ids of a workflow's runs going now.
    pub(super) fn active_runs_of(&self, tenant: &str, workflow_id: &str) -> Vec<String> {
        lock(&self.active)
            .values()
            .filter(|active| {
                active.record.tenant == tenant
                    && active.record.workflow.id == workflow_id
                    && !active.record.status.is_finished()
            })
            .map(|active| active.record.id.clone())
            .collect()
    }

    /// A tenant's workflow run: while it goes, as last written (a queued
    /// step whose run executes shows `running`), else stored.
    pub fn run(&self, tenant: &str, id: &str) -> Result<Option<WorkflowRun>, StoreError> {
        let active = lock(&self.active)
            .get(id)
            .filter(|active| active.shown.tenant == tenant)
            .map(|active| active.shown.clone());
        let Some(mut record) = active else {
            return self.store.workflow_run(tenant, id);
        };
        for state in record.steps.values_mut() {
            if state.status == StepStatus::Queued
                && let Some(run_id) = &state.run_id
                && self.executor.is_running(run_id)
            {
                state.status = StepStatus::Running;
            }
        }
        Ok(Some(record))
    }

    /// A tenant's workflow runs, newest first.
    pub fn runs(
        &self,
        tenant: &str,
        workflow: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<WorkflowRun>, StoreError> {
        self.store.list_workflow_runs(tenant, workflow, before, limit)
    }

    /// Waits up to `timeout` for a workflow run to end; returns its latest
    /// record.
    pub async fn wait(&self, tenant: &str, id: &str, timeout: Duration) -> Result<Option<WorkflowRun>, StoreError> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let record = self.run(tenant, id)?;
            match &record {
                Some(record) if !record.status.is_finished() => {}
                _ => return Ok(record),
            }
            // A run another node of a cluster drives changes unannounced.
            let look_again = if self.clustered() && !self.drives(id) {
                (tokio::time::Instant::now() + READ_AGAIN).min(deadline)
            } else {
                deadline
            };
            if tokio::time::timeout_at(look_again, changed.changed()).await.is_err() && look_again >= deadline {
                return Ok(record);
            }
        }
    }

    /// Cancels a workflow run: nothing new starts, its running steps are
    /// cancelled; returns it as it is once they have ended (or 5 s).
    pub async fn cancel(&self, tenant: &str, id: &str) -> Result<WorkflowRun, WorkflowError> {
        self.stop(tenant, id, Stopping::Cancelled).await?;
        self.wait(tenant, id, Duration::from_secs(5))
            .await?
            .ok_or_else(|| WorkflowError::RunNotFound(id.to_string()))
    }

    pub(super) async fn stop(&self, tenant: &str, id: &str, why: Stopping) -> Result<(), WorkflowError> {
        let now = self.clock.now();
        let to_cancel = {
            let mut active = lock(&self.active);
            match active.get_mut(id) {
                Some(entry) if entry.record.tenant == tenant => {
                    if entry.record.status.is_finished() {
                        return Err(WorkflowError::Conflict(format!(
                            "workflow run {id:?} is already {}",
                            entry.record.status.as_str()
                        )));
                    }
                    entry.record.stop(why, now)
                }
                _ => {
                    return match self.store.workflow_run(tenant, id)? {
                        // Another node of the cluster drives it.
                        Some(record) if !record.status.is_finished() && self.ask_driver_to_cancel(tenant, id)? => {
                            Ok(())
                        }
                        Some(record) => Err(WorkflowError::Conflict(format!(
                            "workflow run {id:?} is already {}",
                            record.status.as_str()
                        ))),
                        None => Err(WorkflowError::RunNotFound(id.to_string())),
                    };
                }
            }
        };
        self.executor.write_workflow(id.to_string(), Vec::new()).await?;
        self.tell(id);
        for run_id in to_cancel {
            // A run that ended meanwhile moved the workflow run on itself.
            if let Err(error) = self.executor.cancel(tenant, &run_id).await {
                tracing::debug!(%run_id, %error, "step run not cancelled");
            }
        }
        Ok(())
    }

    /// Runs a finished, unsuccessful workflow run again from its failed,
    /// cancelled and skipped steps; succeeded steps keep their outputs.
    pub async fn retry(&self, tenant: &str, id: &str) -> Result<WorkflowRun, WorkflowError> {
        let mut record = self
            .run(tenant, id)?
            .ok_or_else(|| WorkflowError::RunNotFound(id.to_string()))?;
        if !record.restart(self.clock.now()) {
            return Err(WorkflowError::Conflict(format!(
                "workflow run {id:?} is {}; only a failed or cancelled one is retried",
                record.status.as_str()
            )));
        }
        let runs = {
            let mut active = lock(&self.active);
            if active.contains_key(id) {
                return Err(WorkflowError::Conflict(format!("workflow run {id:?} is running")));
            }
            let entry = active.entry(id.to_string()).or_insert_with(|| Active::new(record));
            self.advance(entry)
        };
        if let Err(error) = self.executor.write_workflow(id.to_string(), runs.clone()).await {
            // Not written: the stored record (finished) stands.
            lock(&self.active).remove(id);
            return Err(error.into());
        }
        let record = self
            .run(tenant, id)?
            .ok_or_else(|| WorkflowError::RunNotFound(id.to_string()))?;
        self.events.workflow("workflow.started", &record);
        self.executor.queued(runs);
        self.tell(id);
        self.arm_timeout(&record);
        Ok(record)
    }

    /// Stops the run when its workflow's timeout is over (the schedule
    /// loop watches the deadlines).
    fn arm_timeout(&self, record: &WorkflowRun) {
        if record.status.is_finished() {
            return;
        }
        lock(&self.planner).deadlines.insert(deadline_entry(record));
        self.schedule_changed.notify_one();
    }

    /// Stops the runs past their deadline; returns the next deadline.
    pub(super) async fn stop_late(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        loop {
            let late = {
                let mut planner = lock(&self.planner);
                match planner.deadlines.first() {
                    Some(entry) if entry.0 <= now => planner.deadlines.pop_first(),
                    Some(entry) => return Some(entry.0),
                    None => return None,
                }
            };
            let (_, tenant, id, started_at) = late?;
            let current = lock(&self.active).get(&id).map(|active| active.record.started_at);
            if current == Some(started_at) {
                tracing::warn!(workflow_run = %id, "workflow run timed out");
                if let Err(error) = self.stop(&tenant, &id, Stopping::TimedOut).await {
                    tracing::debug!(workflow_run = %id, %error, "timed-out workflow run not stopped");
                }
            }
        }
    }

    /// Moves a workflow run on and makes the runs of the steps that start:
    /// a step whose job or plugin is gone fails without a run.
    fn advance(&self, active: &mut Active) -> Vec<Run> {
        let mut runs = Vec::new();
        loop {
            let record = &active.record;
            let (tenant, run_id, started_at) = (record.tenant.clone(), record.id.clone(), record.started_at);
            // The runs of the steps that ended with an output: what the
            // steps that start may read (advancing changes no finished step).
            let ended: HashMap<String, String> = record
                .steps
                .iter()
                .filter(|(_, state)| matches!(state.status, StepStatus::Succeeded | StepStatus::Failed))
                .filter_map(|(step, state)| Some((step.clone(), state.run_id.clone()?)))
                .collect();
            let (store, outputs) = (&self.store, &active.outputs);
            let output = |step: &str| -> Option<Vec<u8>> {
                if let Some(bytes) = outputs.get(step) {
                    return Some(bytes.clone());
                }
                store.run_output(&tenant, ended.get(step)?).ok().flatten()
            };
            let derive =
                |step: &str, round: u32| crate::model::id::step_run_id(&tenant, &run_id, started_at, step, round);
            let now = self.clock.now();
            let starts = active.record.advance(&output, &derive, self.max_input_bytes, now);
            let mut failed = false;
            for start in starts {
                match self.step_run(&active.record, &start, now) {
                    Ok(run) => runs.push(run),
                    Err(problem) => {
                        if let Some(state) = active.record.steps.get_mut(&start.step) {
                            state.status = StepStatus::Failed;
                            state.run_id = None;
                            state.error = Some(problem);
                        }
                        failed = true;
                    }
                }
            }
            if !failed {
                return runs;
            }
        }
    }

    /// The queued run of a step that starts now.
    fn step_run(&self, record: &WorkflowRun, start: &StepStart, now: DateTime<Utc>) -> Result<Run, String> {
        let step = record
            .workflow
            .step(&start.step)
            .ok_or_else(|| format!("no step {:?}", start.step))?;
        let job = self
            .store
            .job_id_by_name(&record.tenant, &step.job)
            .and_then(|id| match id {
                Some(id) => self.store.job(&record.tenant, &id),
                None => Ok(None),
            })
            .map_err(|error| error.to_string())?
            .ok_or_else(|| format!("its job {:?} no longer exists", step.job))?;
        let version = self
            .plugins
            .resolve(&job.tenant, &job.plugin)
            .map_err(|error| format!("its job's plugin: {error}"))?;
        let new = NewRun {
            job: &job,
            trigger: Trigger::Dependency,
            scheduled_at: now,
            jitter_ms: 0,
            id: start.run_id.clone(),
            input: None,
        };
        let mut run = Run::queued(new, Some(version), now, self.run_log_bytes);
        if let Some(input) = &start.input {
            run.input = input.clone();
        }
        if let Some(retry) = step.retry {
            run.retry = retry;
        }
        run.priority = record.workflow.policy.priority;
        // Steps of one job in a workflow run beside each other.
        run.exclusive = false;
        run.workflow = Some(StepOf {
            workflow_run: record.id.clone(),
            step: step.id.clone(),
        });
        Ok(run)
    }
}

/// A workflow run's entry among the deadlines.
fn deadline_entry(record: &WorkflowRun) -> (DateTime<Utc>, String, String, DateTime<Utc>) {
    (
        record.deadline(),
        record.tenant.clone(),
        record.id.clone(),
        record.started_at,
    )
}

impl Workflows {
    /// A workflow step's run ended: moves its workflow run on and returns
    /// the step runs that start now.
    fn step_ended(&self, run: &Run, output: &[u8], next: Option<&Run>) -> Vec<Run> {
        let Some(of) = &run.workflow else {
            return Vec::new();
        };
        let mut active = lock(&self.active);
        let Some(entry) = active.get_mut(&of.workflow_run) else {
            return Vec::new();
        };
        if let Some(ms) = run.duration_ms {
            self.metrics
                .workflow_step(&run.tenant, &entry.record.workflow.name, ms as f64 / 1000.0);
        }
        let read_later = entry
            .record
            .workflow
            .steps
            .iter()
            .any(|step| step.reads().any(|read| read == of.step));
        if next.is_none() && read_later && run.status.is_finished() {
            entry.outputs.insert(of.step.clone(), output.to_vec());
        }
        if !entry
            .record
            .step_ended(&run.id, run.status, next.map(|next| next.id.as_str()))
        {
            return Vec::new();
        }
        self.advance(entry)
    }

    /// Tells a workflow run's end once it is written and the step run that
    /// ended it is told.
    fn tell(&self, id: &str) {
        let Some(record) = lock(&self.untold).remove(id) else {
            return;
        };
        self.events.workflow("workflow.finished", &record);
        self.metrics
            .workflow_finished(&record.tenant, &record.workflow.name, record.status.as_str());
    }
}

impl StepHook for Workflows {
    fn followed(&self, run: &Run, next: Option<&Run>) -> bool {
        run.workflow.is_some() || (next.is_none() && self.is_waited_for(run))
    }

    fn ended(&self, run: &Run, output: &[u8], next: Option<&Run>) -> Followers {
        let mut followers = Followers {
            runs: self.step_ended(run, output, next),
            joins: Vec::new(),
            recorded: Vec::new(),
        };
        if next.is_none() && run.status.is_finished() {
            self.fire_waiting(run, &mut followers.runs, &mut followers.joins, &mut followers.recorded);
        }
        followers
    }

    fn told(&self, run: &Run) {
        if let Some(of) = &run.workflow {
            self.tell(&of.workflow_run);
        }
    }

    fn snapshot(&self, workflow_run: &str) -> Option<WorkflowRun> {
        lock(&self.active).get(workflow_run).map(|active| active.record.clone())
    }

    fn written(&self, records: &[WorkflowRun], ok: bool) {
        {
            let mut active = lock(&self.active);
            for record in records {
                let id = &record.id;
                if !ok {
                    // Memory went ahead of a write that failed: take the
                    // last written record back (the storage is failing; a
                    // restart resumes from what it holds).
                    if let Some(entry) = active.get_mut(id) {
                        entry.record = entry.shown.clone();
                    }
                    continue;
                }
                if record.status.is_finished() {
                    lock(&self.planner).deadlines.remove(&deadline_entry(record));
                    self.workflow_run_ended(record);
                    lock(&self.untold).insert(id.clone(), record.clone());
                    tracing::info!(
                        workflow = %record.workflow.name,
                        workflow_run = %id,
                        status = record.status.as_str(),
                        "workflow run finished"
                    );
                    active.remove(id);
                } else if let Some(entry) = active.get_mut(id) {
                    entry.shown = record.clone();
                }
            }
        }
        self.changed.send_modify(|generation| *generation += 1);
    }
}
