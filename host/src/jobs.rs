//! Job writes, in one place: create, replace by name, patch, delete, pause
//! and resume. Each validates against the tenant's ceilings, writes through
//! the scheduler (which withdraws fires recorded ahead in the same write),
//! makes the change durable, and only then logs it, gets the job's plugin
//! ready, tells the event stream and wakes the scheduler, in that order:
//! an answer or an event never gets ahead of the disk, and a job's
//! `job.created` comes before the `run.queued` of its first fire. The API
//! handlers only extract, call and show.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::clock::Clock;
use crate::config::JobDefaults;
use crate::events::EventBus;
use crate::metrics::Metrics;
use crate::model::Job;
use crate::model::validate::{ValidationError, merge_patch, parse_spec, resolve_calendars, validate};
use crate::plugin::{PluginError, Plugins};
use crate::sandbox::{EngineKind, Metering};
use crate::scheduler::Scheduler;
use crate::store::{Store, StoreError};
use crate::tenancy::Tenants;
use crate::workflows::Workflows;

/// Why a job write was refused.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// A field is missing or wrong.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The body is not what the call takes (the message names the field).
    #[error("{0}")]
    InvalidField(String),
    /// The job names a plugin the tenant does not have.
    #[error("plugin: {0}; upload it first")]
    UnknownPlugin(PluginError),
    /// Resolving the plugin failed otherwise.
    #[error(transparent)]
    Plugin(PluginError),
    /// No job of the tenant has this id or name.
    #[error("no job with id or name {0:?}")]
    NotFound(String),
    /// Workflows' steps name the job: it cannot be deleted or renamed.
    #[error("job {name:?} is used by workflows: {}; change or delete them first", workflows.join(", "))]
    InUse {
        /// The job's name.
        name: String,
        /// The workflows whose steps name it.
        workflows: Vec<String>,
    },
    /// The store refused or failed (a taken name, the jobs quota, a fault).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `PUT /v1/jobs/{name}?dry_run=true` would do.
#[derive(Debug, Clone, PartialEq)]
pub struct Preview {
    /// `create`, `update` or `unchanged`.
    pub change: &'static str,
    /// The spec fields whose values would change.
    pub changed_fields: Vec<String>,
    /// The job as it would be stored.
    pub job: Job,
}

/// A job change, for what follows the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Created,
    Updated,
    Deleted,
    Paused,
    Resumed,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Created => "job.created",
            Change::Updated => "job.updated",
            Change::Deleted => "job.deleted",
            Change::Paused => "job.paused",
            Change::Resumed => "job.resumed",
        }
    }
}

/// The one owner of job writes.
pub struct Jobs {
    store: Arc<dyn Store>,
    scheduler: Arc<Scheduler>,
    tenants: Arc<Tenants>,
    plugins: Arc<Plugins>,
    events: Arc<EventBus>,
    metrics: Arc<Metrics>,
    defaults: JobDefaults,
    clock: Arc<dyn Clock>,
    workflows: Arc<Workflows>,
}

/// What [`Jobs`] is made of.
pub struct JobsParts {
    /// Jobs are read from here (and written through the scheduler).
    pub store: Arc<dyn Store>,
    /// Writes jobs, withdrawing fires recorded ahead.
    pub scheduler: Arc<Scheduler>,
    /// The tenants' ceilings and `jobs` quota.
    pub tenants: Arc<Tenants>,
    /// Resolves and prepares jobs' plugins.
    pub plugins: Arc<Plugins>,
    /// Job events.
    pub events: Arc<EventBus>,
    /// Job gauges.
    pub metrics: Arc<Metrics>,
    /// The daemon's job defaults and ceilings.
    pub defaults: JobDefaults,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Keeps which jobs wait for which (`after_jobs`), and names the
    /// workflows that use a job.
    pub workflows: Arc<Workflows>,
}

impl Jobs {
    /// The job service over its parts.
    pub fn new(parts: JobsParts) -> Jobs {
        Jobs {
            store: parts.store,
            scheduler: parts.scheduler,
            tenants: parts.tenants,
            plugins: parts.plugins,
            events: parts.events,
            metrics: parts.metrics,
            defaults: parts.defaults,
            clock: parts.clock,
            workflows: parts.workflows,
        }
    }

