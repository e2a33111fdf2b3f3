//! A job's failed runs in a row (`Job::failures`): counted up by a run's
//! last attempt failing and back to none by one succeeding, written like a
//! fire (under the lock passes hold, the job's `updated_at` kept), so a
//! pass never writes over the count with a job it read before.

use super::Scheduler;
use crate::model::Job;
use crate::store::StoreError;

/// How many times a count is tried when the job changes under it.
const ATTEMPTS: usize = 3;

impl Scheduler {
    /// Counts the end of a run's last attempt of the job `job_id` of
    /// `tenant`: `failed`, or succeeded. The job as written and its count
    /// before; None when the job is gone.
    pub async fn count_outcome(
        &self,
        tenant: &str,
        job_id: &str,
        failed: bool,
    ) -> Result<Option<(Job, u64)>, StoreError> {
        let _firing = self.firing.lock().await;
        let mut conflict = None;
        for _ in 0..ATTEMPTS {
            let Some(mut job) = self.store.job(tenant, job_id)? else {
                return Ok(None);
            };
            let before = job.failures;
            job.failures = if failed { before.saturating_add(1) } else { 0 };
            if job.failures == before {
                return Ok(Some((job, before)));
            }
            match self.store.record_fire(&job, &[]) {
                Ok(_) => {
                    self.store.flush_soon();
                    return Ok(Some((job, before)));
                }
                Err(StoreError::Conflict(reason)) => conflict = Some(StoreError::Conflict(reason)),
                Err(error) => return Err(error),
            }
        }
        Err(conflict.unwrap_or_else(|| StoreError::Conflict(format!("job {job_id} kept changing"))))
    }
}
