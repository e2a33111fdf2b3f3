//! Jobs: what users send (`JobSpec`) and the stored record (`Job`). The
//! checks a spec must pass live in [`super::validate`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::when::When;
use crate::timing::Schedule;
use crate::units::NumberOrText;

/// A job spec as sent to `POST /v1/jobs`, `PUT` and (merged) `PATCH`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// Unique per tenant.
    pub name: Option<String>,
    /// `name` or `name@version`.
    pub plugin: Option<String>,
    /// See [`Schedule::from_json`]; null or absent for on demand.
    #[serde(default)]
    pub schedule: Value,
    /// Any JSON; handed to the plugin as JSON text.
    #[serde(default)]
    pub input: Value,
    /// Per-run limits; absent ones take the daemon's defaults.
    pub limits: Option<LimitsSpec>,
    /// Scheduling policy.
    pub policy: Option<PolicySpec>,
    /// False pauses the job.
    pub enabled: Option<bool>,
    /// Free-form string labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Fire once when the daemon starts and when the job is created.
    pub run_at_start: Option<bool>,
    /// Record every run's host calls, so it can be replayed.
    pub record: Option<bool>,
    /// Host patterns the plugin may reach over HTTP.
    pub http_allow: Option<Vec<String>>,
    /// Secret names the plugin may read.
    pub secrets: Option<Vec<String>>,
    /// Where to send run events.
    pub webhooks: Option<Vec<Webhook>>,
    /// Fire when other jobs' runs end.
    pub after_jobs: Option<AfterJobsSpec>,
    /// The name of a job to run when a run of this one fails for good.
    pub failure_handler: Option<String>,
    /// Read-only fields shown by GET; accepted (and ignored) so a fetched job
    /// can be sent back as is.
    #[serde(default, rename = "id")]
    _id: Option<Value>,
    #[serde(default, rename = "state")]
    _state: Option<Value>,
    #[serde(default, rename = "created_at")]
    _created_at: Option<Value>,
    #[serde(default, rename = "updated_at")]
    _updated_at: Option<Value>,
    #[serde(default, rename = "next_fire_at")]
    _next_fire_at: Option<Value>,
}

/// `after_jobs` as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AfterJobsSpec {
    /// The names of the jobs it waits for.
    pub jobs: Option<Vec<String>>,
    /// Which of their outcomes fire it (default `success`).
    pub when: Option<When>,
}

/// A job that fires when other jobs' runs end: each time every job named
/// has ended a run (its last attempt) since this job last fired that way,
/// and `when` holds over those runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AfterJobs {
    /// The names of the jobs it waits for.
    pub jobs: Vec<String>,
    /// Which of their outcomes fire it.
    pub when: When,
}

/// Limits as sent: numbers or text with units.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Fuel budget (wasm instructions, roughly).
    pub fuel: Option<u64>,
    /// `"30s"` or seconds.
    pub timeout: Option<NumberOrText>,
    /// `"64MiB"` or bytes.
    pub memory: Option<NumberOrText>,
    /// `"1MiB"` or bytes.
    pub output: Option<NumberOrText>,
}

/// What to do with fires missed while the daemon was down or the job paused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Misfire {
    /// Drop them.
    Skip,
    /// Run once for all of them.
    #[default]
    RunOnce,
    /// Run each one.
    RunAll,
}

/// What to do when a fire comes while the previous run is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// Do not start another.
    #[default]
    Skip,
    /// Start another beside it.
    Allow,
    /// Keep at most one waiting.
    Queue,
    /// Cancel the running one and start the new one.
    Replace,
}

/// Queue order in front of the concurrency limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Behind everything else.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Ahead of normal.
    High,
    /// First.
    Critical,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [Priority::Low, Priority::Normal, Priority::High, Priority::Critical];

    /// Its name in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Critical => "critical",
        }
    }
}

/// Retry policy as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in all, the first included.
    pub max_attempts: Option<u32>,
    /// First backoff (`"1s"`).
    pub backoff: Option<NumberOrText>,
    /// Cap on the backoff.
    pub max_backoff: Option<NumberOrText>,
}

/// Policy as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Missed fires.
    pub misfire: Option<Misfire>,
    /// `"24h"`: how far back missed fires still count.
    pub misfire_window: Option<NumberOrText>,
    /// Concurrent fires.
    pub overlap: Option<Overlap>,
    /// Retries of failed runs.
    pub retry: Option<RetrySpec>,
    /// Queue order.
    pub priority: Option<Priority>,
    /// Pause the job after this many failed runs in a row.
    pub pause_after_failures: Option<u32>,
    /// At most `limit` runs at once of the tenant's jobs sharing `key`.
    pub concurrency: Option<Concurrency>,
}

