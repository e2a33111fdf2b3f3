//! `sandcron workflow`: create, list, show, delete, pause, resume and run
//! workflows (graphs of steps, each a run of an existing job), and list,
//! show, cancel and retry their runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::arguments::parse_json_arg;
use super::connection::Connection;
use super::output::Output;
use super::print::{describe_schedule, out, print_json};
use crate::client::Client;

/// `sandcron workflow`'s subcommands.
#[derive(Subcommand)]
pub(super) enum WorkflowCommand {
    /// Create a workflow from a file.
    Create(WorkflowCreateArgs),
    /// List workflows.
    Ls,
    /// Show a workflow.
    Get(WorkflowRef),
    /// Delete a workflow (its runs stay).
    Rm(WorkflowRef),
    /// Pause a workflow's schedule.
    Pause(WorkflowRef),
    /// Resume a workflow's schedule.
    Resume(WorkflowRef),
    /// Run a workflow now and print its steps; exits 1 when the run failed.
    Run {
        /// Workflow name.
        workflow: String,
        /// Input for this run (JSON) instead of the workflow's own: what
        /// its first steps (those without needs) get unless a step says.
        #[arg(long)]
        input: Option<String>,
        /// Wait this long for the run to finish ("30s").
        #[arg(long)]
        wait: Option<String>,
    },
    /// List workflow runs, newest first.
    Runs {
        /// Only this workflow's runs.
        #[arg(long)]
        workflow: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Show a workflow run and its steps; exits 1 when it failed.
    Status {
        /// Workflow run id.
        run: String,
        /// Wait this long for it to finish ("30s").
        #[arg(long)]
        wait: Option<String>,
    },
    /// Cancel a workflow run: its running steps are cancelled, nothing new starts.
    Cancel {
        /// Workflow run id.
        run: String,
    },
    /// Run a failed or cancelled workflow run again from its failed,
    /// cancelled and skipped steps; exits 1 when it fails again.
    Retry {
        /// Workflow run id.
        run: String,
        /// Wait this long for it to finish ("30s").
        #[arg(long)]
        wait: Option<String>,
    },
}

/// A workflow named by name.
#[derive(Args)]
pub(super) struct WorkflowRef {
    /// Workflow name.
    workflow: String,
}

/// `sandcron workflow create`'s arguments.
#[derive(Args)]
pub(super) struct WorkflowCreateArgs {
    /// The workflow: a JSON file, or a TOML file (`.toml`) of the same
    /// fields with the steps as `[[steps]]` tables.
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Workflow name (instead of the file's).
    #[arg(long)]
    name: Option<String>,
}

/// The workflow a create sends: the file's fields, `--name` over its name.
fn workflow_body(args: &WorkflowCreateArgs) -> anyhow::Result<Value> {
    let path = &args.file;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut body = if is_toml(path) {
        let table: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
        serde_json::to_value(table)?
    } else {
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?
    };
    if let Some(name) = &args.name {
        let Some(fields) = body.as_object_mut() else {
            bail!("{}: a workflow is an object", path.display());
        };
        fields.insert("name".to_string(), json!(name));
    }
    Ok(body)
}

fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("toml"))
}

