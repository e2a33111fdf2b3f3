//! Waiting for a run to finish: told by the executor when it finishes
//! here, and, in a cluster, by its record (another node may run it).

use std::time::Duration;

use tokio::sync::oneshot;

use super::{Executor, WAIT_POLL};
use crate::model::Run;
use crate::store::{RunFilter, StoreError};
use crate::sync::lock;

impl Executor {
    /// Waits up to `timeout` for a run to finish; returns its latest record.
    pub async fn wait(&self, tenant: &str, run_id: &str, timeout: Duration) -> Result<Option<Run>, StoreError> {
        Ok(self.wait_for(tenant, run_id, timeout).await?.map(|(run, _)| run))
    }

    /// Waits up to `timeout` for the last attempt of a run: a failed attempt
    /// with attempts left is followed to its retry, and so on. Returns the
    /// latest record of the latest attempt found (the one still going when
    /// the time is up).
    pub async fn wait_final(&self, tenant: &str, run_id: &str, timeout: Duration) -> Result<Option<Run>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut run_id = run_id.to_string();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some((run, retry)) = self.wait_for(tenant, &run_id, left).await? else {
                return Ok(None);
            };
            let retry = match retry {
                Some(retry) => Some(retry),
                None => self.retry_of(tenant, &run)?,
            };
            match retry {
                Some(retry) if tokio::time::Instant::now() < deadline => run_id = retry,
                Some(retry) => return Ok(self.store.run(tenant, &retry)?.or(Some(run))),
                None => return Ok(Some(run)),
            }
        }
    }

    /// Waits up to `timeout` for a run to finish: its latest record, with
    /// the id of the retry queued after it when the finish was seen here.
    async fn wait_for(
        &self,
        tenant: &str,
        run_id: &str,
        timeout: Duration,
    ) -> Result<Option<(Run, Option<String>)>, StoreError> {
        let (sender, receiver) = oneshot::channel();
        lock(&self.waiters).entry(run_id.to_string()).or_default().push(sender);
        // Registered first, then checked: a finish in between is not missed.
        let current = self.store.run(tenant, run_id)?;
        if current.as_ref().is_none_or(|run| run.status.is_finished()) {
            return Ok(current.map(|run| (run, None)));
        }
        if self.claims.is_none() {
            return match tokio::time::timeout(timeout, receiver).await {
                Ok(Ok(finished)) => Ok(Some(finished)),
                _ => Ok(self.store.run(tenant, run_id)?.map(|run| (run, None))),
            };
        }
        // In a cluster another node may run it: its record tells.
        let deadline = tokio::time::Instant::now() + timeout;
        let mut receiver = Some(receiver);
        loop {
            let poll = (tokio::time::Instant::now() + WAIT_POLL).min(deadline);
            match receiver.as_mut() {
                Some(waiting) => tokio::select! {
                    finished = waiting => match finished {
                        Ok(finished) => return Ok(Some(finished)),
                        Err(_) => receiver = None,
                    },
                    () = tokio::time::sleep_until(poll) => {}
                },
                None => tokio::time::sleep_until(poll).await,
            }
            let current = self.store.run(tenant, run_id)?;
            let done = current.as_ref().is_none_or(|run| run.status.is_finished());
            if done || tokio::time::Instant::now() >= deadline {
                return Ok(current.map(|run| (run, None)));
            }
        }
    }

    /// The id of the retry queued after `run`, looked up in the store (it
    /// is written with the failed attempt's outcome): for a run that had
    /// finished before anyone waited here.
    fn retry_of(&self, tenant: &str, run: &Run) -> Result<Option<String>, StoreError> {
        if !run.has_attempts_left() {
            return Ok(None);
        }
        let lineage = run.retry_of.as_deref().unwrap_or(&run.id);
        let filter = RunFilter {
            job_id: Some(run.job_id.clone()),
            limit: 1000,
            ..RunFilter::default()
        };
        let runs = self.store.list_runs(tenant, &filter)?;
        Ok(runs
            .into_iter()
            .find(|next| next.retry_of.as_deref() == Some(lineage) && next.attempt == run.attempt + 1)
            .map(|next| next.id))
    }
}
