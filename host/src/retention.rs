//! Keeps the run history bounded: in the background, finished runs older
//! than `retention` or beyond `max_runs_per_job` per job are deleted with
//! their output and logs (finished workflow runs older than `retention`
//! too), and a tenant past its `run_bytes` quota loses its
//! oldest finished runs until it is back within it; a bounded batch at a
//! time on a blocking thread, so the scheduler and the runs never wait for
//! it.
//!
//! While runs keep passing the policy (every-second jobs at their cap) the
//! sweeps come every few seconds, each deleting a few seconds' worth. sled
//! 0.34 copies a leaf for every key a batch deletes and frees the old copies
//! only once the whole batch is applied, so a sweep a minute deleting the
//! 12,000 runs 200 every-second jobs make in that minute raised the daemon's
//! RSS by 15-20 MiB at each sweep (docs/benchmarks.md, "Hostile tenants:
//! memory under sustained load").

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use crate::cluster::Leadership;
use crate::store::RunStore;
use crate::tenancy::Tenants;

/// How often each tenant's run bytes are held against its quota: a look
/// in memory, and a trim only for a tenant past it. Outputs and logs of
/// finished runs (and scheduled runs, which are not refused) take a tenant
/// past its quota for at most about this long.
pub const QUOTA_CHECK: Duration = Duration::from_secs(1);

/// Runs deleted per batch (one sled batch): the leaves it copies are freed
/// only after it is applied.
const BATCH: usize = 500;

/// The wait after a sweep that deleted runs: more are likely due soon, and
/// deleting them a few seconds' worth at a time keeps each sweep small.
const BUSY_INTERVAL: Duration = Duration::from_secs(5);

/// A sweep walks every job's index however little it deletes: after one
/// that took long (many jobs with many runs) the next waits at least this
/// many times as long, so sweeping keeps at most a tenth of one thread.
const SWEEP_SPACING: u32 = 10;

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

    /// The wait before the next sweep, after one that deleted `deleted`
    /// runs in `took`: while runs are being deleted [`BUSY_INTERVAL`], or
    /// [`SWEEP_SPACING`] times `took` if longer, never more than
    /// [`Policy::interval`]; that interval once none were.
    pub fn next_interval(&self, deleted: usize, took: Duration) -> Duration {
        if deleted > 0 {
            BUSY_INTERVAL.max(took * SWEEP_SPACING).min(self.interval())
        } else {
            self.interval()
        }
    }

    fn enabled(&self) -> bool {
        !self.retention.is_zero() || self.max_runs_per_job > 0
    }
}

