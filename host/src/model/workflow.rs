//! Workflows: jobs that run as a graph of steps. What users send
//! ([`WorkflowSpec`]) and the stored definition ([`Workflow`]), checked by
//! [`check`]: ids unique, `needs` naming earlier-defined or later steps but
//! never forming a cycle, data and conditions only from needed steps.
//! Whether the jobs exist is the caller's check (it has the store).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::job::{Misfire, Overlap, Priority, Retry, RetrySpec, Webhook, input_bytes};
use super::name::check_name;
use super::validate::{ValidationError, check_webhooks, resolve_retry};
pub use super::when::When;
use crate::timing::Schedule;
use crate::units::NumberOrText;

/// The most steps one workflow may have.
pub const MAX_STEPS: usize = 100;
/// The longest a workflow run may take when its definition says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The longest `timeout` a workflow may ask for.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(7 * 24 * 3600);

/// A workflow as sent to `POST /v1/workflows` and `PUT /v1/workflows/{name}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    /// Unique per tenant.
    pub name: Option<String>,
    /// A job's schedule object; null or absent for on demand.
    #[serde(default)]
    pub schedule: Value,
    /// Handed to the root steps (steps without `needs`) that take no input
    /// of their own, and readable by `if`.
    #[serde(default)]
    pub input: Value,
    /// Steps running at once in one workflow run (default: all).
    pub max_parallel: Option<u32>,
    /// What a failed step does to the rest.
    pub on_failure: Option<OnFailure>,
    /// The longest a workflow run may take (`"1h"`).
    pub timeout: Option<NumberOrText>,
    /// Fires and overlap between workflow runs, queue order of its steps.
    pub policy: Option<WorkflowPolicySpec>,
    /// False pauses its schedule.
    pub enabled: Option<bool>,
    /// Whom its runs' starts and ends notify (`on`: `started`,
    /// `succeeded`, `failed`).
    pub webhooks: Option<Vec<Webhook>>,
    /// The graph.
    pub steps: Option<Vec<StepSpec>>,
    /// Read-only fields GET shows, accepted so a fetched workflow can be
    /// sent back as it is.
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<Value>,
    #[serde(default, rename = "next_fire_at")]
    _next_fire_at: Option<Value>,
}

/// A workflow's policy as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowPolicySpec {
    /// Missed fires.
    pub misfire: Option<Misfire>,
    /// A fire while the previous workflow run is still going.
    pub overlap: Option<Overlap>,
    /// Queue order of its steps' runs.
    pub priority: Option<Priority>,
}

/// One step as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    /// Unique in the workflow.
    pub id: Option<String>,
    /// The name of the job whose plugin, limits and grants the step runs.
    pub job: Option<String>,
    /// Steps that must finish first.
    #[serde(default)]
    pub needs: Vec<String>,
    /// Which outcomes of the needed steps start it.
    pub when: Option<When>,
    /// A comparison that must hold too.
    #[serde(rename = "if")]
    pub condition: Option<Condition>,
    /// What it gets as input.
    pub input: Option<StepInput>,
    /// Its own retry policy, instead of the job's.
    pub retry: Option<RetrySpec>,
}

/// What a failed step does to the rest of its workflow run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Start nothing new but handlers (`when: failure` or `always`); the
    /// steps already going finish.
    #[default]
    Stop,
    /// Go on with every step whose conditions hold.
    Continue,
}

/// A comparison on a needed step's JSON output, or on the workflow run's
/// input when `from` is absent: `{"from": "fetch", "pointer": "/count",
/// "gt": 0}`. Exactly one of `eq`, `ne`, `gt`, `lt`, `exists`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// The needed step whose output is read; absent: the workflow input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// A JSON pointer into it (`""` is the whole document).
    #[serde(default)]
    pub pointer: String,
    /// Equal to this JSON value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub eq: Option<Value>,
    /// Not equal to this JSON value (a missing value is not equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub ne: Option<Value>,
    /// A number greater than this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gt: Option<f64>,
    /// A number less than this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lt: Option<f64>,
    /// Whether the pointer finds a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

impl Condition {
    /// Whether it holds on `document` (None: not JSON or nothing there).
    pub fn holds(&self, document: Option<&Value>) -> bool {
        let found = document.and_then(|document| document.pointer(&self.pointer));
        if let Some(expected) = &self.eq {
            return found == Some(expected);
        }
        if let Some(unexpected) = &self.ne {
            return found != Some(unexpected);
        }
        if let Some(bound) = self.gt {
            return found.and_then(Value::as_f64).is_some_and(|value| value > bound);
        }
        if let Some(bound) = self.lt {
            return found.and_then(Value::as_f64).is_some_and(|value| value < bound);
        }
        if let Some(wanted) = self.exists {
            return found.is_some() == wanted;
        }
        false
    }

