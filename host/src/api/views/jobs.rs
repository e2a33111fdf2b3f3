//! Views of what a tenant runs: jobs, runs, plugins.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::jobs::Preview;
use crate::model::job::{AfterJobs, Concurrency, Limits, Policy, Priority, Retry, Webhook};
use crate::model::run::{RunLimits, RunTape};
use crate::model::upcoming::Upcoming;
use crate::model::{Job, PluginVersion, Run, RunError, RunStatus, Trigger};
use crate::plugin::builtin;
use crate::scheduler::backfill::Backfilled;
use crate::timing::ScheduleJson;

/// `active`, `paused` (not enabled), or `done` (a one-shot `at` job that
/// has fired).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only described: the model names a job's state.
pub enum JobState {
    Active,
    Paused,
    Done,
}

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// Time-ordered id.
    id: String,
    /// Unique per tenant.
    name: String,
    /// `name` (the latest version) or `name@version`.
    plugin: String,
    /// When it fires; null: on demand only.
    schedule: Option<ScheduleJson>,
    /// Any JSON, handed to each run.
    input: Value,
    /// Each run's limits.
    limits: Limits,
    /// Missed and overlapping fires, retries, queue order.
    policy: Policy,
    /// False: paused.
    enabled: bool,
    /// Free-form labels.
    labels: BTreeMap<String, String>,
    /// Fires once when the daemon starts and when the job is made.
    run_at_start: bool,
    /// Its runs record their host calls, to be replayed.
    record: bool,
    /// Host patterns its runs may reach over HTTP.
    http_allow: Vec<String>,
    /// Secret names its runs may read.
    secrets: Vec<String>,
    /// Where run events are sent.
    webhooks: Vec<Webhook>,
    /// The jobs whose runs' ends fire it (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    after_jobs: Option<AfterJobs>,
    /// The job that runs, with the failed run in its input, when a run of
    /// this one fails for good (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_handler: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    updated_at: DateTime<Utc>,
    /// The next fire, if any.
    #[schema(value_type = Option<String>, format = DateTime)]
    next_fire_at: Option<DateTime<Utc>>,
    /// Fires that did not become runs (misfire or overlap `skip`).
    skipped_fires: u64,
    /// Fires of its schedule that became runs (what `max_fires` counts).
    fired: u64,
    /// Its runs that failed for good in a row since its last success
    /// (what `policy.pause_after_failures` counts).
    failures: u64,
    /// When its last run finished.
    #[schema(value_type = Option<String>, format = DateTime)]
    last_finished_at: Option<DateTime<Utc>>,
    #[schema(value_type = JobState)]
    state: &'static str,
}

impl JobView {
    /// The job with fires recorded ahead of their instant (see
    /// [`crate::executor::Executor::fires_ahead`]): its next fire is the
    /// earliest of those, not the one after.
    pub fn with_fires_ahead(job: &Job, ahead: &HashMap<String, DateTime<Utc>>) -> JobView {
        let next_fire_at = job.next_fire_or(ahead.get(&job.id).copied());
        JobView::from(Job {
            next_fire_at,
            ..job.clone()
        })
    }
}

impl From<Job> for JobView {
    fn from(job: Job) -> JobView {
        let state = job.state();
        JobView {
            id: job.id,
            name: job.name,
            plugin: job.plugin,
            schedule: job.schedule.as_ref().map(crate::timing::Schedule::to_form),
            input: job.input,
            limits: job.limits,
            policy: job.policy,
            enabled: job.enabled,
            labels: job.labels,
            run_at_start: job.run_at_start,
            record: job.record,
            http_allow: job.http_allow,
            secrets: job.secrets,
            webhooks: job.webhooks,
            after_jobs: job.after_jobs,
            failure_handler: job.failure_handler,
            created_at: job.created_at,
            updated_at: job.updated_at,
            next_fire_at: job.next_fire_at,
            skipped_fires: job.skipped_fires,
            fired: job.fired,
            failures: job.failures,
            last_finished_at: job.last_finished_at,
            state,
        }
    }
}

