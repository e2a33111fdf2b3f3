//! Whether the storage works. An I/O error of the backend is classified (a
//! full volume or used-up disk quota, or any other I/O failure: a [`Fault`],
//! which lives with the store errors it maps to and from); the first
//! one turns the storage `failing`, which refuses writes at once, shows in
//! `/healthz` and the metrics, and is logged once. sled stays failed after
//! an I/O error (every later write and flush fails, even once there is
//! room), so the way back is reopening the database: the watchdog
//! (`watchdog`) finds when writes could succeed again and marks the storage
//! `recovered`, and the daemon then exits for its supervisor to start it
//! again (see `daemon::serve`). One log line per change, not per failure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use super::error::StoreError;
pub use super::error::{Fault, classify, describe};

/// Why the storage is failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The kind of fault.
    pub fault: Fault,
    /// What went wrong, for people.
    pub reason: String,
    /// When the first failure was seen.
    pub since: DateTime<Utc>,
}

/// The storage's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Writes succeed.
    Healthy,
    /// A write or flush failed; writes are refused.
    Failing(Failure),
    /// Writes could succeed again, but the database has to be reopened
    /// first (the daemon restarts); writes are still refused until then.
    Recovered {
        /// The failure that ended.
        failure: Failure,
        /// When room (or a working volume) came back.
        at: DateTime<Utc>,
    },
}

/// A change of state, logged once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// The storage started failing.
    Failing(Failure),
    /// It can take writes again (once reopened).
    Recovered {
        /// The failure that ended.
        failure: Failure,
        /// How long it lasted.
        after: chrono::Duration,
    },
}

/// Failures seen, by fault ([`Fault::NoSpace`], then [`Fault::Io`]).
pub type ErrorCounts = [u64; 2];

/// The state machine, apart from logging and clocks: healthy -> failing ->
/// recovered, each step reported once however often it is asked for.
#[derive(Debug, Clone)]
pub struct Tracker {
    condition: Condition,
    errors: ErrorCounts,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            condition: Condition::Healthy,
            errors: [0; 2],
        }
    }
}

impl Tracker {
    /// An operation failed with `fault`: counted, and a change only when the
    /// storage was healthy.
    pub fn failed(&mut self, fault: Fault, reason: &str, now: DateTime<Utc>) -> Option<Change> {
        self.errors[fault as usize] += 1;
        match self.condition {
            Condition::Healthy => {
                let failure = Failure {
                    fault,
                    reason: reason.to_string(),
                    since: now,
                };
                self.condition = Condition::Failing(failure.clone());
                Some(Change::Failing(failure))
            }
            Condition::Failing(_) | Condition::Recovered { .. } => None,
        }
    }

    /// Writes could succeed again: a change only when the storage was
    /// failing.
    pub fn recovered(&mut self, now: DateTime<Utc>) -> Option<Change> {
        let Condition::Failing(failure) = &self.condition else {
            return None;
        };
        let failure = failure.clone();
        self.condition = Condition::Recovered {
            failure: failure.clone(),
            at: now,
        };
        Some(Change::Recovered {
            after: now - failure.since,
            failure,
        })
    }

    /// The state now.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }

    /// Failures counted so far.
    pub fn errors(&self) -> ErrorCounts {
        self.errors
    }
}

/// What `/healthz` and the metrics show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The state.
    pub condition: Condition,
    /// Failures counted so far, by fault.
    pub errors: ErrorCounts,
}

impl Snapshot {
    /// True while writes succeed.
    pub fn healthy(&self) -> bool {
        self.condition == Condition::Healthy
    }
}

/// The storage's health, shared by the store, the API and the watchdog.
#[derive(Debug, Default)]
pub struct StorageHealth {
    tracker: Mutex<Tracker>,
    /// Set once the storage stops being healthy: every write reads it.
    failing: AtomicBool,
    /// Woken when the storage starts failing (the watchdog waits for it).
    changed: Notify,
}

impl StorageHealth {
    /// Healthy storage.
    pub fn new() -> StorageHealth {
        StorageHealth::default()
    }

    fn tracker(&self) -> std::sync::MutexGuard<'_, Tracker> {
        self.tracker.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Looks at a store error: a storage fault is counted, and the first
    /// one turns the storage failing (logged once).
    pub fn observe(&self, error: &StoreError) {
        if let Some(fault) = error.fault() {
            self.failed(fault, &error.to_string());
        }
    }

    /// An operation failed with `fault`.
    pub fn failed(&self, fault: Fault, reason: &str) {
        let change = self.tracker().failed(fault, reason, Utc::now());
        if let Some(change) = change {
            self.failing.store(true, Ordering::SeqCst);
            log(&change);
            self.changed.notify_waiters();
        }
    }

    /// Writes could succeed again (the watchdog found room); logged once.
    pub fn recovered(&self) {
        let change = self.tracker().recovered(Utc::now());
        if let Some(change) = change {
            log(&change);
        }
    }

