//! A run: one execution of a job's plugin, from queued to finished.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::job::{Concurrency, Job, Overlap, Priority, Retry, input_bytes};
use crate::model::plugin::PluginVersion;

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Durable and waiting for a slot.
    Queued,
    /// Its instance is executing.
    Running,
    /// The plugin returned Ok.
    Succeeded,
    /// The plugin or its sandbox failed; see the run's error.
    Failed,
    /// Stopped by a user.
    Cancelled,
}

impl RunStatus {
    /// True once the run will not change again.
    pub fn is_finished(self) -> bool {
        matches!(self, RunStatus::Succeeded | RunStatus::Failed | RunStatus::Cancelled)
    }

    /// The name used in JSON and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses the JSON name.
    pub fn parse(text: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// Why a run failed; each hostile behaviour has its own kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The plugin returned Err(message).
    PluginError,
    /// The instance trapped: a panic, `unreachable`, a stack overflow, an
    /// out-of-bounds access, or a host import that failed.
    Trap,
    /// The fuel budget ran out.
    FuelExhausted,
    /// The wall-clock deadline passed.
    Timeout,
    /// The store's limiter refused a memory or table growth.
    MemoryLimit,
    /// The returned output was larger than the output cap.
    OutputLimit,
    /// The daemon stopped while the run was running.
    HostRestart,
    /// The plugin could not be loaded or instantiated.
    PluginUnavailable,
}

impl ErrorKind {
    /// The name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::PluginError => "plugin_error",
            ErrorKind::Trap => "trap",
            ErrorKind::FuelExhausted => "fuel_exhausted",
            ErrorKind::Timeout => "timeout",
            ErrorKind::MemoryLimit => "memory_limit",
            ErrorKind::OutputLimit => "output_limit",
            ErrorKind::HostRestart => "host_restart",
            ErrorKind::PluginUnavailable => "plugin_unavailable",
        }
    }
}

/// A failed run's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable detail.
    pub message: String,
}

/// What started a run (the WIT `trigger` enum, plus values a plugin of
/// world 0.1.0 sees as `schedule`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The job's schedule fired.
    Schedule,
    /// Someone asked for it (`POST /v1/jobs/{id}/run`).
    Manual,
    /// A new attempt of an earlier run.
    Retry,
    /// Another job finished.
    Dependency,
    /// A `run_at_start` job's run, at daemon start or when the job is made.
    Start,
    /// A past fire queued by `POST /v1/jobs/{id}/backfill`.
    Backfill,
}

/// The limits one run executes under, resolved from the job when queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunLimits {
    /// Fuel budget; None: unmetered.
    pub fuel: Option<u64>,
    /// Wall-clock deadline, milliseconds.
    pub timeout_ms: u64,
    /// Linear memory + tables, bytes.
    pub memory: u64,
    /// Output cap, bytes.
    pub output: u64,
    /// Log cap, bytes.
    pub logs: u64,
}

/// The record of one run. Output and logs are stored apart from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Time-ordered id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// The job's id.
    pub job_id: String,
    /// The job's name when the run was queued.
    pub job_name: String,
    /// `name@version` of the plugin that runs.
    pub plugin: String,
    /// sha256 of the plugin's bytes.
    pub plugin_digest: String,
    /// What started it.
    pub trigger: Trigger,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// Where it is.
    pub status: RunStatus,
    /// Set when failed.
    pub error: Option<RunError>,
    /// When it was due: a schedule's fire, its nominal instant (the
    /// jitter comes on top).
    pub scheduled_at: DateTime<Utc>,
    /// The fire's jitter, milliseconds: the run is due at `scheduled_at`
    /// plus this ([`Run::due_at`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub jitter_ms: u64,
    /// When it became a durable queued run.
    pub queued_at: DateTime<Utc>,
    /// When its instance started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// finished_at - started_at, milliseconds.
    pub duration_ms: Option<u64>,
    /// started_at - due_at (`scheduled_at` plus the jitter), milliseconds.
    pub lateness_ms: Option<i64>,
    /// Fuel spent by the instance.
    pub fuel_consumed: Option<u64>,
    /// Largest total linear memory the instance reached, bytes.
    pub peak_memory: Option<u64>,
    /// Bytes of output returned (the output itself is stored apart).
    pub output_size: u64,
    /// Bytes of captured log (stored apart).
    pub log_size: u64,
    /// What the run recorded of its host calls, when it recorded (the tape
    /// itself is stored apart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tape: Option<RunTape>,
    /// The input handed to the plugin.
    #[serde(with = "crate::model::run::bytes_as_text")]
    pub input: Vec<u8>,
    /// The limits the run executes under.
    pub limits: RunLimits,
    /// Queue order, from the job's policy when queued.
    #[serde(default)]
    pub priority: Priority,
    /// Retry policy, from the job's policy when queued.
    #[serde(default)]
    pub retry: Retry,
    /// Waits while another run of its job runs (overlap other than `allow`).
    #[serde(default)]
    pub exclusive: bool,
    /// The concurrency group it runs in (its job's `policy.concurrency`
    /// when it was queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// The id of the first attempt of this run's lineage (None for a first attempt).
    #[serde(default)]
    pub retry_of: Option<String>,
    /// Hosts the run may reach (the job's `http_allow` when it was queued).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_allow: Vec<String>,
    /// Names of the secrets the run may read (the job's `secrets` when it
    /// was queued); never their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
    /// Records its host calls, to be replayed (its job's `record`, or a
    /// manual run's `?record=true`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record: bool,
    /// The workflow run and step it is a run of (trigger `dependency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<StepOf>,
    /// The node of a cluster that runs (or ran) it; None on sled. Kept by
    /// the store beside the record, not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// What a recorded run kept of its host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RunTape {
    /// Bytes of the stored tape (0 when none was kept).
    pub bytes: u64,
    /// Host calls and clock reads the run made.
    pub calls: u64,
    /// A tape was kept: the run did not pass the cap.
    pub replayable: bool,
}

