//! `sandcron exec`: one local run of a component file in the same sandbox
//! the daemon uses, with in-memory kv and no daemon; with `--replay`, the
//! replay of a recorded run's record (`sandcron record`) on it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;
use clap::Args;

use super::print::{out, print_json};
use crate::api::ReplayView;
use crate::config::Config;
use crate::model::run::RunLimits;
use crate::model::validate::{check_host_pattern, check_list};
use crate::model::{RunStatus, Trigger};
use crate::outbound::{HttpGrant, Outbound};
use crate::sandbox::replay::{self, RECORD_FORMAT, Record};
use crate::sandbox::{Capabilities, MemoryKeyValue, Metering, RunContext, RunRequest};

#[derive(Args)]
pub struct ExecArgs {
    /// The component file.
    plugin: PathBuf,
    /// Input (JSON text).
    #[arg(long, default_value = "")]
    input: String,
    /// Fuel budget (without one the run is unmetered; the timeout bounds it).
    #[arg(long)]
    fuel: Option<u64>,
    /// Wall-clock deadline ("30s").
    #[arg(long)]
    timeout: Option<String>,
    /// Memory cap ("64MiB").
    #[arg(long)]
    memory: Option<String>,
    /// A host the plugin may reach over HTTP (repeatable), as in a job's
    /// `http_allow`; the SSRF wall applies as in the daemon.
    #[arg(long = "http-allow", value_name = "PATTERN")]
    http_allow: Vec<String>,
    /// A CIDR range the SSRF wall lets through (repeatable), as the
    /// daemon's `http_allow_private`.
    #[arg(long = "http-allow-private", value_name = "CIDR")]
    http_allow_private: Vec<ipnet::IpNet>,
    /// A secret the plugin may read, NAME=VALUE (repeatable); masked in
    /// the printed log and output.
    #[arg(long = "secret", value_name = "NAME=VALUE")]
    secrets: Vec<String>,
    /// Replay the run recorded in FILE (`sandcron record RUN_ID -o FILE`,
    /// or `GET /v1/runs/{id}/record`) on the plugin: every host call is
    /// answered from the record and nothing leaves the sandbox. Prints
    /// what the replay gave as JSON; exits 1 unless it is identical.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["input", "fuel", "timeout", "memory", "http_allow", "http_allow_private", "secrets"])]
    replay: Option<PathBuf>,
}

/// In-memory kv, HTTP to the hosts given, and the secrets given.
fn capabilities(
    http_allow: &[String],
    allow_private: Vec<ipnet::IpNet>,
    secrets: &[String],
) -> anyhow::Result<Capabilities> {
    let mut capabilities = Capabilities::kv_only(Arc::new(MemoryKeyValue::default()));
    check_list("--http-allow", http_allow, check_host_pattern).map_err(|error| anyhow::anyhow!("{error}"))?;
    capabilities.http = HttpGrant {
        job: http_allow.to_vec(),
        tenant: None,
        any_host: false,
    };
    capabilities.outbound = Some(Arc::new(Outbound::new(allow_private, Default::default())?));
    for pair in secrets {
        // The message does not echo the argument: it may be the value.
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--secret: expected NAME=VALUE"))?;
        capabilities.secrets.insert(name.to_string(), value.to_string());
    }
    Ok(capabilities)
}

/// Runs the plugin and prints output (stdout), log and status (stderr).
pub async fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(&args.plugin).with_context(|| format!("reading {}", args.plugin.display()))?;
    let config = Config::default();
    let sandbox = crate::daemon::sandbox_for(&config)?;
    if let Some(file) = &args.replay {
        return replay(&sandbox, &bytes, file).await;
    }
    let defaults = &config.jobs;
    let fuel = args.fuel.or(defaults.fuel);
    let metering = Metering::of(fuel);
    let component = sandbox.compile(&bytes, metering)?;
    let prepared = sandbox.prepare(&component, metering)?;
    let timeout = match &args.timeout {
        Some(text) => crate::units::parse_duration(text).map_err(|message| anyhow::anyhow!("--timeout: {message}"))?,
        None => defaults.timeout,
    };
    let memory = match &args.memory {
        Some(text) => crate::units::parse_size(text).map_err(|message| anyhow::anyhow!("--memory: {message}"))?,
        None => defaults.memory,
    };
    let request = RunRequest {
        context: RunContext {
            tenant: crate::model::DEFAULT_TENANT.to_string(),
            job_id: "exec".to_string(),
            job_name: "exec".to_string(),
            run_id: crate::model::new_id(),
            attempt: 1,
            trigger: Trigger::Manual,
            scheduled_at_ms: chrono::Utc::now().timestamp_millis(),
        },
        input: args.input.into_bytes(),
        limits: RunLimits {
            fuel,
            timeout_ms: timeout.as_millis() as u64,
            memory,
            output: defaults.output,
            logs: defaults.logs,
        },
        capabilities: capabilities(&args.http_allow, args.http_allow_private, &args.secrets)?,
        cancel: Arc::new(AtomicBool::new(false)),
        log: crate::sandbox::log::LogSink::new(defaults.logs),
        tape: crate::sandbox::TapeMode::Off,
    };
    let outcome = sandbox.run(&prepared, request).await;
    if !outcome.log.is_empty() {
        eprintln!("--- log ---");
        eprint!("{}", String::from_utf8_lossy(&outcome.log));
        eprintln!("--- end of log ---");
    }
    match outcome.fuel_consumed {
        Some(fuel) => eprintln!("fuel consumed: {fuel}, peak memory: {} bytes", outcome.peak_memory),
        None => eprintln!("unmetered, peak memory: {} bytes", outcome.peak_memory),
    }
    match outcome.result {
        Ok(output) => {
            eprintln!("status: {}", RunStatus::Succeeded.as_str());
            out!("{}", String::from_utf8_lossy(&output));
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!(
                "status: {} ({}): {}",
                RunStatus::Failed.as_str(),
                error.kind.as_str(),
                error.message
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Replays the record in `file` on the component `bytes`; prints the
/// answer `POST /v1/runs/{id}/replay` gives.
async fn replay(sandbox: &crate::sandbox::Sandbox, bytes: &[u8], file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let record: Record = serde_json::from_slice(&text).with_context(|| {
        format!(
            "{}: not a record of a run (sandcron record RUN_ID -o FILE)",
            file.display()
        )
    })?;
    if record.format != RECORD_FORMAT {
        anyhow::bail!(
            "{}: a record of format {:?}; this sandcron reads {RECORD_FORMAT:?}",
            file.display(),
            record.format
        );
    }
    let kind = replay::engine_kind(&record.limits);
    let component = sandbox.compile(bytes, kind)?;
    let prepared = sandbox.prepare(&component, kind)?;
    let replayed = replay::replay(sandbox, &prepared, &record).await?;
    let identical = replayed.identical;
    print_json(&serde_json::to_value(ReplayView::from(replayed))?);
    Ok(if identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
