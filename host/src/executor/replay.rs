//! Replays of recorded runs: the record of a finished run from the store,
//! replayed on its plugin (or another version) in the sandbox, within the
//! executor's slots so replays count against `max_concurrent_runs` like
//! runs. A replay writes nothing.

use base64::Engine as _;

use super::Executor;
use crate::model::Run;
use crate::plugin::PluginError;
use crate::sandbox::replay::{self, RECORD_FORMAT, Record, Replayed};
use crate::sandbox::tape::TapeError;
use crate::store::StoreError;

/// Why a run cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// No such run.
    #[error("no run with id {0:?}")]
    NoRun(String),
    /// The run has not finished.
    #[error("run {0} has not finished; only a finished run can be replayed")]
    NotFinished(String),
    /// The run did not record its host calls.
    #[error(
        "run {0} did not record its host calls; a job with \"record\": true, or POST /v1/jobs/{{id}}/run?record=true, records its runs"
    )]
    NotRecorded(String),
    /// The run recorded, but kept no tape.
    #[error(
        "run {id} made {calls} host calls, past what a tape keeps (max_record_bytes), or a secret could not be kept out of it; it cannot be replayed"
    )]
    Incomplete {
        /// The run.
        id: String,
        /// The calls it made.
        calls: u64,
    },
    /// The stored tape cannot be replayed here.
    #[error(transparent)]
    Tape(#[from] TapeError),
    /// The plugin asked for cannot be found or prepared.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Executor {
    /// The record of a finished run of `tenant` that kept its tape.
    pub fn record(&self, tenant: &str, id: &str) -> Result<Record, ReplayError> {
        let run = self
            .store
            .run(tenant, id)?
            .ok_or_else(|| ReplayError::NoRun(id.to_string()))?;
        if !run.status.is_finished() {
            return Err(ReplayError::NotFinished(run.id));
        }
        let Some(kept) = run.tape.filter(|_| run.record) else {
            return Err(ReplayError::NotRecorded(run.id));
        };
        let tape = match self.store.run_tape(tenant, id)? {
            Some(tape) if kept.replayable => tape,
            _ => {
                return Err(ReplayError::Incomplete {
                    id: run.id,
                    calls: kept.calls,
                });
            }
        };
        let output = self.store.run_output(tenant, id)?.unwrap_or_default();
        Ok(record_of(run, output, &tape))
    }

    /// Replays a finished recorded run of `tenant` on the plugin it ran, or
    /// on `plugin` (`name@version`) when given.
    pub async fn replay(&self, tenant: &str, id: &str, plugin: Option<&str>) -> Result<Replayed, ReplayError> {
        let mut record = self.record(tenant, id)?;
        if let Some(reference) = plugin {
            let version = self.plugins.resolve(tenant, reference)?;
            (record.plugin, record.plugin_digest) = (version.reference(), version.digest);
        }
        let prepared = self
            .plugins
            .prepared(&record.plugin_digest, replay::engine_kind(&record.limits))
            .await?;
        let _slot = self.slots.clone().acquire_owned().await;
        Ok(replay::replay(&self.sandbox, &prepared, &record).await?)
    }
}

/// A finished run's record with its stored output and tape.
fn record_of(run: Run, output: Vec<u8>, tape: &[u8]) -> Record {
    Record {
        format: RECORD_FORMAT.to_string(),
        tenant: run.tenant,
        run_id: run.id,
        job_id: run.job_id,
        job_name: run.job_name,
        attempt: run.attempt,
        trigger: run.trigger,
        scheduled_at: run.scheduled_at,
        plugin: run.plugin,
        plugin_digest: run.plugin_digest,
        input: run.input,
        limits: run.limits,
        output,
        error: run.error,
        tape: base64::engine::general_purpose::STANDARD.encode(tape),
    }
}
