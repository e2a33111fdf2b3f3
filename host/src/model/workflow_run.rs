//! A workflow run: the state of each step, and the rules that move it on,
//! as plain functions over the record (no store, no clock of its own):
//! [`WorkflowRun::step_ended`] takes a step run's outcome,
//! [`WorkflowRun::advance`] decides which steps are skipped, which start
//! now (within `max_parallel`) and when the whole run is over.
//!
//! The rules, for a step whose needed steps have all finished:
//!
//! | `when`    | starts when the needed steps...     | else      |
//! |-----------|-------------------------------------|-----------|
//! | `success` | all succeeded                       | `skipped` |
//! | `failure` | include at least one failed         | `skipped` |
//! | `always`  | finished, whatever their state      | (never)   |
//!
//! A `skipped` step counts as "not succeeded" for `success` and as finished
//! for `always`; it is not a failure. A `cancelled` step counts as failed.
//! A false `if` makes the step `skipped`. With `on_failure: stop`, once any
//! step failed only `failure` and `always` steps still start; the others
//! are `skipped`. The run fails when a step failed and no `when: failure`
//! step that needs it succeeded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::job::input_bytes;
use super::run::{RunStatus, Trigger};
use super::workflow::{OnFailure, Step, StepInput, When, Workflow, topological};

/// Where a workflow run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowRunStatus {
    /// Steps are going or waiting.
    Running,
    /// Every step succeeded or was skipped, or its failures were handled.
    Succeeded,
    /// A step failed unhandled, or the run timed out.
    Failed,
    /// Stopped by a user.
    Cancelled,
}

impl WorkflowRunStatus {
    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkflowRunStatus::Running => "running",
            WorkflowRunStatus::Succeeded => "succeeded",
            WorkflowRunStatus::Failed => "failed",
            WorkflowRunStatus::Cancelled => "cancelled",
        }
    }

    /// True once it will not change again (a retry starts it anew).
    pub fn is_finished(self) -> bool {
        self != WorkflowRunStatus::Running
    }
}

/// Where a step is: a run's statuses, plus `pending` (not started) and
/// `skipped` (its conditions did not hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    Pending,
    /// Its run waits for a slot (or for its retry's backoff).
    Queued,
    /// Its run executes.
    Running,
    /// Its last attempt succeeded.
    Succeeded,
    /// Its last attempt failed.
    Failed,
    /// Its run was cancelled, or the workflow run before it started.
    Cancelled,
    /// Its conditions did not hold.
    Skipped,
}

impl StepStatus {
    /// True once it will not change again in this round.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded | StepStatus::Failed | StepStatus::Cancelled | StepStatus::Skipped
        )
    }

    /// True while its run is queued or going.
    pub fn is_active(self) -> bool {
        matches!(self, StepStatus::Queued | StepStatus::Running)
    }

    /// Failed or cancelled: what `when: failure` reacts to.
    pub fn is_failure(self) -> bool {
        matches!(self, StepStatus::Failed | StepStatus::Cancelled)
    }

    fn of_run(status: RunStatus) -> StepStatus {
        match status {
            RunStatus::Queued => StepStatus::Queued,
            RunStatus::Running => StepStatus::Running,
            RunStatus::Succeeded => StepStatus::Succeeded,
            RunStatus::Failed => StepStatus::Failed,
            RunStatus::Cancelled => StepStatus::Cancelled,
        }
    }
}

/// One step of a workflow run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepState {
    /// Where it is.
    pub status: StepStatus,
    /// Its latest run (None: never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Its latest run's attempt (0: never started).
    #[serde(default)]
    pub attempt: u32,
    /// How many times a retry of the workflow run started it again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub round: u32,
    /// Why it ended without a run of its own (an input past the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

impl StepState {
    fn pending() -> StepState {
        StepState {
            status: StepStatus::Pending,
            run_id: None,
            attempt: 0,
            round: 0,
            error: None,
        }
    }
}

/// A run of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowRun {
    /// Time-ordered id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The workflow as it was when the run started (later edits do not
    /// change a run under way).
    pub workflow: Workflow,
    /// Where it is.
    pub status: WorkflowRunStatus,
    /// What started it: `manual` or `schedule`.
    pub trigger: Trigger,
    /// Its input (None: none; root steps then take their jobs' own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// When it was due.
    pub scheduled_at: DateTime<Utc>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    #[serde(default)]
    pub finished_at: Option<DateTime<Utc>>,
    /// Why it failed or stopped, beyond its steps (a timeout, a cancel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Every step's state, by step id.
    pub steps: BTreeMap<String, StepState>,
    /// Set by a cancel or a timeout: nothing new starts.
    #[serde(default)]
    pub stopping: Option<Stopping>,
}

/// Why a workflow run stops before its steps are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stopping {
    /// A user cancelled it.
    Cancelled,
    /// It ran past its workflow's `timeout`.
    TimedOut,
}

