//! `sandcron job`: create, list, show, delete, pause, resume and run jobs,
//! backfill a past range, show coming fires.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{Value, json};

use super::arguments::parse_json_arg;
use super::connection::Connection;
use super::print::{describe_schedule, out, print_json};
use crate::client::{Body, encode};

/// `sandcron job`'s subcommands.
#[derive(Subcommand)]
pub(super) enum JobCommand {
    /// Create a job.
    Create(Box<JobCreateArgs>),
    /// List jobs.
    Ls {
        /// Only jobs with this label (key=value); repeatable.
        #[arg(long)]
        label: Vec<String>,
    },
    /// Show a job.
    Get(JobRef),
    /// Delete a job.
    Rm(JobRef),
    /// Pause a job.
    Pause(JobRef),
    /// Resume a job.
    Resume(JobRef),
    /// Queue a past range's fires of a job (from included, to excluded).
    Backfill {
        /// Job id or name.
        job: String,
        /// The range's start (RFC 3339).
        #[arg(long)]
        from: String,
        /// Its end, excluded (RFC 3339).
        #[arg(long)]
        to: String,
    },
    /// A job's coming fires, as its scheduler fires them (a week unless --to).
    Fires {
        /// Job id or name.
        job: String,
        /// From (RFC 3339; now unless given).
        #[arg(long)]
        from: Option<String>,
        /// To, excluded (RFC 3339).
        #[arg(long)]
        to: Option<String>,
        /// Fires listed, at most 1000.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Run a job now.
    Run {
        /// Job id or name.
        job: String,
        /// Input for this run (JSON).
        #[arg(long)]
        input: Option<String>,
        /// Wait this long for the run to finish ("30s").
        #[arg(long)]
        wait: Option<String>,
        /// With --wait: a failed run that is retried is followed to its last attempt.
        #[arg(long = "final", requires = "wait")]
        final_attempt: bool,
        /// Record the run's host calls, to replay it (`sandcron replay RUN_ID`).
        #[arg(long)]
        record: bool,
    },
}

/// A job named by id or name.
#[derive(Args)]
pub(super) struct JobRef {
    /// Job id or name.
    job: String,
}

/// `sandcron job create`'s arguments: a job file, fields as flags, or both.
#[derive(Args)]
pub(super) struct JobCreateArgs {
    /// A JSON file with the job (other flags override its fields).
    #[arg(long, short = 'f')]
    file: Option<PathBuf>,
    /// Job name.
    #[arg(long)]
    name: Option<String>,
    /// Plugin (`name` or `name@3`).
    #[arg(long)]
    plugin: Option<String>,
    /// Cron line.
    #[arg(long, conflicts_with_all = ["every", "after", "at"])]
    cron: Option<String>,
    /// Time zone of the cron line.
    #[arg(long, requires = "cron")]
    tz: Option<String>,
    /// Fixed rate ("30s").
    #[arg(long)]
    every: Option<String>,
    /// Fixed delay after the previous run ("1m").
    #[arg(long)]
    after: Option<String>,
    /// Once, at an RFC 3339 instant.
    #[arg(long)]
    at: Option<String>,
    /// Input (JSON).
    #[arg(long)]
    input: Option<String>,
    /// Label key=value; repeatable.
    #[arg(long)]
    label: Vec<String>,
    /// Queue order: low, normal, high or critical.
    #[arg(long, value_parser = ["low", "normal", "high", "critical"])]
    priority: Option<String>,
    /// Attempts in all for a failed run, the first included (3: two retries).
    #[arg(long, value_name = "ATTEMPTS")]
    retry: Option<u32>,
    /// The first retry's delay ("10s"), doubled for each next one.
    #[arg(long, requires = "retry")]
    backoff: Option<String>,
    /// A run's deadline ("30s").
    #[arg(long)]
    timeout: Option<String>,
    /// A run's memory cap ("64MiB").
    #[arg(long)]
    memory: Option<String>,
    /// A run's fuel budget (wasm instructions, roughly).
    #[arg(long)]
    fuel: Option<u64>,
    /// Also run when the daemon starts (and once now).
    #[arg(long)]
    run_at_start: bool,
    /// Record every run's host calls, to replay it (`sandcron replay RUN_ID`).
    #[arg(long)]
    record: bool,
    /// A host the plugin may reach over HTTP ("api.example.com", "*.example.com"); repeatable.
    #[arg(long = "http-allow", value_name = "PATTERN")]
    http_allow: Vec<String>,
    /// A secret the plugin may read; repeatable.
    #[arg(long = "secret", value_name = "NAME")]
    secrets: Vec<String>,
}

fn job_body(args: &JobCreateArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            parse_json_arg("--file", &text)?
        }
        None => json!({}),
    };
    if let Some(name) = &args.name {
        set(&mut body, &["name"], json!(name))?;
    }
    if let Some(plugin) = &args.plugin {
        set(&mut body, &["plugin"], json!(plugin))?;
    }
    if let Some(cron) = &args.cron {
        set(
            &mut body,
            &["schedule"],
            json!({"cron": cron, "timezone": args.tz.clone().unwrap_or_else(|| "UTC".to_string())}),
        )?;
    } else if let Some(every) = &args.every {
        set(&mut body, &["schedule"], json!({"every": every}))?;
    } else if let Some(after) = &args.after {
        set(&mut body, &["schedule"], json!({"after": after}))?;
    } else if let Some(at) = &args.at {
        set(&mut body, &["schedule"], json!({"at": at}))?;
    }
    if let Some(input) = &args.input {
        set(&mut body, &["input"], parse_json_arg("--input", input)?)?;
    }
    for label in &args.label {
        let (key, value) = label
            .split_once('=')
            .with_context(|| format!("--label {label:?}: expected key=value"))?;
        set(&mut body, &["labels", key], json!(value))?;
    }
    if let Some(priority) = &args.priority {
        set(&mut body, &["policy", "priority"], json!(priority))?;
    }
    if let Some(attempts) = args.retry {
        set(&mut body, &["policy", "retry", "max_attempts"], json!(attempts))?;
    }
    if let Some(backoff) = &args.backoff {
        set(&mut body, &["policy", "retry", "backoff"], json!(backoff))?;
    }
    if let Some(timeout) = &args.timeout {
        set(&mut body, &["limits", "timeout"], json!(timeout))?;
    }
    if let Some(memory) = &args.memory {
        set(&mut body, &["limits", "memory"], json!(memory))?;
    }
    if let Some(fuel) = args.fuel {
        set(&mut body, &["limits", "fuel"], json!(fuel))?;
    }
    if args.run_at_start {
        set(&mut body, &["run_at_start"], json!(true))?;
    }
    if args.record {
        set(&mut body, &["record"], json!(true))?;
    }
    if !args.http_allow.is_empty() {
        set(&mut body, &["http_allow"], json!(args.http_allow))?;
    }
    if !args.secrets.is_empty() {
        set(&mut body, &["secrets"], json!(args.secrets))?;
    }
    Ok(body)
}

