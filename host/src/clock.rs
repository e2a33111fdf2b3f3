//! Wall-clock time, injectable: the daemon reads the system clock; tests of
//! the scheduler step a manual clock (or one tied to tokio's pausable time)
//! so an hour of schedule runs in milliseconds.

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Utc};

/// A boxed sleep.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where "now" comes from.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// Sleeps until this clock reads `at` (or later).
    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        Box::pin(tokio::time::sleep(until(self.now(), at)))
    }
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How early a [`SystemClock`] sleep leaves tokio's timer for the OS's.
const FINE_SLEEP: std::time::Duration = std::time::Duration::from_millis(2);

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// tokio's timer ticks in whole milliseconds and fires on the first tick
    /// at or after the deadline, so a fire would start up to a millisecond
    /// late plus the wake-up. The last 2 ms are slept on a blocking thread
    /// with the OS's timer instead (tens of microseconds on Linux).
    fn sleep_until(&self, at: DateTime<Utc>) -> Sleep {
        let coarse = until(Utc::now(), at).saturating_sub(FINE_SLEEP);
        Box::pin(async move {
            if !coarse.is_zero() {
                tokio::time::sleep(coarse).await;
            }
            let rest = until(Utc::now(), at);
            if !rest.is_zero() {
                // A sleep dropped early lets its thread finish the (short) nap.
                let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
            }
        })
    }
}

/// A clock that starts at a given instant and advances with tokio's time,
/// so `tokio::time::pause()` and `advance()` move it too.
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    origin: DateTime<Utc>,
    started: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `origin` now.
    pub fn starting_at(origin: DateTime<Utc>) -> TokioClock {
        TokioClock {
            origin,
            started: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        crate::units::add_saturating(self.origin, self.started.elapsed())
    }
}

/// How long from `now` until `at` (zero if it has passed).
pub fn until(now: DateTime<Utc>, at: DateTime<Utc>) -> std::time::Duration {
    (at - now).to_std().unwrap_or_default()
}

/// A clock that only moves when told to (for tests that step the scheduler).
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock reading `now`.
    pub fn at(now: DateTime<Utc>) -> ManualClock {
        ManualClock {
            now: std::sync::Mutex::new(now),
        }
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
