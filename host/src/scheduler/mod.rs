//! The scheduler: sleeps until the earliest due fire in the store's ordered
//! due index (woken early when a job changes), then turns each due fire into
//! queued runs with the job's next fire in one atomic write, and hands the
//! runs to the executor. The decisions (misfire, overlap, backoff) are the
//! pure functions of [`policy`]; this loop only reads, writes and sleeps.

pub mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::clock::Clock;
use crate::executor::{Executor, NewRun};
use crate::model::{Job, Run, Trigger, scheduled_run_id};
use crate::schedule::Schedule;
use crate::store::{DueJob, Fire, Store, StoreError};
use policy::{OverlapDecision, plan_fires};

/// Due jobs handled per pass (one write and one flush cover a pass).
const PASS_SIZE: usize = 1000;

/// Fires schedules.
pub struct Scheduler {
    store: Arc<dyn Store>,
    executor: Arc<Executor>,
    clock: Arc<dyn Clock>,
    wake: Arc<Notify>,
    paused: AtomicBool,
    stopping: AtomicBool,
}

impl Scheduler {
    /// A scheduler over `store` feeding `executor`.
    pub fn new(store: Arc<dyn Store>, executor: Arc<Executor>, clock: Arc<dyn Clock>) -> Arc<Scheduler> {
        let wake = executor.schedule_changed();
        Arc::new(Scheduler {
            store,
            executor,
            clock,
            wake,
            paused: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
        })
    }

    /// A job was created, changed, paused, resumed or deleted: look again.
    pub fn job_changed(&self) {
        self.wake.notify_one();
    }

    /// Stops firing schedules (runs already queued go on).
    pub fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Fires again; fires missed meanwhile follow each job's misfire policy.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// True while paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Stops the loop for good (shutdown).
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Starts the loop.
    pub fn start(self: &Arc<Self>) {
        let scheduler = self.clone();
        tokio::spawn(async move { scheduler.run_loop().await });
    }