/// A concurrency group: at most `limit` runs at once of all the tenant's
/// jobs whose policy names `key`; the others wait in the queue's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// The group's name.
    pub key: String,
    /// Its runs at once, 1 or more.
    pub limit: u32,
}

/// A webhook a job notifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// http(s) URL.
    pub url: String,
    /// Events: `started`, `succeeded`, `failed`, `recovered`, `paused`.
    #[serde(default)]
    pub on: Vec<WebhookEvent>,
}

/// A run event a webhook may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    /// The run started.
    Started,
    /// The run succeeded.
    Succeeded,
    /// The run failed.
    Failed,
    /// The job succeeded after failed runs (`run.recovered`).
    Recovered,
    /// The job was paused (by a user, or after `pause_after_failures`).
    Paused,
}

/// Resolved per-run limits of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Limits {
    /// Fuel budget; None: unmetered, the timeout bounds compute.
    pub fuel: Option<u64>,
    /// Wall-clock deadline (`"30s"`).
    #[serde(with = "duration_text")]
    #[schema(value_type = String)]
    pub timeout: Duration,
    /// Bytes of linear memory and tables.
    pub memory: u64,
    /// Bytes of output.
    pub output: u64,
}

/// Resolved retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct Retry {
    /// Attempts in all.
    pub max_attempts: u32,
    /// First backoff (`"1s"`).
    #[serde(with = "duration_text")]
    #[schema(value_type = String, default = "1s")]
    pub backoff: Duration,
    /// Backoff cap (`"1h"`).
    #[serde(with = "duration_text")]
    #[schema(value_type = String, default = "1h")]
    pub max_backoff: Duration,
}

impl Default for Retry {
    /// One attempt, no retry.
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
        }
    }
}

impl Retry {
    /// How long attempt `attempt + 1` waits after attempt `attempt` failed:
    /// `backoff * 2^(attempt-1)`, capped at `max_backoff`, then scaled by
    /// `jitter` in [0.5, 1.0] ("equal jitter") so retries of many jobs
    /// spread out.
    pub fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let exponent = attempt.saturating_sub(1).min(40);
        let base = self
            .backoff
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max_backoff);
        let jitter = jitter.clamp(0.0, 1.0);
        base.mul_f64(0.5 + 0.5 * jitter)
    }
}

/// Resolved policy of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// Missed fires.
    pub misfire: Misfire,
    /// How far back missed fires count (`"1h"`).
    #[serde(with = "duration_text")]
    #[schema(value_type = String)]
    pub misfire_window: Duration,
    /// Concurrent fires.
    pub overlap: Overlap,
    /// Retries.
    pub retry: Retry,
    /// Queue order.
    pub priority: Priority,
    /// Pause the job after this many failed runs in a row (None: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_failures: Option<u32>,
    /// Its concurrency group (None: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Time-ordered id.
    pub id: String,
    /// Owning tenant.
    pub tenant: String,
    /// Unique per tenant.
    pub name: String,
    /// `name` or `name@version`.
    pub plugin: String,
    /// None: on demand.
    #[serde(with = "optional_schedule")]
    pub schedule: Option<Schedule>,
    /// Any JSON.
    pub input: Value,
    /// Per-run limits.
    pub limits: Limits,
    /// Scheduling policy.
    pub policy: Policy,
    /// False: paused.
    pub enabled: bool,
    /// String labels.
    pub labels: BTreeMap<String, String>,
    /// Fire once at daemon start and at creation.
    pub run_at_start: bool,
    /// Its runs record their host calls (to be replayed); absent from the
    /// JSON records older versions wrote.
    #[serde(default)]
    pub record: bool,
    /// Host patterns for HTTP.
    pub http_allow: Vec<String>,
    /// Secret names it may read.
    pub secrets: Vec<String>,
    /// Webhooks.
    pub webhooks: Vec<Webhook>,
    /// Creation time; the anchor of `every`.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The next time the schedule fires, if any.
    pub next_fire_at: Option<DateTime<Utc>>,
    /// Fires that did not become runs (misfire `skip`, fires beyond the
    /// misfire window, overlap `skip`).
    #[serde(default)]
    pub skipped_fires: u64,
    /// Fires of its schedule that became runs (what `max_fires` counts).
    #[serde(default)]
    pub fired: u64,
    /// Its runs that failed for good in a row since its last success (a
    /// run's last attempt counts; cancelled runs do not).
    #[serde(default)]
    pub failures: u64,
    /// When its last run finished (the origin of an `after` schedule).
    #[serde(default)]
    pub last_finished_at: Option<DateTime<Utc>>,
    /// Fires when other jobs' runs end (trigger `dependency`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_jobs: Option<AfterJobs>,
    /// The job (by name) that runs, with the failed run as input, when a
    /// run of this one fails for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_handler: Option<String>,
}

