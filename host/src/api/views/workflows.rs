//! Workflows and their runs as the API shows them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::model::Trigger;
use crate::model::job::Webhook;
use crate::model::workflow::{OnFailure, Step, Workflow, WorkflowPolicy};
use crate::model::workflow_run::{StepState, WorkflowRun, WorkflowRunStatus};

/// A workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowView {
    /// Time-ordered id.
    id: String,
    /// Unique per tenant.
    name: String,
    /// When it fires (absent: on demand only).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    schedule: Option<Value>,
    /// The input of its runs (absent: none).
    #[serde(skip_serializing_if = "Value::is_null")]
    #[schema(value_type = Option<Object>)]
    input: Value,
    /// Steps running at once in one run.
    max_parallel: u32,
    on_failure: OnFailure,
    /// The longest a run may take (`"1h"`).
    timeout: String,
    policy: WorkflowPolicy,
    /// False pauses its schedule.
    enabled: bool,
    /// The graph, in the order given.
    steps: Vec<Step>,
    /// Whom its runs notify.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    webhooks: Vec<Webhook>,
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
    /// Its next scheduled run.
    #[schema(value_type = Option<String>, format = DateTime)]
    next_fire_at: Option<DateTime<Utc>>,
}

impl From<Workflow> for WorkflowView {
    fn from(workflow: Workflow) -> WorkflowView {
        WorkflowView {
            id: workflow.id,
            name: workflow.name,
            schedule: workflow.schedule.as_ref().map(|schedule| schedule.to_json()),
            input: workflow.input,
            max_parallel: workflow.max_parallel,
            on_failure: workflow.on_failure,
            timeout: crate::units::format_duration(workflow.timeout),
            policy: workflow.policy,
            enabled: workflow.enabled,
            steps: workflow.steps,
            webhooks: workflow.webhooks,
            created_at: workflow.created_at,
            updated_at: workflow.updated_at,
            next_fire_at: workflow.next_fire_at,
        }
    }
}

/// `GET /v1/workflows`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowList {
    workflows: Vec<WorkflowView>,
}

impl WorkflowList {
    /// The workflows, in the order given.
    pub fn new(workflows: Vec<Workflow>) -> WorkflowList {
        WorkflowList {
            workflows: workflows.into_iter().map(WorkflowView::from).collect(),
        }
    }
}

/// A run of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowRunView {
    /// Time-ordered id.
    id: String,
    /// The workflow's name.
    workflow: String,
    status: WorkflowRunStatus,
    /// `manual` or `schedule`.
    trigger: Trigger,
    /// Every step by id: its status, latest run and attempt.
    steps: BTreeMap<String, StepState>,
    /// Why it failed or stopped beyond its steps' own errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// Bytes of its input.
    input_size: usize,
    #[schema(value_type = String, format = DateTime)]
    scheduled_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    started_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<DateTime<Utc>>,
    /// When it is stopped if still going.
    #[schema(value_type = String, format = DateTime)]
    deadline: DateTime<Utc>,
}

impl From<&WorkflowRun> for WorkflowRunView {
    fn from(run: &WorkflowRun) -> WorkflowRunView {
        WorkflowRunView {
            id: run.id.clone(),
            workflow: run.workflow.name.clone(),
            status: run.status,
            trigger: run.trigger,
            steps: run.steps.clone(),
            error: run.error.clone(),
            input_size: run.input.as_ref().map_or(0, String::len),
            scheduled_at: run.scheduled_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            deadline: run.deadline(),
        }
    }
}

/// `GET /v1/workflow-runs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowRunList {
    workflow_runs: Vec<WorkflowRunView>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

impl WorkflowRunList {
    /// A page of `runs`; a full page (`limit` runs) may have a next one.
    pub fn page(runs: &[WorkflowRun], limit: usize) -> WorkflowRunList {
        let next_cursor = (runs.len() == limit)
            .then(|| runs.last().map(|run| run.id.clone()))
            .flatten();
        WorkflowRunList {
            workflow_runs: runs.iter().map(WorkflowRunView::from).collect(),
            next_cursor,
        }
    }
}
