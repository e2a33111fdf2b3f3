//! A replay: a recorded run executed again in the sandbox, every host call
//! answered from its tape, and what came out compared with what the run
//! gave. Nothing leaves the sandbox: kv is a throwaway memory, HTTP is
//! off, secrets are their markers, the log goes nowhere. Where the record
//! comes from (the store, or a file `GET /v1/runs/{id}/record` exported)
//! is the caller's business.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::host::{Capabilities, MemoryKeyValue, RunContext};
use super::log::LogSink;
use super::runner::{RunRequest, Sandbox};
use super::tape::{Divergence, Playback, TapeError, TapeMode, TapeResult};
use super::{EngineKind, Metering, PreparedJob};
use crate::model::run::RunLimits;
use crate::model::{RunError, Trigger};

/// What an exported record says it is.
pub const RECORD_FORMAT: &str = "sandcron-record/1";

/// Everything a replay needs of a recorded run: its context, input and
/// limits, the plugin it ran, what it gave, and its tape. The form of
/// `GET /v1/runs/{id}/record`, read back by `sandcron exec --replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    /// [`RECORD_FORMAT`].
    pub format: String,
    /// The run's tenant.
    pub tenant: String,
    /// The run's id.
    pub run_id: String,
    /// Its job's id.
    pub job_id: String,
    /// Its job's name.
    pub job_name: String,
    /// Its attempt, from 1.
    pub attempt: u32,
    /// What started it.
    pub trigger: Trigger,
    /// When it was due.
    #[schema(value_type = String, format = DateTime)]
    pub scheduled_at: DateTime<Utc>,
    /// The plugin it ran (`name@version`).
    pub plugin: String,
    /// sha256 of the plugin's bytes.
    pub plugin_digest: String,
    /// The input it was given (text when it is UTF-8, else an array of bytes).
    #[serde(with = "crate::model::run::bytes_as_text")]
    #[schema(value_type = serde_json::Value)]
    pub input: Vec<u8>,
    /// Its limits.
    pub limits: RunLimits,
    /// The output it gave (with secrets masked, as stored; text when it
    /// is UTF-8, else an array of bytes).
    #[serde(with = "crate::model::run::bytes_as_text")]
    #[schema(value_type = serde_json::Value)]
    pub output: Vec<u8>,
    /// Why it failed, if it did.
    pub error: Option<RunError>,
    /// The tape, base64.
    pub tape: String,
}

impl Record {
    /// The tape's bytes.
    pub fn tape_bytes(&self) -> Result<Vec<u8>, TapeError> {
        base64::engine::general_purpose::STANDARD
            .decode(&self.tape)
            .map_err(|error| TapeError::Damaged(format!("the tape is not base64: {error}")))
    }
}

/// What a replay gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The output and error are the run's and no call diverged.
    pub identical: bool,
    /// The replay's output (empty when it failed).
    pub output: Vec<u8>,
    /// Why the replay failed, if it did.
    pub error: Option<RunError>,
    /// Where the replay left the record's calls, if it did.
    pub diverged_at: Option<Divergence>,
}

/// The engine kind replays run on: deterministic, metered as the run was.
pub fn engine_kind(limits: &RunLimits) -> EngineKind {
    EngineKind::of(Metering::of(limits.fuel), true)
}

/// Replays `record` on `prepared` (the plugin it ran, or another version
/// of it, prepared for [`engine_kind`]).
pub async fn replay(sandbox: &Sandbox, prepared: &PreparedJob, record: &Record) -> Result<Replayed, TapeError> {
    let playback = Playback::open(record.tape_bytes()?)?;
    // A throwaway kv, no HTTP, no secrets (the tape answers every call).
    let capabilities = Capabilities::kv_only(Arc::new(MemoryKeyValue::default()));
    let request = RunRequest {
        context: RunContext {
            tenant: record.tenant.clone(),
            job_id: record.job_id.clone(),
            job_name: record.job_name.clone(),
            run_id: record.run_id.clone(),
            attempt: record.attempt,
            trigger: record.trigger,
            scheduled_at_ms: record.scheduled_at.timestamp_millis(),
        },
        input: record.input.clone(),
        limits: record.limits,
        capabilities,
        cancel: Arc::new(AtomicBool::new(false)),
        log: LogSink::new(record.limits.logs),
        tape: TapeMode::Replay(playback),
    };
    let outcome = sandbox.run(prepared, request).await;
    let diverged_at = match outcome.tape {
        Some(TapeResult::Replayed(divergence)) => divergence,
        _ => None,
    };
    let (output, error) = match outcome.result {
        Ok(output) => (output, None),
        Err(error) => (Vec::new(), Some(error)),
    };
    Ok(Replayed {
        identical: diverged_at.is_none() && output == record.output && error == record.error,
        output,
        error,
        diverged_at,
    })
}
