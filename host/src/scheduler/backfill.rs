//! Backfill: the fires of a past range queued as runs now, with their
//! historical `scheduled_at`. A fire's run id is derived from (job,
//! instant), as the scheduler's own, so a range backfilled twice, or a
//! fire the scheduler ran, queues nothing new. The range's new fires are one
//! unit for the overlap policy (as a catch-up's are) and must all fit in
//! the tenant's `queued_runs` quota.

use chrono::{DateTime, Utc};

use super::Scheduler;
use crate::model::policy::{self, BackfillRefusal, OverlapDecision};
use crate::model::{Run, Trigger};
use crate::store::StoreError;

/// What a backfill did.
#[derive(Debug, Clone, PartialEq)]
pub struct Backfilled {
    /// The fires the range holds.
    pub fires: usize,
    /// The runs it queued (fires not recorded before).
    pub queued: Vec<Run>,
    /// Fires whose runs were recorded before (by the scheduler or an
    /// earlier backfill).
    pub already_recorded: usize,
    /// Fires the overlap policy dropped (the job was busy).
    pub skipped: usize,
}

/// Why a backfill queued nothing.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// The job has no such fires, or too many.
    #[error(transparent)]
    Refused(#[from] BackfillRefusal),
    /// No job of the tenant has this id.
    #[error("no job with id {0:?}")]
    NotFound(String),
    /// The runs would pass the tenant's `queued_runs` quota.
    #[error(
        "the backfill's {wanted} runs do not fit in the tenant's queue: {free} places are free under its queued_runs quota"
    )]
    QueueFull {
        /// Runs it would queue.
        wanted: usize,
        /// Places free.
        free: usize,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Scheduler {
    /// Queues the fires of the job `job_id` of `tenant` in [`from`, `to`)
    /// (trigger `backfill`), due now, and makes them durable.
    pub async fn backfill(
        &self,
        tenant: &str,
        job_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Backfilled, BackfillError> {
        // No pass between the read of the job and the write of it.
        let _firing = self.firing.lock().await;
        let job = self
            .store
            .job(tenant, job_id)?
            .ok_or_else(|| BackfillError::NotFound(job_id.to_string()))?;
        let fires = policy::backfill_fires(job.schedule.as_ref(), job.created_at, from, to)?;
        let mut done = Backfilled {
            fires: fires.len(),
            queued: Vec::new(),
            already_recorded: 0,
            skipped: 0,
        };
        // Fires recorded before (run by the scheduler, or backfilled)
        // queue nothing, whatever the job is doing.
        let mut runs = Vec::with_capacity(fires.len());
        for fire in &fires {
            let run = self.scheduled_run(&job, *fire, Trigger::Backfill);
            if self.store.run(tenant, &run.id)?.is_none() {
                runs.push(run);
            }
        }
        done.already_recorded = fires.len() - runs.len();
        if runs.is_empty() {
            return Ok(done);
        }
        let activity = self.sink.activity(tenant, job_id);
        let decision = policy::overlap(job.policy.overlap, activity.running, activity.waiting);
        if decision == OverlapDecision::Skip {
            done.skipped = runs.len();
            return Ok(done);
        }
        let mut places = self.sink.places();
        let granted = places.take(tenant, runs.len());
        if granted < runs.len() {
            places.give_back(tenant, granted);
            return Err(BackfillError::QueueFull {
                wanted: runs.len(),
                free: granted,
            });
        }
        let inserted = match self.store.record_fire_runs(&job, &runs) {
            Ok(inserted) => inserted,
            Err(error) => {
                places.give_back(tenant, granted);
                return Err(error.into());
            }
        };
        places.give_back(tenant, granted - inserted.len());
        self.store.flush_async().await?;
        if decision == OverlapDecision::ReplaceRunning && !inserted.is_empty() {
            self.sink.cancel_running(tenant, job_id);
        }
        // Recorded meanwhile (another node's backfill of the same range).
        done.already_recorded += runs.len() - inserted.len();
        done.queued = inserted.clone();
        self.sink.enqueue(inserted);
        Ok(done)
    }
}