/// `GET /v1/jobs`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    jobs: Vec<JobView>,
}

impl JobList {
    /// The jobs, in the order given.
    pub fn new(jobs: Vec<JobView>) -> JobList {
        JobList { jobs }
    }
}

/// What a dry run of `PUT /v1/jobs/{name}` would do.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // Only described: `crate::jobs::Preview` names the change.
pub enum JobChange {
    Create,
    Update,
    Unchanged,
}

/// `PUT /v1/jobs/{name}?dry_run=true`: what would change; nothing is written.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobPreviewView {
    #[schema(value_type = JobChange)]
    change: &'static str,
    /// The spec fields whose values would change.
    changed_fields: Vec<String>,
    /// The job as it would be stored.
    job: JobView,
}

impl From<Preview> for JobPreviewView {
    fn from(preview: Preview) -> JobPreviewView {
        JobPreviewView {
            change: preview.change,
            changed_fields: preview.changed_fields,
            job: JobView::from(preview.job),
        }
    }
}

/// A 200 of `PUT /v1/jobs/{name}`: the replaced job, or with `dry_run` what
/// would change.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum JobPutView {
    /// The job as replaced.
    Job(JobView),
    /// What would change.
    Preview(JobPreviewView),
}

/// A run as the API shows it: its input only by size.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunView {
    /// Time-ordered id.
    id: String,
    job_id: String,
    job_name: String,
    /// The plugin reference it ran (`name@version`).
    plugin: String,
    /// sha256 of the component it ran, hex.
    plugin_digest: String,
    trigger: Trigger,
    /// 1 for the first attempt, counting retries.
    attempt: u32,
    status: RunStatus,
    /// Why it failed, if it did.
    error: Option<RunError>,
    /// When it was due: a schedule's fire, its nominal instant.
    #[schema(value_type = String, format = DateTime)]
    scheduled_at: DateTime<Utc>,
    /// When it could start: `scheduled_at` plus its fire's jitter (the
    /// schedule's `jitter`), the instant `lateness_ms` counts from.
    #[schema(value_type = String, format = DateTime)]
    due_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    queued_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    started_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    finished_at: Option<DateTime<Utc>>,
    duration_ms: Option<u64>,
    /// How long after `due_at` it started, milliseconds.
    lateness_ms: Option<i64>,
    fuel_consumed: Option<u64>,
    /// Most linear memory and tables it held, bytes.
    peak_memory: Option<u64>,
    output_size: u64,
    log_size: u64,
    limits: RunLimits,
    priority: Priority,
    retry: Retry,
    /// Whether it ran alone (its job's overlap is not `allow`).
    exclusive: bool,
    /// The concurrency group it ran in (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
    /// The run this one is a new attempt of.
    retry_of: Option<String>,
    /// Host patterns it could reach (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http_allow: Vec<String>,
    /// Secret names it could read (absent: none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<String>,
    /// Bytes of the input it was given.
    input_size: usize,
    /// The workflow run it is a step of (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_run: Option<String>,
    /// Its step's id in that workflow run.
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<String>,
    /// The node of the cluster that runs (or ran) it (absent: one daemon
    /// on sled).
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<String>,
    /// What it recorded of its host calls (absent: it does not record;
    /// zeros until it finishes). A replayable run answers
    /// `POST /v1/runs/{id}/replay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    record: Option<RunTape>,
}

