//! Workflow runs in a cluster. A node drives the workflow runs it started
//! (or took over from a dead node) in its memory, and stops those past
//! their deadline itself. The leader's schedule loop also sees the runs
//! other nodes drive, read from the store once per pass, for the overlap
//! policy and the origin of `after` schedules; it looks again every
//! [`LOOK_AGAIN`] while a fire waits for such a run, since no notice tells
//! it of that run's end. Any node cancels a run another node drives by
//! asking it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::engine::Workflows;
use super::error::WorkflowError;
use crate::model::workflow::Workflow;
use crate::model::workflow_run::Stopping;
use crate::store::{StopRuns, StoreError};

/// How often the leader looks again at a workflow whose fire waits for a
/// run another node drives.
pub(super) const LOOK_AGAIN: Duration = Duration::from_secs(1);

/// How many of a workflow's newest runs the origin of its `after`
/// schedule is read from (runs that overlapped may end out of order).
const ENDS_READ: usize = 16;

/// The ids of the workflow runs going on other nodes, by (tenant,
/// workflow id), as read at the start of a pass. Empty on one daemon.
#[derive(Default)]
pub(super) struct Elsewhere(HashMap<(String, String), Vec<String>>);

impl Elsewhere {
    /// The runs of `workflow` going on other nodes.
    pub(super) fn runs_of(&self, workflow: &Workflow) -> &[String] {
        self.0
            .get(&(workflow.tenant.clone(), workflow.id.clone()))
            .map_or(&[], Vec::as_slice)
    }
}

impl Workflows {
    /// True in a cluster: other nodes drive workflow runs too.
    pub(super) fn clustered(&self) -> bool {
        self.executor.node().is_some()
    }

    /// The workflow runs not finished that other nodes drive.
    pub(super) fn elsewhere(&self) -> Result<Elsewhere, StoreError> {
        let mut elsewhere = Elsewhere::default();
        let Some(going) = self.store.going_workflow_runs() else {
            return Ok(elsewhere);
        };
        for record in going? {
            if !self.drives(&record.id) {
                elsewhere
                    .0
                    .entry((record.tenant, record.workflow.id))
                    .or_default()
                    .push(record.id);
            }
        }
        Ok(elsewhere)
    }

    /// When the workflow's runs last ended, as stored (the latest end of
    /// its newest [`ENDS_READ`] runs). In a cluster the origin of an
    /// `after` schedule: its run may have ended on another node. Called
    /// while none of its runs goes.
    pub(super) fn stored_end(&self, workflow: &Workflow) -> Result<Option<DateTime<Utc>>, StoreError> {
        let newest = self
            .store
            .list_workflow_runs(&workflow.tenant, Some(&workflow.name), None, ENDS_READ)?;
        Ok(newest.iter().filter_map(|run| run.finished_at).max())
    }

    /// In a cluster, asks the node that drives a workflow run to cancel
    /// it; false on one daemon (a run it does not drive is not going).
    pub(super) fn ask_driver_to_cancel(&self, tenant: &str, id: &str) -> Result<bool, WorkflowError> {
        let stop = StopRuns::WorkflowRun {
            tenant: tenant.to_string(),
            run: id.to_string(),
        };
        Ok(self.executor.ask_other_nodes(&stop)?)
    }

    /// Another node asked to cancel a workflow run: cancelled here if this
    /// node drives it.
    pub async fn cancel_asked(&self, tenant: &str, id: &str) {
        if !self.drives(id) {
            return;
        }
        if let Err(error) = self.stop(tenant, id, Stopping::Cancelled).await {
            tracing::debug!(workflow_run = %id, %error, "workflow run another node asked to cancel not cancelled");
        }
    }
}
