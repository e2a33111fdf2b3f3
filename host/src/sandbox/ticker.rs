//! The epoch ticker: advances the engine's epoch every tick while runs are
//! executing (epochs drive deadlines, cancels and yields), and sleeps on a
//! condition variable otherwise, so an idle daemon wakes no thread for it.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Ticks while at least one [`Ticking`] guard lives.
pub struct Ticker {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    active: usize,
    stop: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps the ticker ticking for as long as it lives (one per run).
pub struct Ticking {
    shared: Arc<Shared>,
}

impl Drop for Ticking {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.active = state.active.saturating_sub(1);
    }
}

impl Ticker {
    /// Starts the thread; it calls `tick` every `period` while runs are
    /// active, and ends when `tick` returns false or the ticker is dropped.
    pub fn spawn(period: Duration, mut tick: impl FnMut() -> bool + Send + 'static) -> Ticker {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let thread_shared = shared.clone();
        std::thread::Builder::new()
            .name("sandcron-epoch".to_string())
            .spawn(move || {
                loop {
                    {
                        let mut state = thread_shared.state();
                        while state.active == 0 && !state.stop {
                            state = thread_shared
                                .wake
                                .wait(state)
                                .unwrap_or_else(|poisoned| poisoned.into_inner());
                        }
                        if state.stop {
                            return;
                        }
                    }
                    std::thread::sleep(period);
                    if !tick() {
                        return;
                    }
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker { shared }
    }

    /// A run is starting: tick until the guard is dropped.
    pub fn ticking(&self) -> Ticking {
        let mut state = self.shared.state();
        state.active += 1;
        if state.active == 1 {
            self.shared.wake.notify_one();
        }
        Ticking {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.shared.state().stop = true;
        self.shared.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn it_ticks_only_while_a_run_is_active() {
        let ticks = Arc::new(AtomicUsize::new(0));
        let counted = ticks.clone();
        let ticker = Ticker::spawn(Duration::from_millis(1), move || {
            counted.fetch_add(1, Ordering::SeqCst);
            true
        });
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), 0, "idle: no ticks");
        let guard = ticker.ticking();
        let started = std::time::Instant::now();
        while ticks.load(Ordering::SeqCst) < 3 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "ticks while a run is active"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(10));
        let after = ticks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(ticks.load(Ordering::SeqCst), after, "idle again: no more ticks");
    }
}
