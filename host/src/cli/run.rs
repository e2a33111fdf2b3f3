//! `sandcron runs`, `run` and `logs`: a tenant's runs, listed or followed,
//! one run, and a run's log.

use std::process::ExitCode;

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::connection::Connection;
use super::output::Output;
use super::print::{out, print_json, write};
use crate::client::{Body, ClientError, encode};

/// `sandcron runs`' arguments.
#[derive(Args)]
pub(super) struct RunsArgs {
    /// Only this job's runs (id or name).
    #[arg(long)]
    job: Option<String>,
    /// Only runs in this status.
    #[arg(long)]
    status: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Print JSON instead of a table (as --output json).
    #[arg(long)]
    json: bool,
    /// Then keep printing runs as they are queued, start and finish.
    #[arg(long, short = 'f')]
    follow: bool,
}

/// `sandcron run`'s arguments.
#[derive(Args)]
pub(super) struct RunArgs {
    /// Run id.
    run: String,
}

/// `sandcron logs`' arguments.
#[derive(Args)]
pub(super) struct LogsArgs {
    /// Run id.
    run: String,
    /// Keep printing the log as the run writes it, until it finishes.
    #[arg(long, short = 'f')]
    follow: bool,
}

/// Prints a run as the API gives it.
pub(super) async fn run(args: RunArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    print_json(
        &connection
            .client()
            .get(&format!("/v1/runs/{}", encode(&args.run)))
            .await?,
    );
    Ok(ExitCode::SUCCESS)
}

/// Lists runs, newest first, then with `--follow` prints them as they change.
pub(super) async fn runs(args: RunsArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let mut query = vec![format!("limit={}", args.limit)];
    if let Some(job) = &args.job {
        query.push(format!("job={}", encode(job)));
    }
    if let Some(status) = &args.status {
        query.push(format!("status={}", encode(status)));
    }
    let answer = connection
        .client()
        .get(&format!("/v1/runs?{}", query.join("&")))
        .await?;
    let json = args.json || connection.output == Output::Json;
    if json {
        print_json(&answer);
    } else {
        print_runs(&answer);
    }
    if args.follow {
        follow_runs(&args, connection, json).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints run events as they come, reconnecting (and resuming where it
/// left off) when the stream drops; runs until interrupted.
async fn follow_runs(args: &RunsArgs, connection: &Connection, json: bool) -> anyhow::Result<()> {
    let client = connection.client();
    let mut path = "/v1/events?types=run".to_string();
    if let Some(job) = &args.job {
        path.push_str(&format!("&job={}", encode(job)));
    }
    let mut last_id: Option<u64> = None;
    loop {
        let mut response = match client.stream(&path, last_id).await {
            Ok(response) => response,
            Err(error @ ClientError::Api { .. }) => return Err(error.into()),
            Err(error) => {
                eprintln!("{error}; reconnecting");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|line| line.strip_prefix("data: ")) else {
                    continue;
                };
                let Ok(event) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                last_id = event["id"].as_u64().or(last_id);
                let run = &event["data"];
                if args.status.as_deref().is_some_and(|status| run["status"] != status) {
                    continue;
                }
                if json {
                    out!("{event}");
                } else if event["kind"].is_string() {
                    out!(
                        "{:<24} {:<13} {:<20} {:<26} {:<10} {:>9} {}",
                        event["at"].as_str().map_or("-", |at| at.get(..23).unwrap_or(at)),
                        event["kind"].as_str().unwrap_or_default(),
                        run["job_name"].as_str().unwrap_or_default(),
                        run["run_id"].as_str().unwrap_or_default(),
                        run["status"].as_str().unwrap_or_default(),
                        run["duration_ms"]
                            .as_u64()
                            .map_or("-".to_string(), |ms| format!("{ms}ms")),
                        run["error"]["kind"].as_str().unwrap_or(""),
                    );
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Prints a run's log; with `follow`, the log so far and what comes next
/// until the run finishes.
pub(super) async fn logs(args: LogsArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let client = connection.client();
    let run = encode(&args.run);
    let path = format!("/v1/runs/{run}/logs");
    let mut printed = 0;
    loop {
        // The status first: a log read after a finished status is complete.
        let finished = !args.follow || client.get(&format!("/v1/runs/{run}")).await?["finished_at"].is_string();
        let log = client.call(Method::GET, &path, Body::None).await?.body;
        if log.len() > printed {
            write(&log[printed..]);
            printed = log.len();
        }
        if finished {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
}

fn print_runs(answer: &Value) {
    out!(
        "{:<26} {:<20} {:<10} {:<9} {:>9} {:<20} ERROR",
        "ID",
        "JOB",
        "STATUS",
        "TRIGGER",
        "DURATION",
        "STARTED"
    );
    for run in answer["runs"].as_array().into_iter().flatten() {
        let duration = run["duration_ms"]
            .as_u64()
            .map(|ms| format!("{ms}ms"))
            .unwrap_or_else(|| "-".to_string());
        let error = run["error"]["kind"].as_str().unwrap_or("");
        out!(
            "{:<26} {:<20} {:<10} {:<9} {:>9} {:<20} {}",
            run["id"].as_str().unwrap_or_default(),
            run["job_name"].as_str().unwrap_or_default(),
            run["status"].as_str().unwrap_or_default(),
            run["trigger"].as_str().unwrap_or_default(),
            duration,
            run["started_at"]
                .as_str()
                .map(|at| at.get(..19).unwrap_or(at))
                .unwrap_or("-"),
            error,
        );
    }
}