impl From<&Run> for RunView {
    fn from(run: &Run) -> RunView {
        RunView {
            id: run.id.clone(),
            job_id: run.job_id.clone(),
            job_name: run.job_name.clone(),
            plugin: run.plugin.clone(),
            plugin_digest: run.plugin_digest.clone(),
            trigger: run.trigger,
            attempt: run.attempt,
            status: run.status,
            error: run.error.clone(),
            scheduled_at: run.scheduled_at,
            due_at: run.due_at(),
            queued_at: run.queued_at,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms: run.duration_ms,
            lateness_ms: run.lateness_ms,
            fuel_consumed: run.fuel_consumed,
            peak_memory: run.peak_memory,
            output_size: run.output_size,
            log_size: run.log_size,
            limits: run.limits,
            priority: run.priority,
            retry: run.retry,
            exclusive: run.exclusive,
            concurrency: run.concurrency.clone(),
            retry_of: run.retry_of.clone(),
            http_allow: run.http_allow.clone(),
            secrets: run.secrets.clone(),
            input_size: run.input.len(),
            workflow_run: run.workflow.as_ref().map(|of| of.workflow_run.clone()),
            step: run.workflow.as_ref().map(|of| of.step.clone()),
            node: run.node.clone(),
            record: run.record.then(|| {
                run.tape.unwrap_or(RunTape {
                    bytes: 0,
                    calls: 0,
                    replayable: false,
                })
            }),
        }
    }
}

/// How a run's output is written in `output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    /// The bytes were UTF-8: as they are.
    Utf8,
    /// Base64 of the bytes.
    Base64,
}

/// Output bytes as a run's JSON shows them: as text when they are UTF-8,
/// else base64.
pub fn output_text(output: &[u8]) -> (String, OutputEncoding) {
    match std::str::from_utf8(output) {
        Ok(text) => (text.to_string(), OutputEncoding::Utf8),
        Err(_) => (
            base64::engine::general_purpose::STANDARD.encode(output),
            OutputEncoding::Base64,
        ),
    }
}

/// A run with its output, as `GET /v1/runs/{id}` shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunWithOutputView {
    #[serde(flatten)]
    run: RunView,
    /// The output once the run has finished (null before).
    output: Option<String>,
    output_encoding: OutputEncoding,
}

impl RunWithOutputView {
    /// `run` with `output`, its stored output.
    pub fn new(run: &Run, output: &[u8]) -> RunWithOutputView {
        let (text, output_encoding) = output_text(output);
        RunWithOutputView {
            run: RunView::from(run),
            output: run.status.is_finished().then_some(text),
            output_encoding,
        }
    }
}

/// `GET /v1/runs`: a page, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    runs: Vec<RunView>,
    /// Pass as `cursor` for the next page; null on the last one.
    next_cursor: Option<String>,
}

impl RunList {
    /// A page of `runs`; a full page (`limit` runs) may have a next one.
    pub fn page(runs: &[Run], limit: usize) -> RunList {
        let next_cursor = (runs.len() == limit)
            .then(|| runs.last().map(|run| run.id.clone()))
            .flatten();
        RunList {
            runs: runs.iter().map(RunView::from).collect(),
            next_cursor,
        }
    }
}

/// What a tenant sees of one of its plugin versions: only facts of its own
/// upload. The compiled code is shared by digest across tenants, so when
/// (and how long) it was compiled would tell one tenant that another
/// uploaded the same bytes first. A built-in was never uploaded: its dates
/// are null.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginVersionView {
    name: String,
    /// 1, 2, 3, ... per name.
    version: u32,
    /// `name@version`.
    reference: String,
    /// `sha256:` and the component's hash, hex.
    digest: String,
    /// Bytes.
    size: u64,
    #[schema(value_type = Option<String>, format = DateTime)]
    uploaded_at: Option<DateTime<Utc>>,
    /// The same as `uploaded_at`.
    #[schema(value_type = Option<String>, format = DateTime)]
    created_at: Option<DateTime<Utc>>,
}

impl From<&PluginVersion> for PluginVersionView {
    fn from(version: &PluginVersion) -> PluginVersionView {
        let uploaded_at = match builtin::named(&version.name) {
            Some(_) => None,
            None => Some(version.created_at),
        };
        PluginVersionView {
            name: version.name.clone(),
            version: version.version,
            reference: version.reference(),
            digest: format!("sha256:{}", version.digest),
            size: version.size,
            uploaded_at,
            created_at: uploaded_at,
        }
    }
}

