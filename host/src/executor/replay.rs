//! Replays of recorded runs: the record of a finished run from the store,
//! replayed on its plugin (or another version) in the sandbox. A replay
//! writes nothing and takes no run slot: replays have places of their own,
//! a quarter of `max_concurrent_runs` (at least one), of which a tenant
//! holds at most its `concurrent_runs`; past them a replay is refused at
//! once rather than queued, so no tenant's replays hold up anyone's runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use base64::Engine as _;

use super::Executor;
use crate::model::Run;
use crate::plugin::PluginError;
use crate::sandbox::replay::{self, RECORD_FORMAT, Record, Replayed};
use crate::sandbox::tape::TapeError;
use crate::store::StoreError;
use crate::sync::lock;

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
        "run {id} kept no record of its host calls ({calls} calls): it passed what a record keeps (max_record_bytes), a secret could not be kept out of it, or its plugin never ran; it cannot be replayed"
    )]
    Incomplete {
        /// The run.
        id: String,
        /// The calls it made.
        calls: u64,
    },
    /// The plugin version the run ran is gone.
    #[error(
        "plugin {0} is gone (deleted since the run); replay on another version with {{\"plugin\": \"name@version\"}}"
    )]
    PluginGone(String),
    /// The node, or the tenant, has as many replays going as it may.
    #[error(
        "{0}: as many replays are going as may at once (a quarter of max_concurrent_runs, and at most the tenant's concurrent_runs); try again once one has ended"
    )]
    Busy(String),
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
        let _place = self.replay_place(tenant)?;
        let version = match plugin {
            Some(reference) => self.plugins.resolve(tenant, reference)?,
            None => match self.plugins.resolve(tenant, &record.plugin) {
                Ok(version) => version,
                Err(PluginError::NotFound { .. } | PluginError::VersionNotFound { .. }) => {
                    return Err(ReplayError::PluginGone(record.plugin));
                }
                Err(error) => return Err(error.into()),
            },
        };
        // The run's own bytes, but for a built-in, which runs as this
        // daemon has it (as the executor runs it).
        if plugin.is_some() || crate::plugin::builtin::current_digest(&record.plugin).is_some() {
            (record.plugin, record.plugin_digest) = (version.reference(), version.digest);
        }
        let prepared = self
            .plugins
            .prepared(&record.plugin_digest, replay::engine_kind(&record.limits))
            .await?;
        Ok(replay::replay(&self.sandbox, &prepared, &record).await?)
    }

    /// A place for one replay of `tenant`, given back when dropped.
    fn replay_place(&self, tenant: &str) -> Result<ReplayPlace<'_>, ReplayError> {
        let mut replays = lock(&self.replays);
        let node = (self.capacity / 4).max(1);
        let own = self
            .granter
            .tenants()
            .concurrency(tenant)
            .map_or(node, |quota| quota.clamp(1, node));
        let held = replays.get(tenant).copied().unwrap_or(0);
        if self.stopping.load(Ordering::SeqCst) || replays.values().sum::<usize>() >= node || held >= own {
            return Err(ReplayError::Busy(format!("tenant {tenant:?}")));
        }
        *replays.entry(tenant.to_string()).or_default() += 1;
        Ok(ReplayPlace {
            replays: &self.replays,
            tenant: tenant.to_string(),
        })
    }
}

/// One replay going: counted until dropped (the replay ended, or its
/// request went away).
struct ReplayPlace<'a> {
    replays: &'a Mutex<HashMap<String, usize>>,
    tenant: String,
}

impl Drop for ReplayPlace<'_> {
    fn drop(&mut self) {
        let mut replays = lock(self.replays);
        if let Some(held) = replays.get_mut(&self.tenant) {
            *held -= 1;
            if *held == 0 {
                replays.remove(&self.tenant);
            }
        }
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
