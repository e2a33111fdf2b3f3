//! `sandcron replay` (a recorded run executed again against its record, by
//! the daemon) and `sandcron record` (a recorded run's record, to replay
//! offline with `sandcron exec --replay`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::json;

use super::connection::Connection;
use super::print::{print_json, write};
use crate::client::encode;

/// `sandcron replay`'s arguments.
#[derive(Args)]
pub(super) struct ReplayArgs {
    /// The recorded run's id.
    run: String,
    /// Replay on another version of the plugin (`name@version`).
    #[arg(long)]
    plugin: Option<String>,
}

/// `sandcron record`'s arguments.
#[derive(Args)]
pub(super) struct RecordArgs {
    /// The recorded run's id.
    run: String,
    /// Write the record to this file (default: standard output).
    #[arg(long = "out", short = 'o', value_name = "FILE")]
    file: Option<PathBuf>,
}

/// Replays a run; prints what the replay gave and exits 1 unless it is
/// identical.
pub(super) async fn replay(args: ReplayArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let body = match &args.plugin {
        Some(plugin) => json!({"plugin": plugin}),
        None => json!({}),
    };
    let answer = connection
        .client()
        .post(&format!("/v1/runs/{}/replay", encode(&args.run)), body)
        .await?;
    print_json(&answer);
    Ok(match answer["identical"].as_bool() {
        Some(true) => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}

/// Writes a run's record to a file or standard output.
pub(super) async fn record(args: RecordArgs, connection: &Connection) -> anyhow::Result<ExitCode> {
    let record = connection
        .client()
        .get(&format!("/v1/runs/{}/record", encode(&args.run)))
        .await?;
    let mut text = serde_json::to_vec_pretty(&record).context("writing the record as JSON")?;
    text.push(b'\n');
    match &args.file {
        Some(file) => std::fs::write(file, &text).with_context(|| format!("writing {}", file.display()))?,
        None => write(&text),
    }
    Ok(ExitCode::SUCCESS)
}
