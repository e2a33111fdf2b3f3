//! `sandcron plugin`: push, list and delete plugins.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::connection::Connection;
use super::print::out;
use crate::client::{Body, encode};

/// `sandcron plugin`'s subcommands.
#[derive(Subcommand)]
pub(super) enum PluginCommand {
    /// Upload a component as the next version of NAME.
    Push {
        /// The component file.
        file: PathBuf,
        /// Plugin name (default: the file name without .wasm).
        #[arg(long)]
        name: Option<String>,
    },
    /// List plugins.
    Ls,
    /// Delete every version of a plugin.
    Rm {
        /// Plugin name.
        name: String,
    },
}

/// An upload, and what a terminal shows of it: a progress bar while a body
/// over 1 MiB goes out, then a spinner with the time the daemon has been
/// compiling (a Python component takes tens of seconds), cleared by the
/// caller once the answer is in.
fn upload_body(bytes: Vec<u8>) -> (Body, Option<indicatif::ProgressBar>) {
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return (Body::Bytes(bytes), None);
    }
    let compiling = indicatif::ProgressBar::hidden();
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} the daemon checks and compiles it ({elapsed})")
    {
        compiling.set_style(style);
    }
    let show_compiling = {
        let compiling = compiling.clone();
        move || {
            compiling.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            compiling.enable_steady_tick(std::time::Duration::from_millis(120));
        }
    };
    if bytes.len() < 1 << 20 {
        show_compiling();
        return (Body::Bytes(bytes), Some(compiling));
    }
    let bar = indicatif::ProgressBar::new(bytes.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style);
    }
    let chunks: Vec<bytes::Bytes> = bytes.chunks(64 << 10).map(bytes::Bytes::copy_from_slice).collect();
    let sent = chunks.into_iter().map(move |chunk| {
        bar.inc(chunk.len() as u64);
        if bar.length().is_some_and(|length| bar.position() >= length) {
            bar.finish_and_clear();
            show_compiling();
        }
        Ok::<_, std::io::Error>(chunk)
    });
    (
        Body::Stream(reqwest::Body::wrap_stream(futures_util::stream::iter(sent))),
        Some(compiling),
    )
}

fn print_plugins(answer: &Value) {
    out!("{:<24} {:>7} {:>10}  DIGEST", "NAME", "LATEST", "SIZE");
    for plugin in answer["plugins"].as_array().into_iter().flatten() {
        let latest = plugin["versions"]
            .as_array()
            .and_then(|versions| versions.last())
            .cloned()
            .unwrap_or_default();
        out!(
            "{:<24} {:>7} {:>10}  {}",
            plugin["name"].as_str().unwrap_or_default(),
            plugin["latest"].to_string(),
            latest["size"].to_string(),
            latest["digest"].as_str().unwrap_or_default()
        );
    }
}

/// Pushes, lists or deletes plugins.
pub(super) async fn plugin(command: PluginCommand, connection: &Connection) -> anyhow::Result<ExitCode> {
    match command {
        PluginCommand::Push { file, name } => {
            let name = match name {
                Some(name) => name,
                None => file
                    .file_stem()
                    .and_then(|stem| stem.to_str())
                    .map(str::to_string)
                    .context("give --name; the file name is not usable")?,
            };
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let (body, progress) = upload_body(bytes);
            let answer = connection
                .client()
                .call(Method::POST, &format!("/v1/plugins?name={}", encode(&name)), body)
                .await;
            if let Some(progress) = progress {
                progress.finish_and_clear();
            }
            let answer = answer?;
            let version = answer.json()?;
            let verb = if answer.status == reqwest::StatusCode::CREATED {
                "uploaded"
            } else {
                "unchanged"
            };
            out!(
                "{verb} {} {}",
                version["reference"].as_str().unwrap_or_default(),
                version["digest"].as_str().unwrap_or_default()
            );
        }
        PluginCommand::Ls => {
            let answer = connection.client().get("/v1/plugins").await?;
            connection.show(&answer, print_plugins);
        }
        PluginCommand::Rm { name } => {
            connection
                .client()
                .call(Method::DELETE, &format!("/v1/plugins/{}", encode(&name)), Body::None)
                .await?;
            out!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