    async fn run_loop(self: Arc<Self>) {
        while !self.stopping.load(Ordering::SeqCst) {
            if self.is_paused() {
                self.wake.notified().await;
                continue;
            }
            match self.pass().await {
                Ok(Some(next)) => {
                    if self.clock.now() >= next {
                        continue;
                    }
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = self.clock.sleep_until(next) => {}
                    }
                }
                Ok(None) => self.wake.notified().await,
                Err(error) => {
                    tracing::error!(%error, "scheduler pass failed; retrying in 1s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Fires every due job (up to a pass's worth) in one atomic write, makes
    /// the new runs durable with one flush and queues them. Returns the next
    /// due instant.
    pub async fn pass(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let now = self.clock.now();
        let due = self.store.due_jobs(now, PASS_SIZE)?;
        if due.is_empty() {
            return self.store.next_due();
        }
        let mut fires = Vec::with_capacity(due.len());
        let mut entries = Vec::with_capacity(due.len());
        for entry in &due {
            match self.plan(entry, now) {
                Ok(Some(fire)) => {
                    fires.push(fire);
                    entries.push(entry);
                }
                Ok(None) => {}
                Err(error) => self.drop_entry(entry, &error)?,
            }
        }
        let outcomes = self.store.record_fires(&fires)?;
        let mut runs = Vec::new();
        for (outcome, entry) in outcomes.into_iter().zip(entries) {
            match outcome {
                // Runs recorded by an earlier life of this fire are left out.
                Ok(inserted) => runs.extend(inserted),
                // The job changed under us; the next pass sees the new one.
                Err(StoreError::Conflict(reason)) => tracing::debug!(%reason, "fire planned again"),
                Err(error) => self.drop_entry(entry, &error)?,
            }
        }
        self.store.flush_async().await?;
        self.executor.submit(runs);
        self.store.next_due()
    }

    /// A due entry that cannot be fired (its job is unreadable) leaves the
    /// index, so it does not stall every pass after it.
    fn drop_entry(&self, entry: &DueJob, error: &StoreError) -> Result<(), StoreError> {
        tracing::error!(job_id = %entry.job_id, %error, "cannot fire; dropping it from the due index");
        self.store.remove_due(entry)
    }

    /// One due job: plans its fires and applies the overlap policy. Returns
    /// the fire to record (the job moved on, with its runs), or None when
    /// the entry was stale and has been dropped.
    fn plan(&self, entry: &DueJob, now: DateTime<Utc>) -> Result<Option<Fire>, StoreError> {
        let job = self.store.job(&entry.tenant, &entry.job_id)?;
        // The index keeps milliseconds; the job keeps the exact instant.
        let current = |job: &Job| job.next_fire_at.map(|at| at.timestamp_millis()) == Some(entry.at.timestamp_millis());
        let Some(mut job) = job.filter(|job| job.enabled && current(job)) else {
            // A stale entry: the job went, was paused or moved on.
            self.store.remove_due(entry)?;
            return Ok(None);
        };
        let Some(schedule) = job.schedule.clone() else {
            self.store.remove_due(entry)?;
            return Ok(None);
        };
        let plan = plan_fires(
            &schedule,
            job.created_at,
            entry.at,
            now,
            job.policy.misfire,
            job.policy.misfire_window,
        );
        // The fires of one plan (a catch-up of missed fires and the fire on
        // time) are one unit for the overlap policy; unless overlap is
        // `allow` they then run one after another (see `Run::exclusive`).
        let activity = self.executor.activity(&job.tenant, &job.id);
        let mut skipped = plan.skipped;
        let runs: Vec<Run> = match policy::overlap(job.policy.overlap, activity.running, activity.waiting) {
            _ if plan.fires.is_empty() => Vec::new(),
            OverlapDecision::Skip => {
                skipped += plan.fires.len() as u64;
                Vec::new()
            }
            decision => {
                if decision == OverlapDecision::ReplaceRunning {
                    self.executor.cancel_running_of(&job.tenant, &job.id);
                }
                plan.fires.iter().map(|fire| self.scheduled_run(&job, *fire)).collect()
            }
        };
        job.next_fire_at = match (&schedule, plan.next_fire_at) {
            // An `after` job whose fire did not run counts its delay from now.
            (Schedule::After(delay), None) if runs.is_empty() => Some(crate::units::add_saturating(now, *delay)),
            (_, next) => next,
        };
        job.skipped_fires += skipped;
        if skipped > 0 {
            tracing::info!(job_id = %job.id, skipped, total = job.skipped_fires, "fires skipped");
        }
        Ok(Some(Fire { job, runs }))
    }

    fn scheduled_run(&self, job: &Job, fire: DateTime<Utc>) -> Run {
        self.executor.build_run(NewRun {
            job,
            trigger: Trigger::Schedule,
            scheduled_at: fire,
            id: scheduled_run_id(&job.tenant, &job.id, fire),
            input: None,
        })
    }

    /// Queues one run of each enabled `run_at_start` job (at daemon start).
    pub async fn fire_run_at_start_jobs(&self) -> Result<usize, StoreError> {
        let jobs: Vec<Job> = self
            .store
            .run_at_start_jobs()?
            .into_iter()
            .filter(|job| job.enabled && job.run_at_start)
            .collect();
        let mut count = 0;
        for job in jobs {
            count += self.fire_now(&job).await?;
        }
        Ok(count)
    }

    /// Queues one run of `job` now, as its schedule would (the `run_at_start`
    /// pattern). Returns how many runs were queued (0 or 1).
    pub async fn fire_now(&self, job: &Job) -> Result<usize, StoreError> {
        let run = self.scheduled_run(job, self.clock.now());
        let inserted = match self.store.record_fire(job, &[run]) {
            Ok(inserted) => inserted,
            Err(StoreError::Conflict(_)) => return Ok(0),
            Err(error) => return Err(error),
        };
        self.store.flush_async().await?;
        let count = inserted.len();
        self.executor.submit(inserted);
        Ok(count)
    }
}