impl Job {
    /// The zone of the job's schedule: its cron line's, UTC for the other
    /// schedules and for none (what a plugin's `run-info.timezone` says).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.schedule
            .as_ref()
            .and_then(Schedule::timezone)
            .unwrap_or(chrono_tz::Tz::UTC)
    }

    /// `active`, `paused`, or `done` (its schedule will not fire again).
    pub fn state(&self) -> &'static str {
        if !self.enabled {
            "paused"
        } else if self.is_done() {
            "done"
        } else {
            "active"
        }
    }

    /// True once its schedule will not fire again: an `at` job that fired,
    /// one that ran its `max_fires`, one past its `not_after` (an `after`
    /// job's next fire waits for its run's end, so it is done only by its
    /// bounds).
    pub fn is_done(&self) -> bool {
        let Some(schedule) = &self.schedule else {
            return false;
        };
        if self.next_fire_at.is_some() {
            return false;
        }
        if self.fires_left() == Some(0) {
            return true;
        }
        if schedule.is_after() {
            let origin = self.last_finished_at.unwrap_or(self.created_at);
            return schedule.rules.not_after.is_some()
                && schedule.next_fire(origin, self.created_at, Some(origin)).is_none();
        }
        true
    }

    /// The jitter of its fire at `fire` (see [`crate::timing::Rules::jitter_for`]).
    pub fn jitter_for(&self, fire: DateTime<Utc>) -> std::time::Duration {
        self.schedule.as_ref().map_or(std::time::Duration::ZERO, |schedule| {
            schedule.rules.jitter_for(&format!("{}/{}", self.tenant, self.id), fire)
        })
    }

    /// The first fire of the job as saved at `now` (a past `at` the misfire
    /// policy still allows fires at once), None when it has no more.
    pub fn first_fire(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.fires_left() == Some(0) {
            return None;
        }
        let schedule = self.schedule.as_ref()?;
        schedule.at().or_else(|| schedule.next_fire(now, self.created_at, None))
    }

    /// How many more of its fires may run under `max_fires` (None: no limit).
    pub fn fires_left(&self) -> Option<u64> {
        let max = self.schedule.as_ref()?.rules.max_fires?;
        Some(max.saturating_sub(self.fired))
    }

    /// The earlier of the job's next fire and `fire` (a fire recorded ahead
    /// of its instant, which the job's own next fire has moved past).
    pub fn next_fire_or(&self, fire: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.next_fire_at, fire) {
            (Some(next), Some(fire)) => Some(next.min(fire)),
            (next, fire) => next.or(fire),
        }
    }

    /// The input as the bytes handed to the plugin: JSON text, or nothing for null.
    pub fn input_bytes(&self) -> Vec<u8> {
        input_bytes(&self.input)
    }

    /// The job as a spec, for `PATCH` (merge) and `PUT`.
    pub fn to_spec_json(&self) -> Value {
        serde_json::json!({
            "name": self.name,
            "plugin": self.plugin,
            "schedule": self.schedule.as_ref().map(Schedule::to_json),
            "input": self.input,
            "limits": self.limits,
            "policy": self.policy,
            "enabled": self.enabled,
            "labels": self.labels,
            "run_at_start": self.run_at_start,
            "record": self.record,
            "http_allow": self.http_allow,
            "secrets": self.secrets,
            "webhooks": self.webhooks,
            "after_jobs": self.after_jobs,
            "failure_handler": self.failure_handler,
        })
    }
}

/// The bytes a plugin receives for a JSON input: its text, or nothing for null.
pub fn input_bytes(input: &Value) -> Vec<u8> {
    if input.is_null() {
        Vec::new()
    } else {
        serde_json::to_vec(input).expect("a serde_json::Value always serializes")
    }
}

pub(crate) mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&crate::units::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        crate::units::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

pub(crate) mod optional_schedule {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    use crate::timing::Schedule;

    pub fn serialize<S: Serializer>(schedule: &Option<Schedule>, serializer: S) -> Result<S::Ok, S::Error> {
        schedule.as_ref().map(Schedule::to_json).serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Schedule>, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Schedule::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_caps_and_jitters() {
        let retry = Retry {
            max_attempts: 10,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
        };
        assert_eq!(retry.delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(retry.delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(retry.delay(4, 1.0), Duration::from_secs(8));
        assert_eq!(retry.delay(9, 1.0), Duration::from_secs(30), "capped");
        assert_eq!(retry.delay(60, 1.0), Duration::from_secs(30), "no overflow");
        assert_eq!(retry.delay(2, 0.0), Duration::from_secs(1), "jitter halves at most");
    }
}
