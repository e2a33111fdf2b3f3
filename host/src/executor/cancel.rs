//! Cancelling runs: a queued one at once, a running one within an epoch
//! tick; in a cluster through any node (the node that has a run is asked
//! to stop it), and overlap `replace` on every node.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ExecError, Executor, STOP_WAIT};
use crate::model::{Run, RunStatus};
use crate::store::{StopRuns, StoreError};
use crate::sync::lock;

impl Executor {
    /// Cancels a run: a queued one at once, a running one within an epoch
    /// tick. Returns the run as it ends.
    pub async fn cancel(&self, tenant: &str, run_id: &str) -> Result<Option<Run>, ExecError> {
        let Some(run) = self.store.run(tenant, run_id)? else {
            return Ok(None);
        };
        if run.status.is_finished() {
            return Err(ExecError::Finished(run.id));
        }
        if let Some(claims) = &self.claims {
            // Another node's run: that node is asked to stop it.
            if let Some(owner) = run.node.as_ref().filter(|owner| Some(*owner) != self.node.as_ref()) {
                claims.stop_runs(&StopRuns::Run {
                    node: owner.clone(),
                    tenant: tenant.to_string(),
                    run: run_id.to_string(),
                })?;
                return Ok(self.wait(tenant, run_id, STOP_WAIT).await?);
            }
            // A run in the cluster's queue is claimed here to end it, unless
            // a node claimed it first.
            if run.node.is_none() && run.status == RunStatus::Queued && !claims.claim_run(tenant, run_id)? {
                return Box::pin(self.cancel(tenant, run_id)).await;
            }
        }
        self.cancel_here(tenant, run_id, Some(run)).await
    }

    /// Cancels a run of this daemon: `stored`, its record if read already.
    async fn cancel_here(&self, tenant: &str, run_id: &str, stored: Option<Run>) -> Result<Option<Run>, ExecError> {
        let (waiting, flag) = {
            let mut queue = lock(&self.queue);
            (queue.remove(run_id), queue.running_flag(run_id))
        };
        if let Some(flag) = flag {
            flag.store(true, Ordering::SeqCst);
            return Ok(self.wait(tenant, run_id, STOP_WAIT).await?);
        }
        // Waiting (or queued in the store but not in memory): it ends here.
        let mut run = match (waiting, stored) {
            (Some(run), _) | (None, Some(run)) => run,
            (None, None) => match self.store.run(tenant, run_id)? {
                Some(run) if !run.status.is_finished() => run,
                other => return Ok(other),
            },
        };
        run.finish(RunStatus::Cancelled, None, self.clock.now());
        self.finish(run.clone(), Vec::new(), Vec::new(), Vec::new()).await;
        Ok(Some(run))
    }

    /// Stops a job's running runs (overlap `replace`); they end `cancelled`.
    /// In a cluster, on every node.
    pub fn cancel_running_of(&self, tenant: &str, job_id: &str) {
        self.stop_running_here(tenant, job_id);
        if let Some(claims) = &self.claims {
            let stop = StopRuns::Job {
                tenant: tenant.to_string(),
                job: job_id.to_string(),
            };
            if let Err(error) = claims.stop_runs(&stop) {
                tracing::warn!(%error, job_id, "cannot ask the other nodes to stop the job's runs");
            }
        }
    }

    /// Stops this daemon's running runs of a job.
    fn stop_running_here(&self, tenant: &str, job_id: &str) {
        for flag in lock(&self.queue).running_flags_of(tenant, job_id) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// In a cluster: stops what another node asked to stop that runs (or
    /// waits) on this node.
    pub fn stop_here(self: &Arc<Self>, stop: &StopRuns) {
        match stop {
            StopRuns::Job { tenant, job } => self.stop_running_here(tenant, job),
            StopRuns::Run { node, tenant, run } if self.node.as_deref() == Some(node.as_str()) => {
                let Some(runtime) = self.runtime.get() else {
                    return;
                };
                let (executor, tenant, run) = (self.clone(), tenant.clone(), run.clone());
                runtime.spawn(async move {
                    if let Err(error) = executor.cancel_here(&tenant, &run, None).await {
                        tracing::warn!(%error, run_id = %run, "cannot cancel the run another node asked to stop");
                    }
                });
            }
            // The workflow engine's (see the daemon's cluster hooks).
            StopRuns::Run { .. } | StopRuns::WorkflowRun { .. } => {}
        }
    }

    /// In a cluster: asks the other nodes to stop `stop`'s runs; false on
    /// one daemon (it has every run).
    pub fn ask_other_nodes(&self, stop: &StopRuns) -> Result<bool, StoreError> {
        match &self.claims {
            Some(claims) => claims.stop_runs(stop).map(|()| true),
            None => Ok(false),
        }
    }

    /// This node's id in a cluster.
    pub fn node(&self) -> Option<&str> {
        self.node.as_deref()
    }
}
