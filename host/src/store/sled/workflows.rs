//! The workflow subject of [`SledStore`]: definitions in the `workflows`
//! tree under `tenant \0 name` (JSON); workflow runs in the `runs` tree
//! (namespace `W`, see `runs::keys`) so the run writes carry them.

use super::database::SledStore;
use super::encoding::{corrupt, encode, from_json, key, prefix};
use super::runs::keys::{run_key, run_prefix, run_space};
use crate::model::dependency::Join;
use crate::model::workflow::Workflow;
use crate::model::workflow_run::{WorkflowRun, WorkflowRunStatus};
use crate::store::error::StoreResult;
use crate::store::traits::WorkflowStore;

impl WorkflowStore for SledStore {
    fn put_workflow(&self, workflow: &Workflow) -> StoreResult<()> {
        let gate = self.writing();
        self.workflows
            .insert(
                key(&[workflow.tenant.as_bytes(), workflow.name.as_bytes()]),
                encode(workflow),
            )
            .map_err(|error| gate.note(error))?;
        Ok(())
    }

    fn workflow(&self, tenant: &str, name: &str) -> StoreResult<Option<Workflow>> {
        Self::get(&self.workflows, &key(&[tenant.as_bytes(), name.as_bytes()]))
    }

    fn list_workflows(&self, tenant: &str) -> StoreResult<Vec<Workflow>> {
        Self::scan(&self.workflows, &prefix(&[tenant.as_bytes()]))
    }

    fn all_workflows(&self) -> StoreResult<Vec<Workflow>> {
        Self::scan(&self.workflows, &[])
    }

    fn delete_workflow(&self, tenant: &str, name: &str) -> StoreResult<bool> {
        let gate = self.writing();
        Ok(self
            .workflows
            .remove(key(&[tenant.as_bytes(), name.as_bytes()]))
            .map_err(|error| gate.note(error))?
            .is_some())
    }

    fn workflow_run(&self, tenant: &str, id: &str) -> StoreResult<Option<WorkflowRun>> {
        Self::get(
            &self.runs,
            &run_key(run_space::WORKFLOW_RUN, &[tenant.as_bytes(), id.as_bytes()]),
        )
    }

    fn list_workflow_runs(
        &self,
        tenant: &str,
        workflow: Option<&str>,
        before: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<WorkflowRun>> {
        let start = run_prefix(run_space::WORKFLOW_RUN, &[tenant.as_bytes()]);
        let entries = match before {
            Some(before) => self
                .runs
                .range(start.clone()..run_key(run_space::WORKFLOW_RUN, &[tenant.as_bytes(), before.as_bytes()])),
            None => self.runs.scan_prefix(&start),
        };
        let mut found = Vec::new();
        for entry in entries.rev() {
            let (key, value) = entry?;
            let run: WorkflowRun = from_json(&value).map_err(|message| corrupt(&key, message))?;
            if workflow.is_none_or(|name| run.workflow.name == name) {
                found.push(run);
                if found.len() >= limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    fn running_workflow_runs(&self) -> StoreResult<Vec<WorkflowRun>> {
        let runs: Vec<WorkflowRun> = Self::scan(&self.runs, &[run_space::WORKFLOW_RUN])?;
        Ok(runs
            .into_iter()
            .filter(|run| run.status == WorkflowRunStatus::Running)
            .collect())
    }

    fn join(&self, tenant: &str, job_id: &str) -> StoreResult<Option<Join>> {
        Self::get(
            &self.runs,
            &run_key(run_space::JOIN, &[tenant.as_bytes(), job_id.as_bytes()]),
        )
    }
}
