//! What the scheduler needs from whatever runs the runs it queues, and
//! nothing more: the executor is one such sink; the scheduler's tests use a
//! fake. Nothing calls back the other way: a run's end reaches the
//! scheduler as a [`RunEnded`](crate::model::run::RunEnded) on the channel
//! given to [`Scheduler::new`](super::Scheduler::new).

use std::collections::HashMap;

use crate::executor::Executor;
use crate::model::run::Activity;
use crate::model::{PluginVersion, Run};
use crate::plugin::Plugins;
use crate::store::JobKey;

/// Where the scheduler's runs go.
pub trait RunSink: Send + Sync {
    /// New durable queued runs: queue them and announce them (`run.queued`).
    fn enqueue(&self, runs: Vec<Run>);
    /// Runs taken out by a withdrawal going back unchanged: the write that
    /// would have deleted them failed, or their job went meanwhile.
    fn restore(&self, runs: Vec<Run>);
    /// How many runs of a job wait and run (the overlap policy's input).
    fn activity(&self, tenant: &str, job_id: &str) -> Activity;
    /// [`RunSink::activity`] of each of `jobs` at once, by (tenant, job id).
    fn activities(&self, jobs: &[JobKey]) -> HashMap<JobKey, Activity> {
        jobs.iter()
            .map(|job| (job.clone(), self.activity(&job.0, &job.1)))
            .collect()
    }
    /// Takes out the runs of fires recorded ahead of their instant that are
    /// not due yet, of one job (tenant, job id) or of all.
    fn withdraw_ahead(&self, job: Option<(&str, &str)>) -> Vec<Run>;
    /// Takes out every run of a fire recorded ahead, due or not: at start,
    /// those of the daemon's previous life.
    fn withdraw_recorded_ahead(&self) -> Vec<Run>;
    /// Cancels a job's running runs (overlap `replace`).
    fn cancel_running(&self, tenant: &str, job_id: &str);
    /// Places in tenants' queues (the `queued_runs` quota) for runs about
    /// to be queued, held until the returned guard is dropped.
    fn places(&self) -> Box<dyn Places + Send + '_>;
}

/// Places held in tenants' queues.
pub trait Places {
    /// Takes up to `wanted` places for runs of `tenant`; how many it took.
    fn take(&mut self, tenant: &str, wanted: usize) -> usize;
    /// Gives back `count` places of `tenant` whose runs will not be queued.
    fn give_back(&mut self, tenant: &str, count: usize);
}

/// Resolves a job's plugin reference to the version its runs keep.
pub trait ResolvePlugin: Send + Sync {
    /// The version `reference` (`name` or `name@3`) names for `tenant` now;
    /// None when it names none (the run then fails `plugin_unavailable`).
    fn resolve_version(&self, tenant: &str, reference: &str) -> Option<PluginVersion>;
}

impl RunSink for Executor {
    fn enqueue(&self, runs: Vec<Run>) {
        self.queued(runs);
    }

    fn restore(&self, runs: Vec<Run>) {
        self.submit(runs);
    }

    fn activity(&self, tenant: &str, job_id: &str) -> Activity {
        let job = (tenant.to_string(), job_id.to_string());
        Executor::activities(self, std::slice::from_ref(&job))
            .remove(&job)
            .unwrap_or_default()
    }

    fn activities(&self, jobs: &[JobKey]) -> HashMap<JobKey, Activity> {
        Executor::activities(self, jobs)
    }

    fn withdraw_ahead(&self, job: Option<(&str, &str)>) -> Vec<Run> {
        Executor::withdraw_ahead(self, job)
    }

    fn withdraw_recorded_ahead(&self) -> Vec<Run> {
        Executor::withdraw_recorded_ahead(self)
    }

    fn cancel_running(&self, tenant: &str, job_id: &str) {
        self.cancel_running_of(tenant, job_id);
    }

    fn places(&self) -> Box<dyn Places + Send + '_> {
        Box::new(Executor::places(self))
    }
}

impl Places for crate::executor::QueuePlaces<'_> {
    fn take(&mut self, tenant: &str, wanted: usize) -> usize {
        crate::executor::QueuePlaces::take(self, tenant, wanted)
    }

    fn give_back(&mut self, tenant: &str, count: usize) {
        crate::executor::QueuePlaces::give_back(self, tenant, count);
    }
}

impl ResolvePlugin for Plugins {
    fn resolve_version(&self, tenant: &str, reference: &str) -> Option<PluginVersion> {
        self.resolve(tenant, reference).ok()
    }
}