    /// While the storage is not healthy, the error a write is refused with
    /// (counted as a failure of its fault).
    pub fn refusal(&self) -> Option<StoreError> {
        if !self.failing.load(Ordering::SeqCst) {
            return None;
        }
        let mut tracker = self.tracker();
        let failure = match tracker.condition() {
            Condition::Healthy => return None,
            Condition::Failing(failure) | Condition::Recovered { failure, .. } => failure.clone(),
        };
        tracker.errors[failure.fault as usize] += 1;
        Some(failure.fault.error(format!(
            "storage is failing since {}: {}; writes are refused until it can take them again (see /healthz)",
            failure.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            failure.reason
        )))
    }

    /// True once the storage has failed (until the daemon restarts).
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Returns once the storage has started failing.
    pub async fn failing(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the flag is read, so no wake-up is missed.
            changed.as_mut().enable();
            if self.is_failing() {
                return;
            }
            changed.await;
        }
    }

    /// The state and counts now.
    pub fn snapshot(&self) -> Snapshot {
        let tracker = self.tracker();
        Snapshot {
            condition: tracker.condition().clone(),
            errors: tracker.errors(),
        }
    }
}

/// The one log line of a change.
fn log(change: &Change) {
    match change {
        Change::Failing(failure) => tracing::error!(
            fault = failure.fault.as_str(),
            reason = %failure.reason,
            "storage is failing: writes are refused (507 insufficient_storage or 503 storage_unavailable) and /healthz answers 503 until it can take writes again"
        ),
        Change::Recovered { failure, after } => tracing::warn!(
            fault = failure.fault.as_str(),
            failed_for_s = after.num_seconds(),
            "storage recovered: it can take writes again; the database is reopened by a restart"
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_state_goes_healthy_failing_recovered_and_reports_each_change_once() {
        let mut tracker = Tracker::default();
        let start = Utc::now();
        assert_eq!(tracker.recovered(start), None, "nothing to recover from");
        let first = tracker.failed(Fault::NoSpace, "no space", start);
        let failure = Failure {
            fault: Fault::NoSpace,
            reason: "no space".into(),
            since: start,
        };
        assert_eq!(first, Some(Change::Failing(failure.clone())));
        for second in 1..100 {
            let later = start + chrono::Duration::seconds(second);
            assert_eq!(tracker.failed(Fault::NoSpace, "no space", later), None);
        }
        // Another kind of failure meanwhile is counted, not a new state.
        assert_eq!(tracker.failed(Fault::Io, "eio", start), None);
        assert_eq!(tracker.errors(), [100, 1]);
        assert_eq!(tracker.condition(), &Condition::Failing(failure.clone()));
        let back = start + chrono::Duration::seconds(120);
        assert_eq!(
            tracker.recovered(back),
            Some(Change::Recovered {
                failure: failure.clone(),
                after: chrono::Duration::seconds(120)
            })
        );
        assert_eq!(tracker.recovered(back), None);
        // Until reopened, a failure changes nothing.
        assert_eq!(tracker.failed(Fault::NoSpace, "no space", back), None);
        assert!(matches!(tracker.condition(), Condition::Recovered { .. }));
    }

    /// Log lines written while `body` runs.
    fn logged(body: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Lines(Arc<Mutex<Vec<u8>>>);
        impl io::Write for Lines {
            fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, body);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn many_failures_log_one_line_and_recovery_one_more() {
        let health = StorageHealth::new();
        let full = StoreError::NoSpace("no space left on the data volume".into());
        let failing = logged(|| {
            for _ in 0..50 {
                health.observe(&full);
                let refused = health.refusal().expect("writes are refused");
                assert!(matches!(refused, StoreError::NoSpace(_)), "{refused}");
                health.observe(&refused);
            }
            // Not a storage fault: not counted.
            health.observe(&StoreError::Conflict("changed".into()));
        });
        assert_eq!(failing.matches("storage is failing").count(), 1, "{failing}");
        assert!(failing.contains("no_space"), "{failing}");
        assert!(!health.snapshot().healthy());
        assert_eq!(health.snapshot().errors, [150, 0]);
        let recovering = logged(|| {
            health.recovered();
            health.recovered();
        });
        assert_eq!(recovering.matches("storage recovered").count(), 1, "{recovering}");
        assert!(health.refusal().is_some(), "still refused until reopened");
    }

    #[test]
    fn healthy_storage_refuses_nothing() {
        let health = StorageHealth::new();
        assert!(health.refusal().is_none());
        assert!(health.snapshot().healthy());
        health.observe(&StoreError::Backend("a bug".into()));
        assert!(health.snapshot().healthy(), "only I/O faults turn it failing");
    }

    #[tokio::test]
    async fn the_watchdog_is_woken_when_storage_starts_failing() {
        let health = Arc::new(StorageHealth::new());
        let waiting = tokio::spawn({
            let health = health.clone();
            async move { health.failing().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        health.failed(Fault::Io, "eio");
        tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        // Already failing: returns at once.
        health.failing().await;
    }
}