/// A step to start now: its run's id and its input (None: its job's own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepStart {
    /// The step.
    pub step: String,
    /// Its run's id.
    pub run_id: String,
    /// Its input; None: its job's own.
    pub input: Option<Vec<u8>>,
}

impl WorkflowRun {
    /// A new run of `workflow`, every step pending.
    pub fn new(
        id: String,
        workflow: &Workflow,
        trigger: Trigger,
        input: Option<Vec<u8>>,
        scheduled_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> WorkflowRun {
        WorkflowRun {
            id,
            tenant: workflow.tenant.clone(),
            workflow: workflow.clone(),
            status: WorkflowRunStatus::Running,
            trigger,
            input: input.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
            scheduled_at,
            started_at: now,
            finished_at: None,
            error: None,
            steps: workflow
                .steps
                .iter()
                .map(|step| (step.id.clone(), StepState::pending()))
                .collect(),
            stopping: None,
        }
    }

    /// When it must be over.
    pub fn deadline(&self) -> DateTime<Utc> {
        crate::units::add_saturating(self.started_at, self.workflow.timeout)
    }

    /// The ids of its steps' runs that are queued or going.
    pub fn active_runs(&self) -> Vec<String> {
        self.steps
            .values()
            .filter(|state| state.status.is_active())
            .filter_map(|state| state.run_id.clone())
            .collect()
    }

    /// The step a run belongs to, when it is the step's latest run.
    pub fn step_of_run(&self, run_id: &str) -> Option<&str> {
        self.steps
            .iter()
            .find(|(_, state)| state.run_id.as_deref() == Some(run_id))
            .map(|(step, _)| step.as_str())
    }

    /// A step's run changed: `status` is the run's, `next` the id of its
    /// next attempt when it failed and is retried. Returns false when the
    /// run is not the step's latest (an old attempt's late news).
    pub fn step_ended(&mut self, run_id: &str, status: RunStatus, next: Option<&str>) -> bool {
        let Some(step) = self.step_of_run(run_id).map(str::to_string) else {
            return false;
        };
        let Some(state) = self.steps.get_mut(&step) else {
            return false;
        };
        match next {
            Some(next) => {
                state.run_id = Some(next.to_string());
                state.attempt += 1;
                state.status = StepStatus::Queued;
            }
            None => state.status = StepStatus::of_run(status),
        }
        true
    }

    /// Stops the run: nothing new starts, pending steps end `cancelled`;
    /// returns the runs to cancel. The run ends once they have.
    pub fn stop(&mut self, why: Stopping, now: DateTime<Utc>) -> Vec<String> {
        if self.status.is_finished() {
            return Vec::new();
        }
        self.stopping = Some(why);
        self.error = Some(match why {
            Stopping::Cancelled => "cancelled".to_string(),
            Stopping::TimedOut => format!(
                "timed out after {}",
                crate::units::format_duration(self.workflow.timeout)
            ),
        });
        for state in self.steps.values_mut() {
            if state.status == StepStatus::Pending {
                state.status = StepStatus::Cancelled;
            }
        }
        let active = self.active_runs();
        if active.is_empty() {
            self.finish(now);
        }
        active
    }

    /// Starts a finished, unsuccessful run again from its failed, cancelled
    /// and skipped steps; succeeded steps keep their runs and outputs.
    /// False when there is nothing to retry.
    pub fn restart(&mut self, now: DateTime<Utc>) -> bool {
        if !self.status.is_finished() || self.status == WorkflowRunStatus::Succeeded {
            return false;
        }
        for state in self.steps.values_mut() {
            if state.status != StepStatus::Succeeded {
                state.status = StepStatus::Pending;
                state.error = None;
                if state.run_id.is_some() {
                    state.round += 1;
                }
            }
        }
        self.status = WorkflowRunStatus::Running;
        self.finished_at = None;
        self.error = None;
        self.stopping = None;
        self.started_at = now;
        true
    }

    /// Moves the run on: marks the steps whose conditions cannot hold
    /// `skipped`, returns the steps to start now (in dependency order,
    /// within `max_parallel`), already marked `queued` with their runs'
    /// ids (`run_id(step, round)`), and ends the run when no step is left.
    /// `output` gives a finished step's output bytes; `max_input` caps a
    /// step's input (a step past it fails without running).
    pub fn advance(
        &mut self,
        output: &dyn Fn(&str) -> Option<Vec<u8>>,
        run_id: &dyn Fn(&str, u32) -> String,
        max_input: usize,
        now: DateTime<Utc>,
    ) -> Vec<StepStart> {
        if self.status.is_finished() {
            return Vec::new();
        }
        let workflow = self.workflow.clone();
        let order = topological(&workflow.steps);
        let mut starts = Vec::new();
        loop {
            let mut changed = false;
            let mut active = self.steps.values().filter(|state| state.status.is_active()).count();
            for step in &order {
                if self.state(&step.id) != StepStatus::Pending {
                    continue;
                }
                let Some(verdict) = self.verdict(step, output) else {
                    continue; // waits for a needed step
                };
                if !verdict {
                    self.set(&step.id, StepStatus::Skipped);
                    changed = true;
                    continue;
                }
                if active >= workflow.max_parallel as usize {
                    continue;
                }
                let input = match self.input_of(step, output) {
                    Some(input) if input.len() > max_input => {
                        let state = self.steps.get_mut(&step.id).expect("every step has a state");
                        state.status = StepStatus::Failed;
                        state.error = Some(format!("its input is {} bytes; the limit is {max_input}", input.len()));
                        changed = true;
                        continue;
                    }
                    input => input,
                };
                let state = self.steps.get_mut(&step.id).expect("every step has a state");
                let id = run_id(&step.id, state.round);
                state.status = StepStatus::Queued;
                state.run_id = Some(id.clone());
                state.attempt = 1;
                active += 1;
                changed = true;
                starts.push(StepStart {
                    step: step.id.clone(),
                    run_id: id,
                    input,
                });
            }
            if !changed {
                break;
            }
        }
        if self.steps.values().all(|state| state.status.is_finished()) {
            self.finish(now);
        }
        starts
    }

    fn state(&self, step: &str) -> StepStatus {
        self.steps.get(step).map_or(StepStatus::Pending, |state| state.status)
    }

    fn set(&mut self, step: &str, status: StepStatus) {
        if let Some(state) = self.steps.get_mut(step) {
            state.status = status;
        }
    }

    /// None while a needed step is unfinished; else whether the step runs
    /// (false: it is skipped).
    fn verdict(&self, step: &Step, output: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<bool> {
        let needed: Vec<StepStatus> = step.needs.iter().map(|need| self.state(need)).collect();
        if needed.iter().any(|status| !status.is_finished()) {
            return None;
        }
        let when = match step.when {
            When::Success => needed.iter().all(|status| *status == StepStatus::Succeeded),
            When::Failure => needed.iter().any(|status| status.is_failure()),
            When::Always => true,
        };
        if !when {
            return Some(false);
        }
        let failed = self.steps.values().any(|state| state.status.is_failure());
        if self.workflow.on_failure == OnFailure::Stop && failed && step.when == When::Success {
            return Some(false);
        }
        let Some(condition) = &step.condition else {
            return Some(true);
        };
        let document = match &condition.from {
            Some(from) => output(from).and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok()),
            None => self
                .input
                .as_deref()
                .and_then(|text| serde_json::from_str::<Value>(text).ok()),
        };
        Some(condition.holds(document.as_ref()))
    }

    /// The step's input: its `input` rule, or for a root step without one
    /// the run's input (None: its job's own).
    fn input_of(&self, step: &Step, output: &dyn Fn(&str) -> Option<Vec<u8>>) -> Option<Vec<u8>> {
        match &step.input {
            Some(StepInput::Value(value)) => Some(input_bytes(value)),
            Some(StepInput::From(from)) => Some(output(from).unwrap_or_default()),
            Some(StepInput::Merge(ids)) => {
                let merged: serde_json::Map<String, Value> = ids
                    .iter()
                    .map(|id| {
                        let value = match output(id) {
                            Some(bytes) => serde_json::from_slice::<Value>(&bytes)
                                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
                            None => Value::Null,
                        };
                        (id.clone(), value)
                    })
                    .collect();
                Some(input_bytes(&Value::Object(merged)))
            }
            None if step.needs.is_empty() => self.input.as_ref().map(|text| text.as_bytes().to_vec()),
            None => None,
        }
    }

    /// Ends the run with the status its steps give.
    fn finish(&mut self, now: DateTime<Utc>) {
        self.status = match self.stopping {
            Some(Stopping::Cancelled) => WorkflowRunStatus::Cancelled,
            Some(Stopping::TimedOut) => WorkflowRunStatus::Failed,
            None if self.unhandled_failure().is_some() => WorkflowRunStatus::Failed,
            None => WorkflowRunStatus::Succeeded,
        };
        if self.status == WorkflowRunStatus::Failed && self.error.is_none() {
            self.error = self.unhandled_failure().map(|step| format!("step {step:?} failed"));
        }
        self.finished_at = Some(now);
    }

    /// The first failed step no succeeded `when: failure` step needs.
    fn unhandled_failure(&self) -> Option<&str> {
        self.workflow
            .steps
            .iter()
            .filter(|step| self.state(&step.id).is_failure())
            .find(|failed| {
                !self.workflow.steps.iter().any(|handler| {
                    handler.when == When::Failure
                        && handler.needs.contains(&failed.id)
                        && self.state(&handler.id) == StepStatus::Succeeded
                })
            })
            .map(|step| step.id.as_str())
    }
}

#[cfg(test)]
mod tests;
