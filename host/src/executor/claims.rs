//! A node of a cluster fills its free slots from the cluster's queue (see
//! `RunClaims`), and gives back what it claimed and did not start when it
//! stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{CLAIM_POLL, Executor};
use crate::store::{JobKey, RunClaims};
use crate::sync::lock;

impl Executor {
    /// Claims due runs from the cluster's queue while this node has free
    /// slots (slots not running a run nor promised to one it claimed), and
    /// hands them to its own queue. Woken when runs are queued (here, or on
    /// another node: NOTIFY) and when a run ends here, and every
    /// [`CLAIM_POLL`] besides.
    pub(super) async fn claim_loop(self: Arc<Self>, claims: Arc<dyn RunClaims>) {
        let mut failing = false;
        while !self.stopping.load(Ordering::SeqCst) {
            let promised = lock(&self.queue).waiting();
            let free = self.capacity.saturating_sub(self.running() + promised);
            let mut more = false;
            if free > 0 {
                let limits = self.granter.tenants().concurrency_quotas();
                let now = self.clock.now();
                let store = claims.clone();
                let claimed = tokio::task::spawn_blocking(move || store.claim_runs(free, now, &limits)).await;
                match claimed {
                    Ok(Ok((runs, left))) => {
                        if std::mem::take(&mut failing) {
                            tracing::info!("claiming runs again");
                        }
                        // More only if this claim got some: a node whose
                        // row is gone claims nothing, and must not spin.
                        more = left && !runs.is_empty();
                        if !runs.is_empty() {
                            tracing::debug!(runs = runs.len(), "runs claimed");
                        }
                        self.push(runs);
                    }
                    Ok(Err(error)) => {
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!(%error, "cannot claim runs; trying again");
                        }
                    }
                    Err(error) => tracing::error!(%error, "claiming runs failed"),
                }
            }
            if more {
                continue;
            }
            tokio::select! {
                () = self.claim_now.notified() => {}
                () = tokio::time::sleep(CLAIM_POLL) => {}
            }
        }
    }

    /// In a cluster, at a stop: the runs this node claimed and has not
    /// started go back to the cluster's queue, for the other nodes (its
    /// workflows' steps stay, for its next start or the node taking it
    /// over).
    pub(super) fn release_claimed(&self) {
        let Some(claims) = &self.claims else {
            return;
        };
        let claimed: Vec<JobKey> = lock(&self.queue)
            .withdraw_all()
            .into_iter()
            .filter(|run| run.workflow.is_none())
            .map(|run| (run.tenant, run.id))
            .collect();
        if claimed.is_empty() {
            return;
        }
        match claims.release_runs(&claimed) {
            Ok(()) => tracing::info!(runs = claimed.len(), "claimed runs given back to the cluster's queue"),
            Err(error) => {
                tracing::warn!(%error, "cannot give claimed runs back; the leader takes them over when this node's lease runs out")
            }
        }
    }
}