    fn operators(&self) -> usize {
        [
            self.eq.is_some(),
            self.ne.is_some(),
            self.gt.is_some(),
            self.lt.is_some(),
            self.exists.is_some(),
        ]
        .into_iter()
        .filter(|given| *given)
        .count()
    }
}

/// What a step gets as input. None at all: its job's own input (a root
/// step: the workflow input when the workflow has one).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepInput {
    /// That needed step's output bytes, as they are.
    From(String),
    /// A JSON object of those needed steps' outputs by step id (each as
    /// JSON when it parses, else as a string; null when it did not run).
    Merge(Vec<String>),
    /// This JSON value.
    Value(Value),
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Step {
    /// Unique in the workflow.
    pub id: String,
    /// The job's name.
    pub job: String,
    /// Steps that must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Which outcomes of the needed steps start it.
    #[serde(default)]
    pub when: When,
    /// A comparison that must hold too.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// What it gets as input: `{"from": id}`, `{"merge": [ids]}` or
    /// `{"value": JSON}` (absent: its job's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub input: Option<StepInput>,
    /// Its own retry policy (None: the job's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
}

impl Step {
    /// The steps whose outputs it reads (its input and its condition).
    pub fn reads(&self) -> impl Iterator<Item = &str> {
        let input: Vec<&str> = match &self.input {
            Some(StepInput::From(id)) => vec![id.as_str()],
            Some(StepInput::Merge(ids)) => ids.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        };
        let condition = self.condition.as_ref().and_then(|condition| condition.from.as_deref());
        input.into_iter().chain(condition)
    }
}

/// A workflow's resolved policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WorkflowPolicy {
    /// Missed fires.
    pub misfire: Misfire,
    /// A fire while the previous workflow run is still going: `skip` (the
    /// default), `allow`, `queue` (starts when the previous one ends) or
    /// `replace` (cancels it).
    pub overlap: Overlap,
    /// Queue order of its steps' runs.
    pub priority: Priority,
}

/// A stored workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Time-ordered id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Unique per tenant.
    pub name: String,
    /// When it fires; None: on demand.
    #[serde(with = "super::job::optional_schedule", default)]
    pub schedule: Option<Schedule>,
    /// The input of its runs (JSON null: none).
    #[serde(default)]
    pub input: Value,
    /// Steps running at once in one workflow run.
    pub max_parallel: u32,
    /// What a failed step does.
    pub on_failure: OnFailure,
    /// The longest a workflow run may take.
    #[serde(with = "super::job::duration_text")]
    pub timeout: Duration,
    /// Fires, overlap, queue order.
    pub policy: WorkflowPolicy,
    /// False pauses its schedule.
    pub enabled: bool,
    /// The graph, in the order given.
    pub steps: Vec<Step>,
    /// Whom its runs notify.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Its next scheduled fire.
    #[serde(default)]
    pub next_fire_at: Option<DateTime<Utc>>,
}

impl Workflow {
    /// The input of a run (`given` replaces the workflow's own).
    pub fn input_of(&self, given: Option<&Value>) -> Option<Vec<u8>> {
        match given.unwrap_or(&self.input) {
            Value::Null => None,
            value => Some(input_bytes(value)),
        }
    }

    /// The step of this id.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.id == id)
    }

    /// The names of the jobs its steps run, each once.
    pub fn jobs(&self) -> BTreeSet<&str> {
        self.steps.iter().map(|step| step.job.as_str()).collect()
    }
}

/// Parses a request body as a workflow spec, naming the field at fault
/// (`steps[2].when`, an unknown `steps[0].colour`).
pub fn parse_spec(body: &Value) -> Result<WorkflowSpec, ValidationError> {
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ValidationError::new(field, error.into_inner().to_string())
    })
}