impl RunTape {
    /// What a run that was to record kept when it made no call at all (its
    /// plugin never ran).
    pub const NONE: RunTape = RunTape {
        bytes: 0,
        calls: 0,
        replayable: false,
    };
}

/// The workflow run and the step a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct StepOf {
    /// The workflow run's id.
    pub workflow_run: String,
    /// The step's id in it.
    pub step: String,
}

/// What a new run is made of.
pub struct NewRun<'a> {
    /// The job.
    pub job: &'a Job,
    /// What started it.
    pub trigger: Trigger,
    /// When it is due (a fire's nominal instant).
    pub scheduled_at: DateTime<Utc>,
    /// The fire's jitter, milliseconds (0 for all but a schedule's fires).
    pub jitter_ms: u64,
    /// Its id (derived from the fire for scheduled runs).
    pub id: String,
    /// Replaces the job's input for this run.
    pub input: Option<&'a serde_json::Value>,
}

/// Waiting and running runs of one job (what its overlap policy decides on).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Activity {
    /// Queued, not started.
    pub waiting: usize,
    /// Executing.
    pub running: usize,
}

/// A run's end as the executor reports it to whoever schedules: the
/// scheduler moves an `after` job's next fire from it, and looks again at
/// a job whose fire it held back while the job was busy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnded {
    /// The run's tenant.
    pub tenant: String,
    /// The run's job.
    pub job_id: String,
    /// The run.
    pub run_id: String,
    /// How it ended.
    pub status: RunStatus,
    /// When it finished (None for a run that never got an outcome time).
    pub finished_at: Option<DateTime<Utc>>,
    /// True when a retry of it was queued: it was not the last attempt.
    pub retried: bool,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Run {
    /// When it may start: `scheduled_at` plus its fire's jitter.
    pub fn due_at(&self) -> DateTime<Utc> {
        crate::units::add_saturating(self.scheduled_at, std::time::Duration::from_millis(self.jitter_ms))
    }

    /// A schedule fire's run queued before its instant (recorded ahead).
    pub fn is_recorded_ahead(&self) -> bool {
        self.trigger == Trigger::Schedule && self.queued_at < self.scheduled_at
    }

    /// A queued run of `new.job`, queued at `queued_at`, keeping at most
    /// `log_bytes` of log. `version` is the plugin version its reference
    /// resolved to when it was queued, which the run keeps; None when it did
    /// not resolve (the run then fails with `plugin_unavailable`).
    pub fn queued(new: NewRun<'_>, version: Option<PluginVersion>, queued_at: DateTime<Utc>, log_bytes: u64) -> Run {
        let job = new.job;
        let (plugin, plugin_digest) = match version {
            Some(version) => (version.reference(), version.digest),
            None => (job.plugin.clone(), String::new()),
        };
        Run {
            id: new.id,
            tenant: job.tenant.clone(),
            job_id: job.id.clone(),
            job_name: job.name.clone(),
            plugin,
            plugin_digest,
            trigger: new.trigger,
            attempt: 1,
            status: RunStatus::Queued,
            error: None,
            scheduled_at: new.scheduled_at,
            jitter_ms: new.jitter_ms,
            queued_at,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            lateness_ms: None,
            fuel_consumed: None,
            peak_memory: None,
            output_size: 0,
            log_size: 0,
            tape: None,
            input: new.input.map_or_else(|| job.input_bytes(), input_bytes),
            limits: RunLimits {
                fuel: job.limits.fuel,
                timeout_ms: job.limits.timeout.as_millis() as u64,
                memory: job.limits.memory,
                output: job.limits.output,
                logs: log_bytes,
            },
            priority: job.policy.priority,
            retry: job.policy.retry,
            exclusive: job.policy.overlap != Overlap::Allow,
            concurrency: job.policy.concurrency.clone(),
            retry_of: None,
            http_allow: job.http_allow.clone(),
            secrets: job.secrets.clone(),
            record: job.record,
            workflow: None,
            node: None,
        }
    }

    /// True when this run failed and its retry policy has attempts left.
    pub fn has_attempts_left(&self) -> bool {
        self.status == RunStatus::Failed && self.attempt < self.retry.max_attempts
    }

    /// The next attempt of this run (trigger `retry`, a new id), due at
    /// `due` and queued at `queued_at`.
    pub fn next_attempt(&self, due: DateTime<Utc>, queued_at: DateTime<Utc>) -> Run {
        let mut next = self.clone();
        next.clear_outcome();
        next.id = match &self.workflow {
            // A step's retry is recorded with its outcome; derived, a write
            // repeated after a crash is the same run.
            Some(_) => crate::model::id::next_attempt_id(&self.id),
            None => crate::model::id::new_id(),
        };
        next.trigger = Trigger::Retry;
        next.attempt = self.attempt + 1;
        next.scheduled_at = due;
        next.jitter_ms = 0;
        next.queued_at = queued_at;
        next.retry_of = Some(self.retry_of.clone().unwrap_or_else(|| self.id.clone()));
        next
    }

    /// A queued scheduled run of tenant `t` for tests.
    #[cfg(test)]
    pub fn sample(id: &str, job: &str, due: DateTime<Utc>) -> Run {
        Run {
            id: id.into(),
            tenant: "t".into(),
            job_id: job.into(),
            job_name: job.into(),
            plugin: "p@1".into(),
            plugin_digest: String::new(),
            trigger: Trigger::Schedule,
            attempt: 1,
            status: RunStatus::Queued,
            error: None,
            scheduled_at: due,
            jitter_ms: 0,
            queued_at: due,
            started_at: None,
            finished_at: None,
            duration_ms: None,
            lateness_ms: None,
            fuel_consumed: None,
            peak_memory: None,
            output_size: 0,
            log_size: 0,
            tape: None,
            input: Vec::new(),
            limits: RunLimits {
                fuel: None,
                timeout_ms: 1,
                memory: 1,
                output: 1,
                logs: 1,
            },
            priority: Priority::Normal,
            retry: Retry::default(),
            exclusive: false,
            concurrency: None,
            retry_of: None,
            http_allow: Vec::new(),
            secrets: Vec::new(),
            record: false,
            workflow: None,
            node: None,
        }
    }

    /// Back to `queued` with nothing about an execution recorded (for a new
    /// attempt made from this one).
    pub fn clear_outcome(&mut self) {
        self.status = RunStatus::Queued;
        self.error = None;
        self.started_at = None;
        self.finished_at = None;
        self.duration_ms = None;
        self.lateness_ms = None;
        self.fuel_consumed = None;
        self.peak_memory = None;
        self.output_size = 0;
        self.log_size = 0;
        self.tape = None;
    }

    /// True when anything of an execution is recorded: what
    /// [`Run::clear_outcome`] takes away (keep the two in step).
    pub fn has_outcome(&self) -> bool {
        self.status != RunStatus::Queued
            || self.error.is_some()
            || self.started_at.is_some()
            || self.finished_at.is_some()
            || self.duration_ms.is_some()
            || self.lateness_ms.is_some()
            || self.fuel_consumed.is_some()
            || self.peak_memory.is_some()
            || self.output_size != 0
            || self.log_size != 0
            || self.tape.is_some()
    }

    /// Marks the run finished at `finished_at` with `status` and `error`.
    pub fn finish(&mut self, status: RunStatus, error: Option<RunError>, finished_at: DateTime<Utc>) {
        self.status = status;
        self.error = error;
        self.finished_at = Some(finished_at);
        self.duration_ms = self
            .started_at
            .map(|started| (finished_at - started).num_milliseconds().max(0) as u64);
    }
}