/// One sweep: deletes batches until nothing more is due; returns how many.
pub async fn sweep(store: &Arc<dyn RunStore>, clock: &dyn Clock, policy: Policy) -> usize {
    let older_than = if policy.retention.is_zero() {
        chrono::DateTime::<chrono::Utc>::MIN_UTC
    } else {
        clock.now() - chrono::Duration::from_std(policy.retention).unwrap_or(chrono::Duration::MAX)
    };
    let mut total = 0;
    let mut workflow_runs = !policy.retention.is_zero();
    loop {
        let store = store.clone();
        let prune_workflow_runs = workflow_runs;
        let pruned = crate::lanes::SWEEPS
            .run(move || {
                if prune_workflow_runs {
                    store.prune_workflow_runs(older_than, BATCH)
                } else {
                    store.prune_runs(older_than, policy.max_runs_per_job, BATCH)
                }
            })
            .await;
        match pruned {
            Ok(Ok(count)) => {
                total += count;
                if count < BATCH {
                    if !workflow_runs {
                        return total;
                    }
                    // Workflow runs past the retention first, then runs.
                    workflow_runs = false;
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

/// Trims every tenant past its `run_bytes` quota back within it, oldest
/// finished runs first; returns how many runs went.
pub async fn trim_to_quotas(store: &Arc<dyn RunStore>, tenants: &Tenants) -> usize {
    let mut total = 0;
    for (tenant, max_bytes) in tenants.run_bytes_quotas() {
        match store.run_bytes(&tenant) {
            Ok(used) if used > max_bytes => {}
            Ok(_) => continue,
            Err(error) => {
                tracing::warn!(%tenant, %error, "cannot read the run bytes of a tenant");
                continue;
            }
        }
        loop {
            let (store, name) = (store.clone(), tenant.clone());
            let trimmed = crate::lanes::SWEEPS
                .run(move || store.trim_runs(&name, max_bytes, BATCH))
                .await;
            match trimmed {
                Ok(Ok(count)) => {
                    total += count;
                    if count < BATCH {
                        break;
                    }
                }
                Ok(Err(error)) => {
                    tracing::warn!(%tenant, %error, "trimming runs to the run_bytes quota failed; trying again later");
                    break;
                }
                Err(error) => {
                    tracing::warn!(%error, "the trimming task failed");
                    break;
                }
            }
        }
    }
    total
}

/// Sweeps for as long as the runtime lives (the first a few seconds after
/// the start: a restarted daemon may hold a backlog; then after
/// [`Policy::next_interval`]), and trims tenants to their `run_bytes`
/// quotas every [`QUOTA_CHECK`].
pub fn start(
    store: Arc<dyn RunStore>,
    clock: Arc<dyn Clock>,
    policy: Policy,
    tenants: Arc<Tenants>,
    leadership: Arc<Leadership>,
) {
    tokio::spawn(async move {
        let mut next_sweep = tokio::time::Instant::now() + BUSY_INTERVAL.min(policy.interval());
        loop {
            tokio::time::sleep(QUOTA_CHECK).await;
            // In a cluster one node sweeps: the leader.
            if !leadership.is_leader() {
                continue;
            }
            if policy.enabled() && tokio::time::Instant::now() >= next_sweep {
                let began = std::time::Instant::now();
                let deleted = sweep(&store, clock.as_ref(), policy).await;
                let took = began.elapsed();
                if deleted > 0 {
                    tracing::debug!(deleted, took_ms = took.as_millis() as u64, "old runs deleted");
                }
                next_sweep = tokio::time::Instant::now() + policy.next_interval(deleted, took);
            }
            let trimmed = trim_to_quotas(&store, &tenants).await;
            if trimmed > 0 {
                tracing::info!(
                    deleted = trimmed,
                    "runs deleted to keep tenants within their run_bytes quotas"
                );
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

    #[tokio::test]
    async fn only_tenants_past_their_run_bytes_quota_are_trimmed_and_back_within_it() {
        use crate::model::{Run, RunStatus, Tenant};
        use crate::store::Store;
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(crate::store::SledStore::open(dir.path()).unwrap());
        let tenants = Tenants::load(store.as_ref()).unwrap();
        let now = chrono::Utc::now();
        for (tenant, quota) in [("t", Some(2_000)), ("u", Some(1 << 20)), ("v", None)] {
            tenants.put(Tenant {
                name: tenant.into(),
                created_at: now,
                quotas: crate::model::Quotas {
                    run_bytes: quota,
                    ..Default::default()
                },
                http_allow: None,
                digest: None,
                calendars: Default::default(),
            });
            for index in 0..5 {
                let id = ulid::Ulid::from_parts(1_000 + index, 0)
                    .to_string()
                    .to_ascii_lowercase();
                let mut run = Run::sample(&id, "job", now);
                run.tenant = tenant.into();
                store.insert_run(&run).unwrap();
                run.output_size = 1000;
                run.finish(RunStatus::Succeeded, None, now);
                store.finish_run(&run, &[b'o'; 1000], b"").unwrap();
            }
        }
        let runs: Arc<dyn RunStore> = store.clone();
        let before = |tenant: &str| store.run_bytes(tenant).unwrap();
        let (untouched, unlimited) = (before("u"), before("v"));
        assert!(before("t") > 2_000);
        let trimmed = trim_to_quotas(&runs, &tenants).await;
        assert!((3..5).contains(&trimmed), "{trimmed}");
        assert!(before("t") <= 2_000 && before("t") > 0, "{}", before("t"));
        assert_eq!((before("u"), before("v")), (untouched, unlimited));
        assert_eq!(trim_to_quotas(&runs, &tenants).await, 0);
    }

    #[test]
    fn sweeps_come_every_few_seconds_while_they_delete_and_back_off_when_idle_or_long() {
        let capped = Policy {
            retention: Duration::from_secs(30 * 24 * 3600),
            max_runs_per_job: 100,
        };
        let quick = Duration::from_millis(80);
        assert_eq!(capped.next_interval(0, quick), Duration::from_secs(60));
        assert_eq!(capped.next_interval(1, quick), BUSY_INTERVAL);
        assert_eq!(capped.next_interval(12_000, quick), BUSY_INTERVAL);
        // A long sweep (many jobs with many runs each) is spaced out.
        assert_eq!(
            capped.next_interval(500, Duration::from_secs(2)),
            Duration::from_secs(20)
        );
        assert_eq!(
            capped.next_interval(500, Duration::from_secs(9)),
            Duration::from_secs(60)
        );
        // A retention shorter than that is swept at its own pace.
        let short = Policy {
            retention: Duration::from_secs(8),
            max_runs_per_job: 0,
        };
        assert_eq!(short.next_interval(5, quick), Duration::from_secs(2));
        assert_eq!(short.next_interval(0, quick), Duration::from_secs(2));
    }
}