/// Checks a spec and resolves its defaults into a workflow of `tenant`
/// (`existing`: the one it replaces, whose id and creation it keeps).
pub fn check(
    spec: WorkflowSpec,
    tenant: &str,
    existing: Option<&Workflow>,
    max_input_bytes: usize,
    now: DateTime<Utc>,
) -> Result<Workflow, ValidationError> {
    let name = spec.name.ok_or_else(|| ValidationError::new("name", "is required"))?;
    check_name(&name).map_err(|message| ValidationError::new("name", message))?;
    let schedule = Schedule::from_json(&spec.schedule).map_err(|error| ValidationError {
        code: error.code(),
        field: error.field(),
        message: error.detail(),
    })?;
    if let Some(rule) = schedule.as_ref().and_then(|schedule| schedule.rules.first_set()) {
        return Err(ValidationError {
            code: "invalid_schedule",
            field: format!("schedule.{rule}"),
            message: "a workflow's schedule takes no rules (jitter, exclude, not_before, not_after, max_fires): they apply to jobs' schedules only".to_string(),
        });
    }
    let size = input_bytes(&spec.input).len();
    if size > max_input_bytes {
        return Err(ValidationError::new(
            "input",
            format!("is {size} bytes of JSON; the limit is {max_input_bytes}"),
        ));
    }
    let steps = check_steps(spec.steps.unwrap_or_default())?;
    let max_parallel = spec.max_parallel.unwrap_or(MAX_STEPS as u32);
    if max_parallel == 0 {
        return Err(ValidationError::new("max_parallel", "must be at least 1"));
    }
    let timeout = match spec.timeout {
        Some(value) => value
            .to_duration()
            .map_err(|message| ValidationError::new("timeout", message))?,
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() || timeout > MAX_TIMEOUT {
        return Err(ValidationError::new(
            "timeout",
            "must be more than 0 and at most 7 days",
        ));
    }
    let policy = spec.policy.unwrap_or_default();
    let enabled = spec.enabled.unwrap_or(true);
    let webhooks = spec.webhooks.unwrap_or_default();
    check_webhooks(&webhooks)?;
    let created_at = existing.map_or(now, |workflow| workflow.created_at);
    let next_fire_at = match (&schedule, enabled) {
        (Some(schedule), true) => schedule.next_fire(now, created_at, None),
        _ => None,
    };
    Ok(Workflow {
        id: existing.map_or_else(super::id::new_id, |workflow| workflow.id.clone()),
        tenant: tenant.to_string(),
        name,
        schedule,
        input: spec.input,
        max_parallel,
        on_failure: spec.on_failure.unwrap_or_default(),
        timeout,
        policy: WorkflowPolicy {
            misfire: policy.misfire.unwrap_or_default(),
            overlap: policy.overlap.unwrap_or_default(),
            priority: policy.priority.unwrap_or_default(),
        },
        enabled,
        steps,
        webhooks,
        created_at,
        updated_at: now,
        next_fire_at,
    })
}

fn check_steps(specs: Vec<StepSpec>) -> Result<Vec<Step>, ValidationError> {
    if specs.is_empty() {
        return Err(ValidationError::new("steps", "is required: at least one step"));
    }
    if specs.len() > MAX_STEPS {
        return Err(ValidationError::new(
            "steps",
            format!("has {} steps; the limit is {MAX_STEPS}", specs.len()),
        ));
    }
    let mut steps = Vec::with_capacity(specs.len());
    let mut seen = HashMap::new();
    for (index, spec) in specs.into_iter().enumerate() {
        let field = |name: &str| format!("steps[{index}].{name}");
        let id = spec
            .id
            .ok_or_else(|| ValidationError::new(field("id"), "is required"))?;
        check_name(&id).map_err(|message| ValidationError::new(field("id"), message))?;
        if let Some(first) = seen.insert(id.clone(), index) {
            return Err(ValidationError::new(
                field("id"),
                format!("{id:?} is also the id of steps[{first}]"),
            ));
        }
        let job = spec
            .job
            .ok_or_else(|| ValidationError::new(field("job"), "is required"))?;
        check_name(&job).map_err(|message| ValidationError::new(field("job"), message))?;
        let mut needs = Vec::with_capacity(spec.needs.len());
        for need in spec.needs {
            if need == id {
                return Err(ValidationError::new(field("needs"), format!("{id:?} needs itself")));
            }
            if needs.contains(&need) {
                return Err(ValidationError::new(field("needs"), format!("names {need:?} twice")));
            }
            needs.push(need);
        }
        let retry = match spec.retry {
            Some(retry) => Some(resolve_retry(&field("retry"), Some(retry))?),
            None => None,
        };
        if let Some(condition) = &spec.condition
            && condition.operators() != 1
        {
            return Err(ValidationError::new(
                field("if"),
                "needs exactly one of eq, ne, gt, lt, exists",
            ));
        }
        if let Some(condition) = &spec.condition
            && !(condition.pointer.is_empty() || condition.pointer.starts_with('/'))
        {
            return Err(ValidationError::new(
                field("if.pointer"),
                "is a JSON pointer: empty or starting with '/'",
            ));
        }
        if let Some(StepInput::Merge(ids)) = &spec.input
            && ids.is_empty()
        {
            return Err(ValidationError::new(field("input.merge"), "names no step"));
        }
        let step = Step {
            id,
            job,
            needs,
            when: spec.when.unwrap_or_default(),
            condition: spec.condition,
            input: spec.input,
            retry,
        };
        for read in step.reads() {
            if !step.needs.iter().any(|need| need == read) {
                let at = if step.condition.as_ref().and_then(|c| c.from.as_deref()) == Some(read) {
                    "if.from"
                } else {
                    "input"
                };
                return Err(ValidationError::new(
                    field(at),
                    format!("reads the output of {read:?}, which is not in needs"),
                ));
            }
        }
        steps.push(step);
    }
    for (index, step) in steps.iter().enumerate() {
        for need in &step.needs {
            if !seen.contains_key(need) {
                return Err(ValidationError::new(
                    format!("steps[{index}].needs"),
                    format!("names {need:?}, which is no step's id"),
                ));
            }
        }
    }
    if let Some(cycle) = find_cycle(&steps) {
        return Err(ValidationError::new(
            "steps",
            format!("needs form a cycle: {}", cycle.join(" -> ")),
        ));
    }
    Ok(steps)
}

/// A cycle through `needs`, as step ids from a step back to itself.
fn find_cycle(steps: &[Step]) -> Option<Vec<String>> {
    let index: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(at, step)| (step.id.as_str(), at))
        .collect();
    // 0: not visited, 1: on the current path, 2: done.
    let mut state = vec![0u8; steps.len()];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..steps.len() {
        if state[start] != 0 {
            continue;
        }
        // An explicit stack of (step, next need to look at): no recursion
        // on input.
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        path.push(start);
        while let Some((at, next)) = stack.last_mut() {
            let step = &steps[*at];
            if let Some(need) = step.needs.get(*next) {
                *next += 1;
                let Some(&target) = index.get(need.as_str()) else {
                    continue;
                };
                match state[target] {
                    0 => {
                        state[target] = 1;
                        path.push(target);
                        stack.push((target, 0));
                    }
                    1 => {
                        let from = path.iter().position(|&p| p == target).unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..].iter().map(|&p| steps[p].id.clone()).collect();
                        cycle.push(steps[target].id.clone());
                        return Some(cycle);
                    }
                    _ => {}
                }
            } else {
                state[*at] = 2;
                path.pop();
                stack.pop();
            }
        }
    }
    None
}