/// Creates, lists, shows, deletes, pauses, resumes or runs workflows, or
/// lists, shows, cancels or retries their runs.
pub(super) async fn workflow(command: WorkflowCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    let client = connection.client();
    match command {
        WorkflowCommand::Create(args) => {
            print_json(&client.create_workflow(workflow_body(&args)?).await?);
        }
        WorkflowCommand::Ls => {
            connection.show(&client.workflows().await?, print_workflows);
        }
        WorkflowCommand::Get(WorkflowRef { workflow }) => {
            print_json(&client.workflow(&workflow).await?);
        }
        WorkflowCommand::Rm(WorkflowRef { workflow }) => {
            client.delete_workflow(&workflow).await?;
            out!("deleted {workflow}");
        }
        WorkflowCommand::Pause(WorkflowRef { workflow }) => {
            client.patch_workflow(&workflow, json!({"enabled": false})).await?;
            out!("paused {workflow}");
        }
        WorkflowCommand::Resume(WorkflowRef { workflow }) => {
            client.patch_workflow(&workflow, json!({"enabled": true})).await?;
            out!("resumed {workflow}");
        }
        WorkflowCommand::Run { workflow, input, wait } => {
            let input = input.map(|text| parse_json_arg("--input", &text)).transpose()?;
            let run = client.run_workflow(&workflow, input, wait.as_deref()).await?;
            return Ok(show_run(connection, &client, &run).await);
        }
        WorkflowCommand::Runs { workflow, limit } => {
            let answer = client.workflow_runs(workflow.as_deref(), Some(limit), None).await?;
            connection.show(&answer, print_workflow_runs);
        }
        WorkflowCommand::Status { run, wait } => {
            let run = client.workflow_run(&run, wait.as_deref()).await?;
            return Ok(show_run(connection, &client, &run).await);
        }
        WorkflowCommand::Cancel { run } => {
            let run = client.cancel_workflow_run(&run).await?;
            show_run(connection, &client, &run).await;
        }
        WorkflowCommand::Retry { run, wait } => {
            let run = client.retry_workflow_run(&run, wait.as_deref()).await?;
            return Ok(show_run(connection, &client, &run).await);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a workflow run; as `sandcron job run` does, a failed run fails
/// the command (a script can `sandcron workflow run etl --wait 5m && ...`).
/// A table lists the steps in the order its workflow defines them (while
/// the workflow is there to say), the rest by id.
async fn show_run(connection: &Connection, client: &Client, run: &Value) -> ExitCode {
    let mut order = Vec::new();
    if connection.output == Output::Table
        && let Some(name) = run["workflow"].as_str()
        && let Ok(workflow) = client.workflow(name).await
    {
        let steps = workflow["steps"].as_array().into_iter().flatten();
        order = steps
            .filter_map(|step| step["id"].as_str().map(str::to_string))
            .collect();
    }
    connection.show(run, |run| print_workflow_run(run, &order));
    if run["status"] == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn print_workflows(answer: &Value) {
    out!(
        "{:<26} {:<24} {:>5} {:<8} {:<32} NEXT FIRE",
        "ID",
        "NAME",
        "STEPS",
        "STATE",
        "SCHEDULE"
    );
    for workflow in answer["workflows"].as_array().into_iter().flatten() {
        let state = if workflow["enabled"] == false {
            "paused"
        } else {
            "active"
        };
        out!(
            "{:<26} {:<24} {:>5} {:<8} {:<32} {}",
            workflow["id"].as_str().unwrap_or_default(),
            workflow["name"].as_str().unwrap_or_default(),
            workflow["steps"].as_array().map_or(0, Vec::len),
            state,
            describe_schedule(&workflow["schedule"]),
            workflow["next_fire_at"].as_str().unwrap_or("-"),
        );
    }
}

/// A workflow run's line, then a table of its steps (those in `order`
/// first, in that order, then the others by id), then its error.
fn print_workflow_run(run: &Value, order: &[String]) {
    out!(
        "workflow run {} ({}, {}): {}",
        run["id"].as_str().unwrap_or_default(),
        run["workflow"].as_str().unwrap_or_default(),
        run["trigger"].as_str().unwrap_or_default(),
        run["status"].as_str().unwrap_or_default(),
    );
    out!("{:<24} {:<10} {:>7} {:<26} ERROR", "STEP", "STATUS", "ATTEMPT", "RUN");
    let mut steps: Vec<(&String, &Value)> = run["steps"].as_object().into_iter().flatten().collect();
    steps.sort_by_key(|&(id, _)| (order.iter().position(|step| step == id).unwrap_or(usize::MAX), id));
    for (id, state) in steps {
        let attempt = match state["attempt"].as_u64() {
            Some(0) | None => "-".to_string(),
            Some(attempt) => attempt.to_string(),
        };
        out!(
            "{:<24} {:<10} {:>7} {:<26} {}",
            id,
            state["status"].as_str().unwrap_or_default(),
            attempt,
            state["run_id"].as_str().unwrap_or("-"),
            state["error"].as_str().unwrap_or(""),
        );
    }
    if let Some(error) = run["error"].as_str() {
        out!("error: {error}");
    }
}

fn print_workflow_runs(answer: &Value) {
    out!(
        "{:<26} {:<20} {:<10} {:<9} {:>8} {:>9} {:<20} ERROR",
        "ID",
        "WORKFLOW",
        "STATUS",
        "TRIGGER",
        "STEPS OK",
        "DURATION",
        "STARTED"
    );
    for run in answer["workflow_runs"].as_array().into_iter().flatten() {
        let steps: Vec<&Value> = run["steps"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, state)| state)
            .collect();
        let succeeded = steps.iter().filter(|state| state["status"] == "succeeded").count();
        out!(
            "{:<26} {:<20} {:<10} {:<9} {:>8} {:>9} {:<20} {}",
            run["id"].as_str().unwrap_or_default(),
            run["workflow"].as_str().unwrap_or_default(),
            run["status"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default(),
            format!("{succeeded}/{}", steps.len()),
            duration(run).map_or("-".to_string(), |ms| format!("{ms}ms")),
            run["started_at"]
                .as_str()
                .map(|at| at.get(..19).unwrap_or(at))
                .unwrap_or("-"),
            run["error"].as_str().unwrap_or(""),
        );
    }
}

/// Milliseconds from a finished run's start to its end.
fn duration(run: &Value) -> Option<i64> {
    let instant = |field: &str| run[field].as_str()?.parse::<DateTime<Utc>>().ok();
    Some((instant("finished_at")? - instant("started_at")?).num_milliseconds())
}
