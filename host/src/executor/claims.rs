//! A node of a cluster fills its free slots from the cluster's queue (see
//! `RunClaims`), and gives back what it claimed and did not start when it
//! stops.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{CLAIM_POLL, Executor};
use crate::model::Run;
use crate::store::{JobKey, RunClaims};
use crate::sync::lock;

/// The most due times of queued runs the claims keep to wake at (the
/// leader's passes tell one or two a second; past this, the claims' look
/// every [`CLAIM_POLL`] finds them).
const MAX_CLAIM_TIMES: usize = 1024;

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
                () = tokio::time::sleep(self.until_next_claim()) => {}
            }
        }
    }

    /// Runs were queued in the cluster's queue, the earliest due at `due`
    /// if told: claims look now, and again when it comes due.
    pub fn claim_by(&self, due: Option<DateTime<Utc>>) {
        if let Some(due) = due
            && due > self.clock.now()
        {
            let mut claim_at = lock(&self.claim_at);
            if claim_at.len() < MAX_CLAIM_TIMES {
                claim_at.insert(due);
            }
        }
        self.claim_now();
    }

    /// How long the claims sleep: [`CLAIM_POLL`], or less when a run
    /// comes due sooner.
    fn until_next_claim(&self) -> Duration {
        let now = self.clock.now();
        let mut claim_at = lock(&self.claim_at);
        let came = claim_at.first().is_some_and(|due| *due <= now);
        claim_at.retain(|due| *due > now);
        match claim_at.first() {
            _ if came => Duration::ZERO,
            Some(due) => (*due - now).to_std().unwrap_or_default().min(CLAIM_POLL),
            None => CLAIM_POLL,
        }
    }

    /// In a cluster, the runs of fires recorded ahead of their instant, of
    /// one job, a tenant or all, not due yet (`due_too`: due or not): they
    /// wait in the cluster's queue, not in this node's (no node claims a
    /// run before it is due). Withdrawing them is deleting them with the
    /// change that withdraws them; one a node claimed meanwhile (its
    /// instant came) is not deleted, and is not fired twice: its fire's
    /// run id is its own. None on one daemon.
    pub(super) fn ahead_in_cluster(
        &self,
        tenant: Option<&str>,
        job_id: Option<&str>,
        due_too: bool,
    ) -> Option<Vec<Run>> {
        let claims = self.claims.as_ref()?;
        let not_due_at = (!due_too).then(|| self.clock.now());
        Some(claims.ahead_runs(tenant, job_id, not_due_at).unwrap_or_else(|error| {
            tracing::warn!(%error, "cannot read the fires recorded ahead in the cluster's queue");
            Vec::new()
        }))
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
