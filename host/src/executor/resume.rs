//! Runs that were left unfinished: by this daemon's last life (at start)
//! or by a dead node of the cluster (taken over).

use super::Executor;
use crate::model::{ErrorKind, Run, RunError, RunStatus};
use crate::store::StoreError;

impl Executor {
    /// After a start: queued runs go back in the queue; runs that were
    /// running when the daemon stopped fail with `host_restart` and are
    /// retried if they have attempts left.
    pub async fn recover(&self) -> Result<(), StoreError> {
        let runs = self.store.unfinished_runs()?;
        self.resume(runs, "the daemon stopped while this run was running").await;
        Ok(())
    }

    /// Runs of a dead node of the cluster, now this node's: queued ones go
    /// in the queue; running ones fail with `host_restart` and are retried
    /// here if they have attempts left.
    pub async fn take_over(&self, node: &str, runs: Vec<Run>) {
        let message = format!("node {node} stopped while this run was running");
        self.resume(runs, &message).await;
    }

    /// Queues unfinished runs again, failing those that were running with
    /// `host_restart` (`message` says why).
    async fn resume(&self, runs: Vec<Run>, message: &str) {
        let mut queued = Vec::new();
        for mut run in runs {
            match run.status {
                RunStatus::Running => {
                    let error = RunError {
                        kind: ErrorKind::HostRestart,
                        message: message.to_string(),
                    };
                    run.finish(RunStatus::Failed, Some(error), self.clock.now());
                    tracing::warn!(run_id = %run.id, "run interrupted: {message}");
                    self.finish(run, Vec::new(), Vec::new(), Vec::new()).await;
                }
                _ => queued.push(run),
            }
        }
        if !queued.is_empty() {
            tracing::info!(runs = queued.len(), "resuming queued runs");
        }
        self.submit(queued);
    }
}
