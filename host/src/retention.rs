//! Keeps the run history bounded: in the background, finished runs older
//! than `retention` or beyond `max_runs_per_job` per job are deleted with
//! their output and logs, a bounded batch at a time on a blocking thread, so
//! the scheduler and the runs never wait for it.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::store::Store;

/// Runs deleted per batch (one sled batch).
const BATCH: usize = 2_000;

/// What to keep.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Age past which a finished run goes (zero: no age limit).
    pub retention: Duration,
    /// Finished runs kept per job (zero: no cap).
    pub max_runs_per_job: usize,
}

impl Policy {
    /// How often to look: a quarter of the retention, between 1 s and 1 min.
    pub fn interval(&self) -> Duration {
        if self.retention.is_zero() {
            return Duration::from_secs(60);
        }
        (self.retention / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    fn enabled(&self) -> bool {
        !self.retention.is_zero() || self.max_runs_per_job > 0
    }
}

/// One sweep: deletes batches until nothing more is due; returns how many.
pub async fn sweep(store: &Arc<dyn Store>, clock: &dyn Clock, policy: Policy) -> usize {
    let older_than = if policy.retention.is_zero() {
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    } else {
        clock.now() - chrono::Duration::from_std(policy.retention).unwrap_or(chrono::Duration::MAX)
    };
    let mut total = 0;
    loop {
        let store = store.clone();
        let pruned =
            tokio::task::spawn_blocking(move || store.prune_runs(older_than, policy.max_runs_per_job, BATCH)).await;
        match pruned {
            Ok(Ok(count)) => {
                total += count;
                if count < BATCH {
                    return total;
                }
            }
            // Failing storage is logged once where it is noticed.
            Ok(Err(error)) if error.fault().is_some() => {
                tracing::debug!(%error, "pruning old runs refused; trying again later");
                return total;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "pruning old runs failed; trying again later");
                return total;
            }
            Err(error) => {
                tracing::warn!(%error, "the pruning task failed");
                return total;
            }
        }
    }
}

/// Sweeps every [`Policy::interval`] for as long as the runtime lives.
pub fn start(store: Arc<dyn Store>, clock: Arc<dyn Clock>, policy: Policy) {
    if !policy.enabled() {
        return;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(policy.interval()).await;
            let deleted = sweep(&store, clock.as_ref(), policy).await;
            if deleted > 0 {
                tracing::info!(deleted, "old runs deleted");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sweep_interval_follows_the_retention_within_bounds() {
        let policy = |seconds: u64| Policy {
            retention: Duration::from_secs(seconds),
            max_runs_per_job: 0,
        };
        assert_eq!(policy(2).interval(), Duration::from_secs(1));
        assert_eq!(policy(8).interval(), Duration::from_secs(2));
        assert_eq!(policy(30 * 24 * 3600).interval(), Duration::from_secs(60));
        assert!(!policy(0).enabled());
    }
}