/// The steps in an order where each comes after every step it needs.
pub fn topological(steps: &[Step]) -> Vec<&Step> {
    let mut placed: BTreeMap<&str, ()> = BTreeMap::new();
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let before = order.len();
        for step in steps {
            if !placed.contains_key(step.id.as_str())
                && step.needs.iter().all(|need| placed.contains_key(need.as_str()))
            {
                placed.insert(&step.id, ());
                order.push(step);
            }
        }
        if order.len() == before {
            break; // a cycle: `check` refuses these
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn checked(body: Value) -> Result<Workflow, ValidationError> {
        check(parse_spec(&body)?, "t", None, 1 << 20, Utc::now())
    }

    #[test]
    fn a_diamond_is_accepted_with_its_defaults() {
        let workflow = checked(json!({
            "name": "etl",
            "steps": [
                {"id": "a", "job": "extract"},
                {"id": "b", "job": "clean", "needs": ["a"], "input": {"from": "a"}},
                {"id": "c", "job": "clean", "needs": ["a"]},
                {"id": "d", "job": "load", "needs": ["b", "c"], "input": {"merge": ["b", "c"]},
                 "if": {"from": "b", "pointer": "/rows", "gt": 0}, "retry": {"max_attempts": 3}},
            ]
        }))
        .unwrap();
        assert_eq!(workflow.on_failure, OnFailure::Stop);
        assert_eq!(workflow.max_parallel, MAX_STEPS as u32);
        assert_eq!(workflow.timeout, DEFAULT_TIMEOUT);
        assert_eq!(workflow.steps[3].retry.unwrap().max_attempts, 3);
        assert_eq!(workflow.steps[3].when, When::Success);
        assert_eq!(workflow.jobs().len(), 3);
        let order: Vec<&str> = topological(&workflow.steps)
            .iter()
            .map(|step| step.id.as_str())
            .collect();
        assert_eq!(order, ["a", "b", "c", "d"]);
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let step = |extra: Value| {
            let mut step = json!({"id": "a", "job": "j"});
            step.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            step
        };
        let cases = [
            (json!({"steps": [step(json!({}))]}), "name"),
            (json!({"name": "w"}), "steps"),
            (json!({"name": "w", "steps": []}), "steps"),
            (json!({"name": "w", "steps": [{"job": "j"}]}), "steps[0].id"),
            (json!({"name": "w", "steps": [{"id": "a"}]}), "steps[0].job"),
            (
                json!({"name": "w", "steps": [step(json!({})), step(json!({}))]}),
                "steps[1].id",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"needs": ["zz"]}))]}),
                "steps[0].needs",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"needs": ["a"]}))]}),
                "steps[0].needs",
            ),
            (
                json!({"name": "w", "steps": [
                    {"id": "a", "job": "j", "needs": ["c"]},
                    {"id": "b", "job": "j", "needs": ["a"]},
                    {"id": "c", "job": "j", "needs": ["b"]}]}),
                "steps",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"input": {"from": "b"}})), {"id": "b", "job": "j"}]}),
                "steps[0].input",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"if": {"pointer": "/x", "eq": 1, "ne": 2}}))]}),
                "steps[0].if",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"if": {"pointer": "x", "exists": true}}))]}),
                "steps[0].if.pointer",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"retry": {"max_attempts": 0}}))]}),
                "steps[0].retry.max_attempts",
            ),
            (
                json!({"name": "w", "max_parallel": 0, "steps": [step(json!({}))]}),
                "max_parallel",
            ),
            (
                json!({"name": "w", "timeout": "0s", "steps": [step(json!({}))]}),
                "timeout",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"when": "sometimes"}))]}),
                "steps[0].when",
            ),
            (
                json!({"name": "w", "steps": [step(json!({"colour": 1}))]}),
                "steps[0].colour",
            ),
            (json!({"name": "w", "colour": 1, "steps": [step(json!({}))]}), "colour"),
        ];
        for (body, field) in cases {
            let error = checked(body.clone()).unwrap_err();
            assert_eq!(error.field, field, "{body}: {error}");
        }
        let many: Vec<Value> = (0..=MAX_STEPS)
            .map(|at| json!({"id": format!("s{at}"), "job": "j"}))
            .collect();
        let error = checked(json!({"name": "w", "steps": many})).unwrap_err();
        assert_eq!(error.field, "steps");
        assert!(error.message.contains("limit is 100"), "{error}");
    }

    #[test]
    fn a_cycle_is_shown_step_by_step() {
        let error = checked(json!({"name": "w", "steps": [
            {"id": "a", "job": "j"},
            {"id": "b", "job": "j", "needs": ["a", "d"]},
            {"id": "c", "job": "j", "needs": ["b"]},
            {"id": "d", "job": "j", "needs": ["c"]}]}))
        .unwrap_err();
        assert_eq!(error.message, "needs form a cycle: b -> d -> c -> b");
    }

    #[test]
    fn conditions_compare_what_the_pointer_finds() {
        let document = json!({"rows": 3, "status": "ok", "items": [1, 2]});
        let condition = |value: Value| -> Condition { serde_json::from_value(value).unwrap() };
        let cases = [
            (json!({"pointer": "/rows", "eq": 3}), true),
            (json!({"pointer": "/rows", "eq": "3"}), false),
            (json!({"pointer": "/status", "ne": "ok"}), false),
            (json!({"pointer": "/missing", "ne": "ok"}), true),
            (json!({"pointer": "/rows", "gt": 2}), true),
            (json!({"pointer": "/rows", "gt": 3}), false),
            (json!({"pointer": "/status", "gt": 0}), false),
            (json!({"pointer": "/rows", "lt": 3.5}), true),
            (json!({"pointer": "/items/1", "exists": true}), true),
            (json!({"pointer": "/items/2", "exists": false}), true),
            (json!({"pointer": "", "exists": true}), true),
        ];
        for (given, expected) in cases {
            assert_eq!(condition(given.clone()).holds(Some(&document)), expected, "{given}");
        }
        assert!(!condition(json!({"pointer": "", "exists": true})).holds(None));
        assert!(condition(json!({"pointer": "/a", "exists": false})).holds(None));
    }
}
