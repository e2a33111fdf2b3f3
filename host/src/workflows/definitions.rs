//! Workflow definitions: create, replace, patch, read, delete, each
//! checked as a whole (the graph, and every step's job among the tenant's).

use serde_json::Value;

use super::engine::Workflows;
use super::error::WorkflowError;
use crate::model::validate::{ValidationError, merge_patch};
use crate::model::workflow::{Workflow, check, parse_spec};

impl Workflows {
    /// Creates the workflow `body` defines; refused when its name is taken.
    pub async fn create(&self, tenant: &str, body: &Value) -> Result<Workflow, WorkflowError> {
        let spec = parse_spec(body)?;
        if let Some(name) = &spec.name
            && self.store.workflow(tenant, name)?.is_some()
        {
            return Err(WorkflowError::Conflict(format!(
                "a workflow named {name:?} already exists"
            )));
        }
        self.write(tenant, body, None).await
    }

    /// Creates or replaces the workflow `name` with `body`; returns it and
    /// whether it is new.
    pub async fn replace(&self, tenant: &str, name: &str, body: &Value) -> Result<(Workflow, bool), WorkflowError> {
        let mut body = body.clone();
        match body.get("name") {
            None => {
                if let Value::Object(fields) = &mut body {
                    fields.insert("name".into(), Value::String(name.to_string()));
                }
            }
            Some(given) if given.as_str() != Some(name) => {
                return Err(ValidationError::new("name", format!("must be {name:?}, the name in the path")).into());
            }
            Some(_) => {}
        }
        let existing = self.store.workflow(tenant, name)?;
        let created = existing.is_none();
        Ok((self.write(tenant, &body, existing.as_ref()).await?, created))
    }

    /// Applies a JSON merge patch to the workflow `name`.
    pub async fn patch(&self, tenant: &str, name: &str, patch: &Value) -> Result<Workflow, WorkflowError> {
        let existing = self
            .store
            .workflow(tenant, name)?
            .ok_or_else(|| WorkflowError::NotFound(name.to_string()))?;
        let mut body = spec_json(&existing);
        merge_patch(&mut body, patch);
        if body.get("name").and_then(Value::as_str) != Some(name) {
            return Err(ValidationError::new("name", "cannot change; create a new workflow instead").into());
        }
        self.write(tenant, &body, Some(&existing)).await
    }

    /// A tenant's workflow.
    pub fn get(&self, tenant: &str, name: &str) -> Result<Workflow, WorkflowError> {
        self.store
            .workflow(tenant, name)?
            .ok_or_else(|| WorkflowError::NotFound(name.to_string()))
    }

    /// A tenant's workflows, by name.
    pub fn list(&self, tenant: &str) -> Result<Vec<Workflow>, WorkflowError> {
        Ok(self.store.list_workflows(tenant)?)
    }

    /// Deletes a workflow; its runs stay, and runs going now finish.
    pub async fn delete(&self, tenant: &str, name: &str) -> Result<(), WorkflowError> {
        if !self.store.delete_workflow(tenant, name)? {
            return Err(WorkflowError::NotFound(name.to_string()));
        }
        self.store.flush_async().await?;
        Ok(())
    }

    /// Checks `body` (over `existing`), that every step's job exists, and
    /// writes it durably.
    async fn write(&self, tenant: &str, body: &Value, existing: Option<&Workflow>) -> Result<Workflow, WorkflowError> {
        let spec = parse_spec(body)?;
        let workflow = check(spec, tenant, existing, self.max_input_bytes, self.clock.now())?;
        for (index, step) in workflow.steps.iter().enumerate() {
            if self.store.job_id_by_name(tenant, &step.job)?.is_none() {
                return Err(ValidationError::new(
                    format!("steps[{index}].job"),
                    format!("no job named {:?}; create it first", step.job),
                )
                .into());
            }
        }
        self.store.put_workflow(&workflow)?;
        self.store.flush_async().await?;
        self.schedule_changed.notify_one();
        Ok(workflow)
    }
}

/// A stored workflow as the spec that would make it again.
pub fn spec_json(workflow: &Workflow) -> Value {
    let mut value = serde_json::to_value(workflow).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut value {
        fields.remove("tenant");
    }
    value
}