/// A plugin and its versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginView {
    name: String,
    /// A built-in plugin (`std.*`), which every tenant has.
    builtin: bool,
    /// The newest version, if any.
    latest: Option<u32>,
    /// Oldest first.
    versions: Vec<PluginVersionView>,
}

impl PluginView {
    /// The plugin `name` with `versions`, oldest first.
    pub fn new(name: &str, versions: &[PluginVersion]) -> PluginView {
        PluginView {
            name: name.to_string(),
            builtin: builtin::named(name).is_some(),
            latest: versions.last().map(|version| version.version),
            versions: versions.iter().map(PluginVersionView::from).collect(),
        }
    }
}

/// `GET /v1/plugins`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PluginList {
    plugins: Vec<PluginView>,
}

impl PluginList {
    /// The plugins, in the order given.
    pub fn new(plugins: Vec<PluginView>) -> PluginList {
        PluginList { plugins }
    }
}

/// One coming fire of a job.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireView {
    /// Its instant (the run's `scheduled_at`).
    #[schema(value_type = String, format = DateTime)]
    at: DateTime<Utc>,
    /// When its run is due: the instant plus its jitter.
    #[schema(value_type = String, format = DateTime)]
    due_at: DateTime<Utc>,
}

/// An hour with fires.
#[derive(Debug, Serialize, ToSchema)]
pub struct FireHourView {
    /// The hour's start, UTC.
    #[schema(value_type = String, format = DateTime)]
    hour: DateTime<Utc>,
    /// Its fires.
    count: u64,
}

/// `GET /v1/jobs/{id}/fires`: a job's coming fires in a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct FiresView {
    job_id: String,
    job_name: String,
    /// The range, from (included) ...
    #[schema(value_type = String, format = DateTime)]
    from: DateTime<Utc>,
    /// ... to (excluded).
    #[schema(value_type = String, format = DateTime)]
    to: DateTime<Utc>,
    /// The zone of the schedule's wall times and dates, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    timezone: Option<String>,
    /// The first fires, in order (up to `limit`).
    fires: Vec<FireView>,
    /// How many fires the range holds.
    total: u64,
    /// The hours with fires and how many (a calendar folds a frequent job
    /// into these).
    hours: Vec<FireHourView>,
}

impl FiresView {
    /// The view of `coming`, the fires of `job` in [`from`, `to`).
    pub fn new(job: &Job, from: DateTime<Utc>, to: DateTime<Utc>, coming: Upcoming) -> FiresView {
        FiresView {
            job_id: job.id.clone(),
            job_name: job.name.clone(),
            from,
            to,
            timezone: job
                .schedule
                .as_ref()
                .and_then(crate::timing::Schedule::timezone)
                .map(|zone| zone.name().to_string()),
            fires: coming
                .fires
                .iter()
                .map(|fire| FireView {
                    at: fire.at,
                    due_at: fire.due_at,
                })
                .collect(),
            total: coming.total,
            hours: coming
                .hours
                .iter()
                .map(|(hour, count)| FireHourView {
                    hour: *hour,
                    count: *count,
                })
                .collect(),
        }
    }
}

/// `POST /v1/jobs/{id}/backfill`: what was queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackfillView {
    /// The fires the range holds.
    fires: usize,
    /// Runs queued now (fires not recorded before).
    queued: usize,
    /// Fires whose runs were recorded before (by the scheduler or an
    /// earlier backfill): nothing new was queued for them.
    already_recorded: usize,
    /// Fires the overlap policy dropped (the job was busy).
    skipped: usize,
    /// The runs queued.
    runs: Vec<RunView>,
}

impl From<Backfilled> for BackfillView {
    fn from(done: Backfilled) -> BackfillView {
        BackfillView {
            fires: done.fires,
            queued: done.queued.len(),
            already_recorded: done.already_recorded,
            skipped: done.skipped,
            runs: done.queued.iter().map(RunView::from).collect(),
        }
    }
}
