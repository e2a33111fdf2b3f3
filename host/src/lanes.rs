//! Fixed sets of named threads for the blocking calls that write the
//! store: the scheduler's fire passes, the flushes, the retention sweeps
//! and plugins' kv calls. It owns those threads and nothing else: what a
//! call does is its caller's.
//!
//! Why not tokio's blocking pool: that pool grows with bursts (up to 512
//! threads) and, as it wakes its idle threads in turn, a busy daemon never
//! lets the extra ones time out. Every thread that writes to sled keeps
//! its own allocator pages for sled's leaves and its own bag of superseded
//! leaves awaiting sled's epoch reclamation, so the daemon's memory rose in
//! steps each time the pool grew and never came down (a 30-minute soak of
//! 200 runs a second: +9 MiB at minute 6, +8 at minute 17, as the pool
//! went from 27 to 34 threads). Each lane here has a fixed number of
//! threads, started on its first call, so the threads that touch sled are
//! the same few for the daemon's life; lanes are apart so a tenant's kv
//! calls never queue in front of the scheduler's fires or a flush.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use tokio::sync::oneshot;

/// The scheduler's fire passes (one at a time: the scheduler waits for each).
pub static FIRES: Lane = Lane::new("sandcron-fires", 1);

/// Group-commit flushes (one at a time per store; two so one store's long
/// flush does not hold up another's, as in tests with several daemons).
pub static FLUSHES: Lane = Lane::new("sandcron-flush", 2);

/// Retention sweeps and quota trims (one at a time).
pub static SWEEPS: Lane = Lane::new("sandcron-sweep", 1);

/// Plugins' kv calls: each takes microseconds, and a run waits for its own.
pub static KV: Lane = Lane::new("sandcron-kv", 2);

/// A call's closure, as a lane's threads take it.
type Call = Box<dyn FnOnce() + Send>;

/// A fixed number of threads taking calls from one queue in order.
pub struct Lane {
    name: &'static str,
    threads: usize,
    queue: OnceLock<Option<mpsc::Sender<Call>>>,
}

/// A lane could not run a call: it has no thread (none could be started)
/// or the call panicked.
#[derive(Debug, thiserror::Error)]
#[error("the {lane} threads could not run the call ({reason})")]
pub struct LaneError {
    /// The lane's name.
    pub lane: &'static str,
    /// What went wrong.
    pub reason: &'static str,
}

impl Lane {
    /// A lane of `threads` threads named after `name`, started on first use.
    pub const fn new(name: &'static str, threads: usize) -> Lane {
        Lane {
            name,
            threads,
            queue: OnceLock::new(),
        }
    }

    /// Runs `call` on one of the lane's threads and waits for its result.
    pub async fn run<T: Send + 'static>(&self, call: impl FnOnce() -> T + Send + 'static) -> Result<T, LaneError> {
        let (sender, receiver) = oneshot::channel();
        self.spawn(move || {
            let _ = sender.send(call());
        })?;
        receiver.await.map_err(|_| self.error("the call panicked"))
    }

    /// Queues `call` for one of the lane's threads without waiting for it.
    pub fn spawn(&self, call: impl FnOnce() + Send + 'static) -> Result<(), LaneError> {
        let queue = self.queue.get_or_init(|| self.start());
        let stopped = || self.error("no thread could be started");
        let queue = queue.as_ref().ok_or_else(stopped)?;
        queue.send(Box::new(call)).map_err(|_| stopped())
    }

    fn error(&self, reason: &'static str) -> LaneError {
        LaneError {
            lane: self.name,
            reason,
        }
    }

    /// Starts the threads; `None` if not one could be started.
    fn start(&self) -> Option<mpsc::Sender<Call>> {
        let (sender, receiver) = mpsc::channel::<Call>();
        let receiver = Arc::new(Mutex::new(receiver));
        let mut started = 0;
        for index in 0..self.threads {
            let receiver = receiver.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{}-{index}", self.name))
                .spawn(move || take_calls(&receiver));
            match spawned {
                Ok(_) => started += 1,
                Err(error) => tracing::error!(lane = self.name, %error, "could not start a thread"),
            }
        }
        (started > 0).then_some(sender)
    }
}

/// A lane thread's life: the next call, in queue order, until the lane is
/// dropped. A call that panics ends alone (its caller sees the panic as an
/// error); the thread goes on with the next.
fn take_calls(receiver: &Mutex<mpsc::Receiver<Call>>) {
    loop {
        let call = {
            let receiver = receiver.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            receiver.recv()
        };
        let Ok(call) = call else { return };
        let _ = std::panic::catch_unwind(AssertUnwindSafe(call));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[tokio::test]
    async fn calls_run_on_the_lanes_own_threads_whatever_their_number() {
        static LANE: Lane = Lane::new("test-lane", 2);
        let mut names = HashSet::new();
        for _ in 0..200 {
            let name = LANE
                .run(|| std::thread::current().name().map(str::to_string))
                .await
                .unwrap();
            names.insert(name.unwrap());
        }
        let calls: Vec<_> = (0..50)
            .map(|_| LANE.run(|| std::thread::current().name().map(str::to_string)))
            .collect();
        for name in futures_util::future::join_all(calls).await {
            names.insert(name.unwrap().unwrap());
        }
        assert!(names.len() <= 2, "{names:?}");
        assert!(names.iter().all(|name| name.starts_with("test-lane-")), "{names:?}");
    }

    #[tokio::test]
    async fn a_call_that_panics_fails_alone_and_the_lane_goes_on() {
        static LANE: Lane = Lane::new("test-panics", 1);
        let error = LANE.run(|| -> u32 { panic!("boom") }).await.unwrap_err();
        assert_eq!(error.reason, "the call panicked");
        assert_eq!(LANE.run(|| 7).await.unwrap(), 7);
    }
}
