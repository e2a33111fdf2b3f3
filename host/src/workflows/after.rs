//! Jobs that run after other jobs (`after_jobs`): an index from a job's
//! name to the jobs waiting for it, kept as jobs are written, and the join
//! each waiting job keeps (which of its jobs have ended a run, and how),
//! moved on by the recorder with the outcome that moves it, so the fired
//! run and the join land in that outcome's write. In a cluster, where
//! runs of the jobs waited for end on several nodes, each join is moved
//! on in a transaction of its own that the others wait for instead.

use std::time::{Duration, Instant};

use super::engine::Workflows;
use super::planner::Waiting;
use crate::executor::OUTAGE_PATIENCE;
use crate::model::dependency::Join;
use crate::model::run::NewRun;
use crate::model::{Run, Trigger};
use crate::store::{StoreError, StoreResult};
use crate::sync::lock;

impl Workflows {
    /// Reads every job's `after_jobs` into the index (at start).
    pub(super) fn index_waiting(&self) -> Result<(), StoreError> {
        let mut waiting = Waiting::new();
        for tenant in self.store.tenant_names()? {
            for job in self.store.list_jobs(&tenant)? {
                for name in job.after_jobs.iter().flat_map(|after| after.jobs.iter()) {
                    waiting
                        .entry(tenant.clone())
                        .or_default()
                        .entry(name.clone())
                        .or_default()
                        .push(job.id.clone());
                }
            }
        }
        *lock(&self.waiting) = waiting;
        Ok(())
    }

    /// Reads the index again: another node of the cluster wrote a job.
    pub fn reindex_after_jobs(&self) {
        if let Err(error) = self.index_waiting() {
            tracing::warn!(%error, "cannot read the jobs' after_jobs again");
        }
    }

    /// A job was written or deleted: its place in the index follows.
    pub fn job_changed(&self, tenant: &str, job_id: &str) {
        let job = match self.store.job(tenant, job_id) {
            Ok(job) => job,
            Err(error) => {
                tracing::warn!(%error, job_id, "cannot read a changed job for its after_jobs");
                return;
            }
        };
        let mut waiting = lock(&self.waiting);
        let names = waiting.entry(tenant.to_string()).or_default();
        names.retain(|_, ids| {
            ids.retain(|id| id != job_id);
            !ids.is_empty()
        });
        for name in job
            .iter()
            .flat_map(|job| job.after_jobs.iter())
            .flat_map(|after| after.jobs.iter())
        {
            names.entry(name.clone()).or_default().push(job_id.to_string());
        }
        if names.is_empty() {
            waiting.remove(tenant);
        }
    }

    /// Whether jobs wait for the job of this run.
    pub(super) fn is_waited_for(&self, run: &Run) -> bool {
        lock(&self.waiting)
            .get(&run.tenant)
            .is_some_and(|names| names.contains_key(&run.job_name))
    }

    /// The last attempt of a run of a job others wait for ended: moves
    /// their joins on and makes the runs it fires: into `runs` and `joins`,
    /// written with the run's outcome; or, on a store other processes
    /// write too (a cluster), each join moved on and its run written in a
    /// transaction of their own, the runs written so into `recorded`.
    pub(super) fn fire_waiting(&self, run: &Run, runs: &mut Vec<Run>, joins: &mut Vec<Join>, recorded: &mut Vec<Run>) {
        let deadline = Instant::now() + OUTAGE_PATIENCE;
        let waiting = lock(&self.waiting)
            .get(&run.tenant)
            .and_then(|names| names.get(&run.job_name))
            .cloned()
            .unwrap_or_default();
        for job_id in waiting {
            let job = match self.store.job(&run.tenant, &job_id) {
                Ok(Some(job)) => job,
                Ok(None) => continue,
                Err(error) => {
                    tracing::warn!(%error, job_id, "cannot read a job waiting for another");
                    continue;
                }
            };
            let Some(after) = &job.after_jobs else {
                continue;
            };
            if !job.enabled || !after.jobs.contains(&run.job_name) {
                continue;
            }
            // The join moved on, and the run its end fires, if any.
            let mut move_on = |join: &mut Join| {
                let (all_succeeded, any_failed) = join.ended_by(&run.id, &run.job_name, run.status, &after.jobs)?;
                if !after.when.holds(all_succeeded, any_failed) {
                    tracing::debug!(job = %job.name, "after_jobs ended without its condition; not fired");
                    return None;
                }
                let version = match self.plugins.resolve(&job.tenant, &job.plugin) {
                    Ok(version) => version,
                    Err(error) => {
                        tracing::warn!(job = %job.name, %error, "a job waiting for another cannot run: its plugin");
                        return None;
                    }
                };
                let now = self.clock.now();
                let new = NewRun {
                    job: &job,
                    trigger: Trigger::Dependency,
                    scheduled_at: now,
                    jitter_ms: 0,
                    id: crate::model::id::dependency_run_id(&job.tenant, &job.id, &run.id),
                    input: None,
                };
                Some(Run::queued(new, Some(version), now, self.run_log_bytes))
            };
            match self.update_join(&run.tenant, &job_id, &mut move_on, deadline) {
                Some(Ok(fired)) => recorded.extend(fired),
                Some(Err(error)) => tracing::error!(%error, job = %job.name, "cannot move a job's join on"),
                None => {
                    let mut cached = lock(&self.joins);
                    let join_key = (run.tenant.clone(), job_id.clone());
                    if !cached.contains_key(&join_key) {
                        let stored = match self.store.join(&run.tenant, &job_id) {
                            Ok(stored) => stored,
                            Err(error) => {
                                tracing::warn!(%error, job_id, "cannot read a job's join");
                                continue;
                            }
                        };
                        let join = stored.unwrap_or_else(|| Join {
                            tenant: run.tenant.clone(),
                            job_id: job_id.clone(),
                            ..Join::default()
                        });
                        cached.insert(join_key.clone(), join);
                    }
                    let join = cached.get_mut(&join_key).expect("inserted above");
                    let fired = move_on(join);
                    joins.push(join.clone());
                    drop(cached);
                    runs.extend(fired);
                }
            }
        }
    }
}

impl Workflows {
    /// [`WorkflowStore::update_join`](crate::store::WorkflowStore::update_join),
    /// tried again while the database is away until `deadline` (one for
    /// all the joins a run's end moves), as the recorder tries the outcome
    /// that moves them (it waits on the same thread).
    fn update_join(
        &self,
        tenant: &str,
        job_id: &str,
        update: &mut (dyn FnMut(&mut Join) -> Option<Run> + Send),
        deadline: Instant,
    ) -> Option<StoreResult<Option<Run>>> {
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.store.update_join(tenant, job_id, update) {
                Some(Err(StoreError::Disconnected(message))) if Instant::now() < deadline => {
                    tracing::debug!(%message, job_id, "cannot move a job's join on; trying again");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                answer => return answer,
            }
        }
    }
}
