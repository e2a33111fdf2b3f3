//! A job's failed runs in a row (`Job::failures`): counted up by a run's
//! last attempt failing and back to none by one succeeding, in one atomic
//! step of the stored job (a pass writing the job keeps the stored count,
//! so neither overwrites the other, on one node or across a cluster).

use super::Scheduler;
use crate::model::Job;
use crate::store::StoreError;

impl Scheduler {
    /// Counts the end of a run's last attempt of the job `job_id` of
    /// `tenant`: `failed`, or succeeded. The job as written and its count
    /// before; None when the job is gone.
    pub fn count_outcome(&self, tenant: &str, job_id: &str, failed: bool) -> Result<Option<(Job, u64)>, StoreError> {
        let counted = self.store.count_outcome(tenant, job_id, failed)?;
        if counted.as_ref().is_some_and(|(job, before)| job.failures != *before) {
            self.store.flush_soon();
        }
        Ok(counted)
    }
}