/// Sets the field at `path` in a job body, making the objects on the way;
/// a body from `--file` with something else there is an error, not a panic.
fn set(body: &mut Value, path: &[&str], value: Value) -> anyhow::Result<()> {
    let mut at = body;
    for (depth, key) in path.iter().enumerate() {
        if at.is_null() {
            *at = json!({});
        }
        let Some(object) = at.as_object_mut() else {
            bail!("the job file's {} is not an object", field_name(&path[..depth]));
        };
        at = object.entry(key.to_string()).or_insert(Value::Null);
    }
    *at = value;
    Ok(())
}

/// A JSON string's text, or the value as JSON.
fn text_of(value: &Value) -> String {
    value.as_str().map_or_else(|| value.to_string(), str::to_string)
}

/// `policy.retry`, or "top level" for the body itself.
fn field_name(path: &[&str]) -> String {
    if path.is_empty() {
        "top level".to_string()
    } else {
        path.join(".")
    }
}

/// Creates, lists, shows, deletes, pauses, resumes or runs jobs.
pub(super) async fn job(command: JobCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        JobCommand::Create(args) => {
            let body = job_body(&args)?;
            print_json(&connection.client().post("/v1/jobs", body).await?);
        }
        JobCommand::Ls { label } => {
            let query: Vec<String> = label.iter().map(|label| format!("label={}", encode(label))).collect();
            let answer = connection
                .client()
                .get(&format!("/v1/jobs?{}", query.join("&")))
                .await?;
            connection.show(&answer, |answer| {
                out!(
                    "{:<26} {:<24} {:<16} {:<8} {:<32} NEXT FIRE",
                    "ID",
                    "NAME",
                    "PLUGIN",
                    "STATE",
                    "SCHEDULE"
                );
                for job in answer["jobs"].as_array().into_iter().flatten() {
                    out!(
                        "{:<26} {:<24} {:<16} {:<8} {:<32} {}",
                        job["id"].as_str().unwrap_or_default(),
                        job["name"].as_str().unwrap_or_default(),
                        job["plugin"].as_str().unwrap_or_default(),
                        job["state"].as_str().unwrap_or_default(),
                        describe_schedule(&job["schedule"]),
                        job["next_fire_at"].as_str().unwrap_or("-"),
                    );
                }
            });
        }
        JobCommand::Get(JobRef { job }) => {
            print_json(&connection.client().get(&format!("/v1/jobs/{}", encode(&job))).await?);
        }
        JobCommand::Rm(JobRef { job }) => {
            connection
                .client()
                .call(Method::DELETE, &format!("/v1/jobs/{}", encode(&job)), Body::None)
                .await?;
            out!("deleted {job}");
        }
        JobCommand::Pause(JobRef { job }) => {
            connection
                .client()
                .post(&format!("/v1/jobs/{}/pause", encode(&job)), Value::Null)
                .await?;
            out!("paused {job}");
        }
        JobCommand::Resume(JobRef { job }) => {
            connection
                .client()
                .post(&format!("/v1/jobs/{}/resume", encode(&job)), Value::Null)
                .await?;
            out!("resumed {job}");
        }
        JobCommand::Backfill { job, from, to } => {
            let answer = connection
                .client()
                .post(
                    &format!("/v1/jobs/{}/backfill", encode(&job)),
                    json!({"from": from, "to": to}),
                )
                .await?;
            connection.show(&answer, |answer| {
                out!(
                    "{} fires in the range: {} queued, {} recorded before, {} skipped (overlap)",
                    answer["fires"],
                    answer["queued"],
                    answer["already_recorded"],
                    answer["skipped"]
                );
                for run in answer["runs"].as_array().into_iter().flatten() {
                    out!(
                        "{} {}",
                        run["id"].as_str().unwrap_or_default(),
                        run["scheduled_at"].as_str().unwrap_or_default()
                    );
                }
            });
        }
        JobCommand::Fires { job, from, to, limit } => {
            let mut query = vec![format!("limit={limit}")];
            query.extend(from.map(|from| format!("from={}", encode(&from))));
            query.extend(to.map(|to| format!("to={}", encode(&to))));
            let answer = connection
                .client()
                .get(&format!("/v1/jobs/{}/fires?{}", encode(&job), query.join("&")))
                .await?;
            connection.show(&answer, |answer| {
                out!("{:<32} DUE (WITH JITTER)", "FIRE");
                for fire in answer["fires"].as_array().into_iter().flatten() {
                    out!(
                        "{:<32} {}",
                        fire["at"].as_str().unwrap_or_default(),
                        fire["due_at"].as_str().unwrap_or_default()
                    );
                }
                out!(
                    "{} fires from {} to {}",
                    answer["total"],
                    text_of(&answer["from"]),
                    text_of(&answer["to"])
                );
            });
        }
        JobCommand::Run {
            job,
            input,
            wait,
            final_attempt,
            record,
        } => {
            let body = match input {
                Some(text) => json!({"input": parse_json_arg("--input", &text)?}),
                None => json!({}),
            };
            let mut query = Vec::new();
            if let Some(wait) = wait {
                query.push(format!("wait={}", encode(&wait)));
            }
            if final_attempt {
                query.push("final_attempt=true".to_string());
            }
            if record {
                query.push("record=true".to_string());
            }
            let query = match query.is_empty() {
                true => String::new(),
                false => format!("?{}", query.join("&")),
            };
            let run = connection
                .client()
                .post(&format!("/v1/jobs/{}/run{query}", encode(&job)), body)
                .await?;
            print_json(&run);
            if run["status"] == "failed" {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
