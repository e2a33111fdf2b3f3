//! Group commit: callers that want their writes durable at the same time
//! share one flush. A caller takes a ticket after its writes; a flush that
//! starts after a ticket was taken covers it. While one flush runs, callers
//! arriving meanwhile wait for it and then share the next one, so n
//! concurrent callers cost two flushes, not n.
//!
//! A durability window (`flush_interval`) spaces flushes: a flush starts at
//! once when the last one began at least a window ago, otherwise when the
//! window has passed, so under load one flush covers every write of a
//! window (a flush holds sled's gate alone, stalling writes meanwhile) and
//! an idle daemon still answers without waiting. A zero window flushes as
//! soon as the previous flush is over.
//!
//! The flush runs on a thread of the flush lane (`lanes::FLUSHES`), so a
//! caller that gives up (an HTTP request dropped mid-flush) cannot leave the
//! others waiting.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::error::{StoreError, StoreResult};

/// The blocking flush that makes every write so far durable.
pub type FlushFn = Arc<dyn Fn() -> StoreResult<()> + Send + Sync>;

/// Shares flushes between concurrent callers.
#[derive(Clone)]
pub struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    flush: FlushFn,
    /// The least time between the starts of two flushes.
    window: Duration,
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
    /// A flush is set to start when the window has passed.
    scheduled: bool,
    /// When the last flush started.
    last_started: Option<Instant>,
    /// The last failed flush: the tickets it covered fail with its error
    /// (its kind kept: a full volume is told apart from other failures).
    failure: Option<(u64, StoreError)>,
}

impl GroupCommit {
    /// Group commit over `flush`, flushes starting at least `window` apart.
    pub fn new(flush: FlushFn, window: Duration) -> GroupCommit {
        GroupCommit {
            inner: Arc::new(Inner {
                flush,
                window,
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
                if let Some((covered, error)) = &state.failure
                    && *covered >= ticket
                {
                    return Err(error.clone());
                }
                if !state.flushing && !state.scheduled {
                    self.begin(&mut state);
                }
            }
            finished.await;
        }
    }

    /// Makes every write so far durable within the window, without waiting
    /// for it (a running mark: losing it to a crash only means the run is
    /// found queued and runs again).
    pub fn flush_soon(&self) {
        let group = self.clone();
        tokio::spawn(async move {
            if let Err(error) = group.flush().await {
                tracing::warn!(%error, "a background flush failed");
            }
        });
    }

    /// Starts a flush now, or sets one to start when the window has passed.
    fn begin(&self, state: &mut State) {
        let since_last = state.last_started.map_or(self.inner.window, |at| at.elapsed());
        let wait = self.inner.window.saturating_sub(since_last);
        if wait.is_zero() {
            self.start(state);
            return;
        }
        state.scheduled = true;
        let group = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let mut state = group.state();
            state.scheduled = false;
            group.start(&mut state);
        });
    }

    /// Starts a flush covering every ticket taken before it begins.
    fn start(&self, state: &mut State) {
        state.flushing = true;
        let inner = self.inner.clone();
        let queued = crate::lanes::FLUSHES.spawn(move || {
            let target = {
                let mut state = inner.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                state.last_started = Some(Instant::now());
                state.requested
            };
            let result = (inner.flush)();
            inner.finish(target, result);
        });
        if let Err(error) = queued {
            // The waiters read the state once this lock is let go.
            state.end_flush(state.requested, Err(StoreError::Backend(error.to_string())));
            self.inner.finished.notify_waiters();
        }
    }
}

impl Inner {
    /// A flush covering every ticket up to `target` ended with `result`.
    fn finish(&self, target: u64, result: StoreResult<()>) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.end_flush(target, result);
        drop(state);
        self.finished.notify_waiters();
    }
}

impl State {
    fn end_flush(&mut self, target: u64, result: StoreResult<()>) {
        self.flushing = false;
        match result {
            Ok(()) => self.durable = self.durable.max(target),
            Err(error) => self.failure = Some((target, error)),
        }
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
        let group = GroupCommit::new(
            slow_flush(Arc::clone(&writes), Arc::clone(&durable), Arc::clone(&flushes)),
            Duration::ZERO,
        );
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
        let group = GroupCommit::new(
            Arc::new(move || match counted.fetch_add(1, Ordering::SeqCst) {
                0 => Err(StoreError::Backend("disk full".into())),
                _ => Ok(()),
            }),
            Duration::ZERO,
        );
        let error = group.flush().await.unwrap_err();
        assert!(error.to_string().contains("disk full"), "{error}");
        group.flush().await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_caller_of_a_failed_flush_gets_its_error_with_its_kind_and_none_succeeds() {
        let group = GroupCommit::new(
            Arc::new(|| {
                std::thread::sleep(Duration::from_millis(20));
                Err(StoreError::NoSpace("no space left on the data volume".into()))
            }),
            Duration::ZERO,
        );
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let group = group.clone();
                tokio::spawn(async move { group.flush().await })
            })
            .collect();
        for caller in callers {
            match caller.await.unwrap() {
                Err(StoreError::NoSpace(message)) => assert!(message.contains("no space"), "{message}"),
                other => panic!("a failed flush answered {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_does_not_stall_the_others() {
        let (writes, durable, flushes) = Default::default();
        let group = GroupCommit::new(slow_flush(writes, durable, Arc::clone(&flushes)), Duration::ZERO);
        // The first caller starts the flush and is dropped while it runs.
        let abandoned = tokio::time::timeout(Duration::from_millis(1), group.flush()).await;
        assert!(abandoned.is_err(), "the flush takes 20 ms");
        tokio::time::timeout(Duration::from_secs(5), group.flush())
            .await
            .expect("the second caller finishes")
            .unwrap();
        assert!(flushes.load(Ordering::SeqCst) >= 1);
    }

    /// A flush that returns at once and counts itself.
    fn quick_flush(flushes: Arc<AtomicUsize>) -> FlushFn {
        Arc::new(move || {
            flushes.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }

    /// Ten callers, one after another, 2 ms apart.
    async fn ten_callers_in_a_row(group: &GroupCommit) {
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let group = group.clone();
            tasks.push(tokio::spawn(async move { group.flush().await.unwrap() }));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_window_makes_callers_within_it_share_one_flush() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit::new(quick_flush(Arc::clone(&flushes)), Duration::from_millis(800));
        // After a quiet spell the first caller is not kept waiting.
        let began = Instant::now();
        group.flush().await.unwrap();
        assert!(began.elapsed() < Duration::from_millis(400), "{:?}", began.elapsed());
        assert_eq!(flushes.load(Ordering::SeqCst), 1);
        // Callers arriving within the window wait for its end and share it.
        ten_callers_in_a_row(&group).await;
        assert_eq!(flushes.load(Ordering::SeqCst), 2);
        assert!(began.elapsed() >= Duration::from_millis(800), "{:?}", began.elapsed());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_window_each_caller_alone_gets_its_own_flush() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit::new(quick_flush(Arc::clone(&flushes)), Duration::ZERO);
        ten_callers_in_a_row(&group).await;
        assert!(flushes.load(Ordering::SeqCst) >= 5, "{flushes:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn flush_soon_flushes_without_a_caller_waiting() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let group = GroupCommit::new(quick_flush(Arc::clone(&flushes)), Duration::from_millis(5));
        group.flush_soon();
        let began = Instant::now();
        while flushes.load(Ordering::SeqCst) == 0 {
            assert!(began.elapsed() < Duration::from_secs(5), "no flush came");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
