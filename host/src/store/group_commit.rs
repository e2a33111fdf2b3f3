//! Group commit: callers that want their writes durable at the same time
//! share one flush. A caller takes a ticket after its writes; a flush that
//! starts after a ticket was taken covers it. While one flush runs, callers
//! arriving meanwhile wait for it and then share the next one, so n
//! concurrent callers cost two flushes, not n.
//!
//! The flush runs on a blocking thread of its own, so a caller that gives up
//! (an HTTP request dropped mid-flush) cannot leave the others waiting.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::{StoreError, StoreResult};

/// The blocking flush that makes every write so far durable.
pub type FlushFn = Arc<dyn Fn() -> StoreResult<()> + Send + Sync>;

/// Shares flushes between concurrent callers.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    flush: FlushFn,
    state: Mutex<State>,
    finished: Notify,
}

#[derive(Default)]
struct State {
    /// The last ticket handed out.
    requested: u64,
    /// Every ticket up to this one is durable.
    durable: u64,
    /// A flush is running.
    flushing: bool,
    /// The last failed flush: the tickets it covered fail with its message.
    failure: Option<(u64, String)>,
}

impl GroupCommit {
    /// Group commit over `flush`.
    pub fn new(flush: FlushFn) -> GroupCommit {
        GroupCommit {
            inner: Arc::new(Inner {
                flush,
                state: Mutex::new(State::default()),
                finished: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Returns once every write made before the call is durable.
    pub async fn flush(&self) -> StoreResult<()> {
        let ticket = {
            let mut state = self.state();
            state.requested += 1;
            state.requested
        };
        loop {
            let finished = self.inner.finished.notified();
            tokio::pin!(finished);
            // Registered before the state is read, so no wake-up is missed.
            finished.as_mut().enable();
            {
                let mut state = self.state();
                if state.durable >= ticket {
                    return Ok(());
                }
                if let Some((covered, message)) = &state.failure
                    && *covered >= ticket
                {
                    return Err(StoreError::Backend(message.clone()));
                }
                if !state.flushing {
                    state.flushing = true;
                    self.start(state.requested);
                }
            }
            finished.await;
        }
    }

    /// Starts a flush covering every ticket up to `target`.
    fn start(&self, target: u64) {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let result = (inner.flush)();
            let mut state = inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            state.flushing = false;
            match result {
                Ok(()) => state.durable = state.durable.max(target),
                Err(error) => state.failure = Some((target, error.to_string())),
            }
            drop(state);
            inner.finished.notify_waiters();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::time::Duration;

    /// A flush that takes a while and remembers how many writes it covered.
    fn slow_flush(writes: Arc<AtomicU64>, durable: Arc<AtomicU64>, flushes: Arc<AtomicUsize>) -> FlushFn {
        Arc::new(move || {
            let covered = writes.load(Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            durable.fetch_max(covered, Ordering::SeqCst);
            flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_flushes_and_each_write_is_covered() {
        let (writes, durable, flushes) = Default::default();
        let group = GroupCommit::new(slow_flush(
            Arc::clone(&writes),
            Arc::clone(&durable),
            Arc::clone(&flushes),
        ));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (group, writes, durable) = (group.clone(), writes.clone(), durable.clone());
                tokio::spawn(async move {
                    let mine = writes.fetch_add(1, Ordering::SeqCst) + 1;
                    group.flush().await.unwrap();
                    assert!(durable.load(Ordering::SeqCst) >= mine, "write {mine} not covered");
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let flushes = flushes.load(Ordering::SeqCst);
        assert!((1..=10).contains(&flushes), "50 callers took {flushes} flushes");
    }

    #[tokio::test]
    async fn a_failed_flush_fails_its_callers_and_the_next_one_succeeds() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let group = GroupCommit::new(Arc::new(move || match counted.fetch_add(1, Ordering::SeqCst) {
            0 => Err(StoreError::Backend("disk full".into())),
            _ => Ok(()),
        }));
        let error = group.flush().await.unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
        group.flush().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_stall_the_others() {
        let (writes, durable, flushes) = Default::default();
        let group = GroupCommit::new(slow_flush(writes, durable, Arc::clone(&flushes)));
        // The first caller starts the flush and is dropped while it runs.
        let abandoned = tokio::time::timeout(Duration::from_millis(1), group.flush()).await;
        assert!(abandoned.is_err(), "the flush takes 20 ms");
        tokio::time::timeout(Duration::from_secs(5), group.flush())
            .await
            .expect("the second caller finishes")
            .unwrap();
        assert!(flushes.load(Ordering::SeqCst) >= 1);
    }
}
