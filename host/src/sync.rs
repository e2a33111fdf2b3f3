//! Locks that outlive a panic: state behind a mutex stays usable when a
//! holder panicked (every holder leaves it consistent between statements),
//! so one failed run cannot wedge the daemon.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking the state over from a holder that panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Work asked for again and again (every notice of a change) done by one
/// blocking thread at a time, once more after the asks that came while it
/// ran: a thousand asks in a burst cost a few runs, not a thousand.
pub struct Coalesced {
    work: Box<dyn Fn() + Send + Sync>,
    /// A thread is doing the work.
    busy: std::sync::atomic::AtomicBool,
    /// Asked for since the running pass began.
    again: std::sync::atomic::AtomicBool,
}

impl Coalesced {
    /// `work`, to be done when asked.
    pub fn new(work: impl Fn() + Send + Sync + 'static) -> std::sync::Arc<Coalesced> {
        std::sync::Arc::new(Coalesced {
            work: Box::new(work),
            busy: std::sync::atomic::AtomicBool::new(false),
            again: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Asks for the work: done on a blocking thread now, or after the pass
    /// under way.
    pub fn ask(self: &std::sync::Arc<Self>) {
        use std::sync::atomic::Ordering::SeqCst;
        self.again.store(true, SeqCst);
        if self.busy.swap(true, SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            loop {
                this.again.store(false, SeqCst);
                (this.work)();
                if this.again.load(SeqCst) {
                    continue;
                }
                this.busy.store(false, SeqCst);
                // An ask between the check and the release finds busy set
                // and leaves the work to this thread: take it back.
                if !this.again.load(SeqCst) || this.busy.swap(true, SeqCst) {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Coalesced;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asks_during_a_pass_make_one_more_pass_not_one_each() {
        let passes = Arc::new(AtomicUsize::new(0));
        let counted = passes.clone();
        let work = Coalesced::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
        });
        for _ in 0..1000 {
            work.ask();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let after_burst = passes.load(Ordering::SeqCst);
        assert!((1..=3).contains(&after_burst), "{after_burst} passes for 1000 asks");
        // An ask after the passes ended is done too.
        work.ask();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(passes.load(Ordering::SeqCst), after_burst + 1);
    }
}