    /// A job of `tenant` by id or name.
    pub fn find(&self, tenant: &str, id_or_name: &str) -> Result<Job, JobsError> {
        if let Some(job) = self.store.job(tenant, id_or_name)? {
            return Ok(job);
        }
        if let Some(id) = self.store.job_id_by_name(tenant, id_or_name)?
            && let Some(job) = self.store.job(tenant, &id)?
        {
            return Ok(job);
        }
        Err(JobsError::NotFound(id_or_name.to_string()))
    }

    /// Creates a job from its spec (`name` taken: [`StoreError::NameTaken`]).
    pub async fn create(&self, tenant: &str, body: &Value) -> Result<Job, JobsError> {
        let job = self.validated(tenant, body, None)?;
        self.scheduler.insert_job(&job, self.tenants.quotas(tenant).jobs)?;
        self.committed(&job, Change::Created).await?;
        Ok(job)
    }

    /// What a replace by name would do, writing nothing.
    pub fn preview_put(&self, tenant: &str, name: &str, body: Value) -> Result<Preview, JobsError> {
        let (existing, job) = self.put_target(tenant, name, body)?;
        let (change, changed_fields) = match &existing {
            None => ("create", Vec::new()),
            Some(existing) => match changed_fields(existing, &job) {
                fields if fields.is_empty() => ("unchanged", fields),
                fields => ("update", fields),
            },
        };
        Ok(Preview {
            change,
            changed_fields,
            job,
        })
    }

    /// Creates or replaces the job called `name`; the stored job and
    /// whether it was created.
    pub async fn put(&self, tenant: &str, name: &str, body: Value) -> Result<(Job, bool), JobsError> {
        let (existing, mut job) = self.put_target(tenant, name, body)?;
        let change = match existing {
            Some(_) => {
                self.scheduler.update_job(&mut job).await?;
                Change::Updated
            }
            None => {
                self.scheduler.insert_job(&job, self.tenants.quotas(tenant).jobs)?;
                Change::Created
            }
        };
        self.committed(&job, change).await?;
        Ok((job, change == Change::Created))
    }

    /// Applies a JSON merge patch (RFC 7386) to a job's spec. A schedule
    /// and an input are replaced whole, never merged key by key:
    /// `{"every": "90s"}` over `{"cron": ...}` means "now every 90s".
    pub async fn patch(&self, tenant: &str, id_or_name: &str, patch: &Value) -> Result<Job, JobsError> {
        let existing = self.find(tenant, id_or_name)?;
        if !patch.is_object() {
            return Err(JobsError::InvalidField(
                "body: expected a JSON merge patch object".to_string(),
            ));
        }
        let mut spec = existing.to_spec_json();
        for whole in ["schedule", "input"] {
            if patch.get(whole).is_some() {
                spec[whole] = Value::Null;
            }
        }
        merge_patch(&mut spec, patch);
        let mut job = self.validated(tenant, &spec, Some(&existing))?;
        if job.name != existing.name {
            self.refuse_in_use(&existing)?;
        }
        self.scheduler.update_job(&mut job).await?;
        self.committed(&job, Change::Updated).await?;
        Ok(job)
    }

    /// Deletes a job and its kv state (its runs stay); the job as it was.
    pub async fn delete(&self, tenant: &str, id_or_name: &str) -> Result<Job, JobsError> {
        let job = self.find(tenant, id_or_name)?;
        self.refuse_in_use(&job)?;
        self.scheduler.delete_job(tenant, &job.id).await?;
        self.committed(&job, Change::Deleted).await?;
        Ok(job)
    }

    /// Refuses to take away a job that workflows' steps name (a step would
    /// fail at its start instead).
    fn refuse_in_use(&self, job: &Job) -> Result<(), JobsError> {
        let workflows: Vec<String> = self
            .store
            .list_workflows(&job.tenant)?
            .into_iter()
            .filter(|workflow| workflow.steps.iter().any(|step| step.job == job.name))
            .map(|workflow| workflow.name)
            .collect();
        if workflows.is_empty() {
            return Ok(());
        }
        Err(JobsError::InUse {
            name: job.name.clone(),
            workflows,
        })
    }

