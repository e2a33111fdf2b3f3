//! The `[[workflow]]` tables of a jobs file against the daemon: which to
//! create, which changed in which fields, which are unchanged. The API has
//! no dry run for workflows, so both sides are resolved here by the
//! model's own check (defaults filled in the same way as the daemon does)
//! and compared field by field, as the daemon compares jobs.

use std::collections::BTreeSet;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::client::Client;
use crate::model::validate::ValidationError;
use crate::model::workflow::{Workflow, check, parse_spec};

/// What applying does with a workflow of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum WorkflowChange {
    /// The daemon has none of this name.
    Create,
    /// These top-level fields differ.
    Update(Vec<String>),
    Unchanged,
}

/// A workflow of the file and what applying does with it.
pub(super) struct WorkflowPlan {
    /// Its name.
    pub(super) name: String,
    /// The spec to send.
    pub(super) spec: Value,
    /// Create, update or nothing.
    pub(super) change: WorkflowChange,
}

/// Checks each workflow of the file (its graph, and that every step names
/// one of `jobs`: the file's and the daemon's that stay) and compares it
/// with the daemon's of the same name. A bad one stops the apply before
/// anything changes, as a bad job does.
pub(super) async fn plan(
    client: &Client,
    specs: &[Value],
    jobs: &BTreeSet<String>,
) -> anyhow::Result<Vec<WorkflowPlan>> {
    let now = Utc::now();
    let mut plans = Vec::new();
    for spec in specs {
        let name = spec["name"].as_str().unwrap_or_default().to_string();
        let wanted = resolve(spec, now).with_context(|| format!("workflow {name:?}"))?;
        for (index, step) in wanted.steps.iter().enumerate() {
            if !jobs.contains(&step.job) {
                bail!(
                    "workflow {name:?}: steps[{index}].job: no job named {:?} in the file or on the daemon",
                    step.job
                );
            }
        }
        let change = match client.workflow(&name).await {
            Ok(current) => {
                let current = resolve(&current, now)
                    .with_context(|| format!("workflow {name:?}: the daemon's definition does not read back"))?;
                match changed_fields(&current, &wanted) {
                    fields if fields.is_empty() => WorkflowChange::Unchanged,
                    fields => WorkflowChange::Update(fields),
                }
            }
            Err(error) if error.is_code("workflow_not_found") => WorkflowChange::Create,
            Err(error) => return Err(anyhow::Error::new(error).context(format!("workflow {name:?}"))),
        };
        plans.push(WorkflowPlan {
            name,
            spec: spec.clone(),
            change,
        });
    }
    Ok(plans)
}

/// A workflow as the daemon would store it. The daemon checks the input's
/// size against its own limit when it writes; this check leaves that to it.
fn resolve(body: &Value, now: DateTime<Utc>) -> Result<Workflow, ValidationError> {
    check(parse_spec(body)?, crate::model::DEFAULT_TENANT, None, usize::MAX, now)
}

/// Fields that say nothing about what a workflow does: who and when.
const BOOKKEEPING: [&str; 5] = ["id", "tenant", "created_at", "updated_at", "next_fire_at"];

/// The top-level fields whose values differ between two workflows.
fn changed_fields(before: &Workflow, after: &Workflow) -> Vec<String> {
    let (before, after) = (fields(before), fields(after));
    let keys: BTreeSet<&String> = before
        .as_object()
        .into_iter()
        .chain(after.as_object())
        .flat_map(|object| object.keys())
        .filter(|key| !BOOKKEEPING.contains(&key.as_str()))
        .collect();
    keys.into_iter()
        .filter(|key| before.get(key.as_str()) != after.get(key.as_str()))
        .cloned()
        .collect()
}

fn fields(workflow: &Workflow) -> Value {
    serde_json::to_value(workflow).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn resolved(body: Value) -> Workflow {
        resolve(&body, Utc::now()).expect("a valid workflow")
    }

    fn base() -> Value {
        json!({"name": "etl", "steps": [
            {"id": "extract", "job": "emit"},
            {"id": "load", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
        ]})
    }

    #[test]
    fn defaults_written_out_are_no_change() {
        let mut explicit = base();
        let fields = explicit.as_object_mut().unwrap();
        fields.insert("max_parallel".into(), json!(100));
        fields.insert("on_failure".into(), json!("stop"));
        fields.insert("timeout".into(), json!("24h"));
        fields.insert("enabled".into(), json!(true));
        fields.insert(
            "steps".into(),
            json!([
                {"id": "extract", "job": "emit", "when": "success"},
                {"id": "load", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
            ]),
        );
        assert!(changed_fields(&resolved(base()), &resolved(explicit)).is_empty());
    }

    #[test]
    fn the_daemons_answer_reads_back_as_the_spec_it_came_from() {
        // As GET /v1/workflows/{name} shows it: defaults filled in, and
        // the read-only fields the spec accepts.
        let shown = json!({
            "id": "01JAAAAAAAAAAAAAAAAAAAAAAA", "name": "etl", "max_parallel": 100, "on_failure": "stop",
            "timeout": "1day", "policy": {"misfire": "run_once", "overlap": "skip", "priority": "normal"},
            "enabled": true, "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-02T00:00:00Z",
            "next_fire_at": null,
            "steps": [
                {"id": "extract", "job": "emit", "when": "success"},
                {"id": "load", "job": "echo", "needs": ["extract"], "when": "success", "input": {"from": "extract"}},
            ]
        });
        let shown = resolve(&shown, Utc::now());
        let shown = shown.expect("the view is a spec");
        assert!(changed_fields(&shown, &resolved(base())).is_empty());
    }

    #[test]
    fn each_changed_field_is_named_once() {
        let mut changed = base();
        changed["steps"][1]["retry"] = json!({"max_attempts": 3});
        changed["max_parallel"] = json!(1);
        changed["schedule"] = json!({"every": "1h"});
        assert_eq!(
            changed_fields(&resolved(base()), &resolved(changed)),
            ["max_parallel", "schedule", "steps"]
        );
    }
}