/// Inputs are JSON text almost always: store them as a string when they are
/// UTF-8 and fall back to a byte array otherwise.
pub mod bytes_as_text {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Stored {
        Text(String),
        Bytes(Vec<u8>),
    }

    /// Serializes UTF-8 as a string, anything else as an array.
    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => text.serialize(serializer),
            Err(_) => bytes.serialize(serializer),
        }
    }

    /// Reads either form back.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Text(text) => text.into_bytes(),
            Stored::Bytes(bytes) => bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_an_execution_sets_is_an_outcome_and_clearing_takes_it_away() {
        let at = Utc::now();
        let queued = Run::sample("r", "j", at);
        assert!(!queued.has_outcome());
        let setters: [fn(&mut Run); 10] = [
            |run| run.status = RunStatus::Running,
            |run| {
                run.error = Some(RunError {
                    kind: ErrorKind::Trap,
                    message: "x".into(),
                })
            },
            |run| run.started_at = Some(run.scheduled_at),
            |run| run.finished_at = Some(run.scheduled_at),
            |run| run.duration_ms = Some(1),
            |run| run.lateness_ms = Some(1),
            |run| run.fuel_consumed = Some(1),
            |run| run.peak_memory = Some(1),
            |run| run.output_size = 1,
            |run| run.log_size = 1,
        ];
        for set in setters {
            let mut run = queued.clone();
            set(&mut run);
            assert!(run.has_outcome(), "{run:?}");
            run.clear_outcome();
            assert_eq!(run, queued);
        }
    }
}
