//! Locks that outlive a panic: state behind a mutex stays usable when a
//! holder panicked (every holder leaves it consistent between statements),
//! so one failed run cannot wedge the daemon.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, taking the state over from a holder that panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