    /// Pauses or resumes a job (nothing changes when it already is so).
    pub async fn set_enabled(&self, tenant: &str, id_or_name: &str, enabled: bool) -> Result<Job, JobsError> {
        self.set_enabled_because(tenant, id_or_name, enabled, None).await
    }

    /// [`Jobs::set_enabled`] by the daemon, saying why in its event. A job
    /// resumed starts counting its failed runs in a row again.
    pub async fn set_enabled_because(
        &self,
        tenant: &str,
        id_or_name: &str,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<Job, JobsError> {
        let mut job = self.find(tenant, id_or_name)?;
        if job.enabled != enabled {
            job.enabled = enabled;
            if enabled {
                job.failures = 0;
            }
            job.updated_at = self.clock.now();
            self.scheduler.update_job(&mut job).await?;
            let change = if enabled { Change::Resumed } else { Change::Paused };
            self.committed_because(&job, change, reason).await?;
        }
        Ok(job)
    }

    /// The tenant's calendar `name` was set: each job whose schedule
    /// excludes it takes its new dates, and its next fire moves by them
    /// (from now; an `after` job waiting for its run's end keeps waiting).
    /// A job that cannot be written is logged and the others go on. The
    /// jobs changed.
    pub async fn calendar_changed(&self, tenant: &str, name: &str) -> Result<Vec<Job>, JobsError> {
        let owner = self.tenants.get(tenant);
        let excludes = |job: &Job| {
            job.schedule
                .as_ref()
                .is_some_and(|schedule| schedule.rules.calendars().any(|used| used == name))
        };
        let mut changed = Vec::new();
        for listed in self.store.list_jobs(tenant)?.into_iter().filter(|job| excludes(job)) {
            // Read again just before the write: the listing is older.
            let Some(mut job) = self.store.job(tenant, &listed.id)?.filter(|job| excludes(job)) else {
                continue;
            };
            let Some(schedule) = job.schedule.as_mut() else {
                continue;
            };
            let before = schedule.clone();
            resolve_calendars(schedule, |name| owner.as_ref()?.calendar_dates(name))?;
            if *schedule == before {
                continue;
            }
            let now = self.clock.now();
            job.updated_at = now;
            let waits_for_a_run =
                job.next_fire_at.is_none() && job.schedule.as_ref().is_some_and(|schedule| schedule.is_after());
            if !waits_for_a_run && let Some(schedule) = job.schedule.as_ref() {
                job.next_fire_at = match job.fires_left() {
                    Some(0) => None,
                    _ => schedule.next_fire(now, job.created_at, job.last_finished_at),
                };
            }
            let written = match self.scheduler.update_job(&mut job).await {
                Ok(()) => self.committed(&job, Change::Updated).await,
                Err(error) => Err(error.into()),
            };
            match written {
                Ok(()) => changed.push(job),
                Err(error) => {
                    tracing::error!(job_id = %job.id, calendar = name, %error, "cannot move the job's fires by its calendar")
                }
            }
        }
        Ok(changed)
    }

    /// The job a replace by name writes, and the one it replaces.
    fn put_target(&self, tenant: &str, name: &str, mut body: Value) -> Result<(Option<Job>, Job), JobsError> {
        if let Some(object) = body.as_object_mut() {
            match object.get("name") {
                None => {
                    object.insert("name".to_string(), json!(name));
                }
                Some(given) if given != &json!(name) => {
                    return Err(JobsError::InvalidField(format!(
                        "name: the body says {given} but the path says {name:?}"
                    )));
                }
                Some(_) => {}
            }
        }
        let existing = match self.store.job_id_by_name(tenant, name)? {
            Some(id) => self.store.job(tenant, &id)?,
            None => None,
        };
        let job = self.validated(tenant, &body, existing.as_ref())?;
        Ok((existing, job))
    }

    /// The job a spec makes for `tenant` (replacing `existing`), within the
    /// tenant's ceilings, its plugin known.
    fn validated(&self, tenant: &str, body: &Value, existing: Option<&Job>) -> Result<Job, JobsError> {
        if !body.is_object() {
            return Err(JobsError::InvalidField(
                "body: expected a JSON object with the job's fields".to_string(),
            ));
        }
        let spec = parse_spec(body)?;
        let defaults = self.tenants.quotas(tenant).cap(&self.defaults);
        let mut job = validate(spec, tenant, existing, &defaults, self.clock.now())?;
        if let Some(schedule) = job.schedule.as_mut()
            && schedule.rules.calendars().next().is_some()
        {
            let owner = self.tenants.get(tenant);
            resolve_calendars(schedule, |name| owner.as_ref()?.calendar_dates(name))?;
            job.next_fire_at = job.first_fire(job.updated_at);
        }
        for (index, name) in job.after_jobs.iter().flat_map(|after| after.jobs.iter()).enumerate() {
            if self.store.job_id_by_name(tenant, name)?.is_none() {
                return Err(ValidationError::new(
                    format!("after_jobs.jobs[{index}]"),
                    format!("no job named {name:?}; create it first"),
                )
                .into());
            }
        }
        if let Some(handler) = &job.failure_handler
            && self.store.job_id_by_name(tenant, handler)?.is_none()
        {
            return Err(
                ValidationError::new("failure_handler", format!("no job named {handler:?}; create it first")).into(),
            );
        }
        match self.plugins.resolve(&job.tenant, &job.plugin) {
            Ok(_) => Ok(job),
            Err(error @ (PluginError::NotFound { .. } | PluginError::VersionNotFound { .. })) => {
                Err(JobsError::UnknownPlugin(error))
            }
            Err(error) => Err(JobsError::Plugin(error)),
        }
    }

    /// After a job's write: durable first; then the log line, its plugin
    /// made ready, the event; the scheduler is woken whatever the flush
    /// did (the write is in the store either way); a new `run_at_start`
    /// job fires once.
    async fn committed(&self, job: &Job, change: Change) -> Result<(), JobsError> {
        self.committed_because(job, change, None).await
    }

    /// [`Jobs::committed`], the event saying why the daemon made the change.
    async fn committed_because(&self, job: &Job, change: Change, reason: Option<String>) -> Result<(), JobsError> {
        // Before the answer: a run ending right after it finds the job
        // among those waiting for its job.
        self.workflows.job_changed(&job.tenant, &job.id);
        let flushed = self.store.flush_async().await;
        if flushed.is_ok() {
            match change {
                Change::Created => tracing::info!(job_id = %job.id, name = %job.name, "job created"),
                Change::Deleted => {
                    tracing::info!(job_id = %job.id, name = %job.name, "job deleted");
                    self.metrics.job_deleted(&job.tenant, &job.name);
                }
                Change::Updated | Change::Paused | Change::Resumed => {}
            }
            if matches!(change, Change::Created | Change::Updated) {
                let kind = EngineKind::of(Metering::of(job.limits.fuel), job.record);
                self.plugins.prepare_soon(&job.tenant, &job.plugin, kind);
            }
            match reason {
                Some(reason) => self.events.job_because(change.event(), job, reason),
                None => self.events.job(change.event(), job),
            }
        }
        self.scheduler.job_changed();
        flushed?;
        if change == Change::Created && job.run_at_start && job.enabled {
            self.scheduler.fire_now(job).await?;
        }
        Ok(())
    }
}

/// The top-level spec fields whose values differ between two jobs.
fn changed_fields(before: &Job, after: &Job) -> Vec<String> {
    let (before, after) = (before.to_spec_json(), after.to_spec_json());
    let keys: std::collections::BTreeSet<&String> = before
        .as_object()
        .into_iter()
        .chain(after.as_object())
        .flat_map(|object| object.keys())
        .collect();
    keys.into_iter()
        .filter(|key| before.get(key.as_str()) != after.get(key.as_str()))
        .cloned()
        .collect()
}
