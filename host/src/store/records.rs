//! The plain records the store's subject traits take and return: run
//! writes and filters, due jobs and fires, job hooks, plugin versions added
//! and deleted, stored artifacts, and the one wording of the plugin quota.

use chrono::{DateTime, Utc};

use super::error::{StoreError, StoreResult};
use crate::model::dependency::Join;
use crate::model::workflow_run::WorkflowRun;
use crate::model::{Artifact, Job, PluginVersion, Run, RunStatus};

/// One step of a run's life, written by
/// [`RunStore::write_runs`](crate::store::RunStore::write_runs).
#[derive(Debug, Clone, Copy)]
pub enum RunWrite<'a> {
    /// A new queued run: its record and indexes.
    Queued(&'a Run),
    /// An unfinished run's record changed (its `running` mark).
    Updated(&'a Run),
    /// The run finished: its record, output, log and tape, and the queued record
    /// of its next attempt if it has one.
    Finished {
        /// The finished record.
        run: &'a Run,
        /// What the plugin returned.
        output: &'a [u8],
        /// Its captured log.
        log: &'a [u8],
        /// A recorded run's tape (empty when it kept none).
        tape: &'a [u8],
        /// The next attempt, queued in the same step.
        next: Option<&'a Run>,
    },
    /// A workflow run's record, written with the step runs it started or
    /// whose outcome moved it on.
    Workflow(&'a WorkflowRun),
    /// A dependent job's join, written with the outcome that moved it (and
    /// the run it fired).
    Join(&'a Join),
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only this job's runs.
    pub job_id: Option<String>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
    /// Only runs older than this run id (the previous page's last id).
    pub before: Option<String>,
    /// At most this many.
    pub limit: usize,
}

/// Compiled code on disk: whose, for which engine, since when, how big.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// sha256 of the component bytes.
    pub digest: String,
    /// The engine fingerprint it was compiled for.
    pub engine: String,
    /// When it was compiled.
    pub compiled_at: DateTime<Utc>,
    /// Bytes on disk.
    pub size: u64,
}

/// The parts of a job its runs' ends look at: whether its schedule is
/// `after` (the end moves its next fire) and its webhooks.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
pub struct JobHooks {
    /// Its schedule runs its delay after the last run ends.
    #[serde(default, rename = "schedule", deserialize_with = "is_after")]
    pub after: bool,
    /// Whom its runs notify.
    pub webhooks: Vec<crate::model::job::Webhook>,
    /// Its runs that failed for good in a row (see `Job::failures`).
    #[serde(default)]
    pub failures: u64,
}

/// True for an `{"after": ...}` schedule, without parsing the rest.
fn is_after<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    #[derive(serde::Deserialize)]
    struct Kind {
        after: Option<serde::de::IgnoredAny>,
    }
    let kind: Option<Kind> = serde::Deserialize::deserialize(deserializer)?;
    Ok(kind.is_some_and(|kind| kind.after.is_some()))
}

impl JobHooks {
    /// The hooks of a decoded job.
    pub fn of(job: &Job) -> JobHooks {
        JobHooks {
            after: job.schedule.as_ref().is_some_and(crate::timing::Schedule::is_after),
            webhooks: job.webhooks.clone(),
            failures: job.failures,
        }
    }
}

/// An entry of the due index: a job and its next fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueJob {
    /// The job's next fire.
    pub at: DateTime<Utc>,
    /// Its tenant.
    pub tenant: String,
    /// Its id.
    pub job_id: String,
}

/// One fire to record: the job as it is to be written and its new runs.
#[derive(Debug, Clone)]
pub struct Fire {
    /// The job with its next fire and counters moved on.
    pub job: Job,
    /// The queued runs of this fire (possibly none).
    pub runs: Vec<Run>,
    /// Only the runs: the job is left as stored (a backfill).
    pub runs_only: bool,
}

/// The result of adding plugin bytes under a name.
#[derive(Debug, Clone)]
pub struct AddedPlugin {
    /// The version that holds these bytes.
    pub version: PluginVersion,
    /// False when the same bytes were already a version of this name.
    pub created: bool,
}

/// A plugin version to add: its bytes, and the code the upload compiled
/// from them (written in the same atomic step, so a refused or failed
/// upload leaves no artifact behind).
#[derive(Debug, Clone, Copy)]
pub struct NewPluginVersion<'a> {
    /// Owning tenant.
    pub tenant: &'a str,
    /// The plugin's name.
    pub name: &'a str,
    /// sha256 of `bytes`, hex.
    pub digest: &'a str,
    /// The component bytes.
    pub bytes: &'a [u8],
    /// When it was uploaded.
    pub uploaded_at: DateTime<Utc>,
    /// The compile record and serialized code, when the upload compiled.
    pub compiled: Option<(&'a Artifact, &'a [u8])>,
}

/// The result of deleting a plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedPlugin {
    /// How many versions it had.
    pub versions: usize,
    /// Summaries no version of any tenant uses any more: their bytes and
    /// compiled artifacts went in the same atomic write.
    pub collected: Vec<String>,
}

/// Refuses `adding` more plugin bytes when the tenant already uses `used`
/// and its quota is `limit` (the one wording of that refusal).
pub fn check_plugin_quota(used: u64, adding: u64, limit: Option<u64>) -> StoreResult<()> {
    match limit {
        Some(limit) if used.saturating_add(adding) > limit => Err(StoreError::QuotaExceeded(format!(
            "plugin_bytes: the tenant's plugins take {used} bytes; {adding} more would pass its quota of {limit} bytes (delete unused plugins to make room)"
        ))),
        _ => Ok(()),
    }
}

/// Refuses a run that does not fit beside the tenant's queued and running
/// runs (`unfinished` bytes), which are never deleted to make room (the
/// one wording of that refusal).
pub fn no_run_room(need: u64, unfinished: u64, max_bytes: u64) -> StoreError {
    StoreError::QuotaExceeded(format!(
        "run_bytes: this run's record and input take {need} bytes; the tenant's queued and running runs take {unfinished} of its quota of {max_bytes} and are not deleted to make room (retry once some have finished)"
    ))
}

/// The count of failed runs in a row a write of `job` keeps, the stored
/// job being enabled or not and at `stored` failures: the stored count
/// (only [`crate::store::JobStore::count_outcome`] moves it), or none for a
/// job resumed by the write.
pub fn kept_failures(stored_enabled: bool, stored: u64, job: &Job) -> u64 {
    if !stored_enabled && job.enabled { 0 } else { stored }
}
