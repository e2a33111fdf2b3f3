//! The HTTP server under the API: accepts connections up to a cap, closes
//! the ones slow to send a request or idle too long (see `connection`),
//! and on shutdown stops accepting and lets the answers in flight end.
//! At the cap, the connection that has waited longest for a request is
//! closed to make room, so a client holding many half-sent requests cannot
//! keep others out; when every connection is busy the newcomer is refused
//! with 503.

mod connection;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::api::ApiError;
use crate::config::HttpLimits;
use crate::metrics::Metrics;

pub use connection::Closed;
use connection::{ApiService, Clock, Watched};

/// File descriptors kept for everything but API connections: the
/// database's files, plugin artifacts, outbound HTTP and SMTP, the listener.
pub const RESERVED_FILES: u64 = 256;

/// How long a newcomer waits for the connection evicted for it to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// The first and the longest pause after a failed accept (out of file
/// descriptors, say): the loop must not spin while nothing can be accepted.
const FIRST_ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const LONGEST_ACCEPT_PAUSE: Duration = Duration::from_secs(1);

/// The least time between two warnings of one kind, so a flood does not
/// flood the log too.
const WARNING_SPACING: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` resolves, then waits for the
/// open connections to finish their answers.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    limits: HttpLimits,
    metrics: Arc<Metrics>,
    stop: impl Future<Output = ()>,
) {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The connection clocks enforce the header and idle timeouts; hyper's
    // own header timer (it runs from when a connection starts waiting for
    // a head, idle time included) is a backstop past both.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout + limits.idle_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let open = Arc::new(Open::default());
    let graceful = GracefulShutdown::new();
    let refusal = ApiError::too_many_connections(limits.max_connections).to_http1_bytes();
    let mut warnings = Warnings::default();
    let mut pause = FIRST_ACCEPT_PAUSE;
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, remote) = match accepted {
            Ok(accepted) => {
                pause = FIRST_ACCEPT_PAUSE;
                accepted
            }
            Err(error) if is_connection_error(&error) => continue,
            Err(error) => {
                if warnings.accept.due() {
                    tracing::warn!(%error, "cannot accept HTTP connections; pausing {pause:?} between tries");
                }
                tokio::select! {
                    () = &mut stop => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_ACCEPT_PAUSE);
                continue;
            }
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => Some(slot),
            Err(_) => {
                let slot = make_room(&slots, &open, &metrics).await;
                if warnings.full.due() {
                    let what = if slot.is_some() {
                        "closing the connections that waited longest for a request"
                    } else {
                        "refusing newcomers: every connection is busy with a request"
                    };
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "HTTP connections at the cap; {what}"
                    );
                }
                slot
            }
        };
        let Some(slot) = slot else {
            // Best effort: the answer fits an empty socket buffer; a client
            // that cannot take it at once gets the close alone.
            let _ = stream.try_write(&refusal);
            metrics.http_connection_closed("refused");
            continue;
        };
        let task = Connection {
            slot,
            clock: Arc::new(Clock::new(limits.header_timeout, limits.idle_timeout)),
            open: open.clone(),
            metrics: metrics.clone(),
        };
        let served = task.serve(&builder, &graceful, stream, remote, router.clone());
        tokio::spawn(served);
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Closes the connection waiting longest for a request and takes its
/// slot; None when every connection is busy.
async fn make_room(slots: &Arc<Semaphore>, open: &Open, metrics: &Metrics) -> Option<OwnedSemaphorePermit> {
    if !open.evict_longest_waiting() {
        return None;
    }
    metrics.http_connection_closed(Closed::Evicted.as_str());
    tokio::time::timeout(EVICTION_WAIT, slots.clone().acquire_owned())
        .await
        .ok()?
        .ok()
}

/// Errors of one connection that never reached the server, not of the
/// listener: accepting goes on at once.
fn is_connection_error(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection: its slot under the cap, its clock, and its
/// place among the open ones.
struct Connection {
    slot: OwnedSemaphorePermit,
    clock: Arc<Clock>,
    open: Arc<Open>,
    metrics: Arc<Metrics>,
}

impl Connection {
    /// The task serving the connection until it ends or its clock runs out.
    fn serve(
        self,
        builder: &hyper::server::conn::http1::Builder,
        graceful: &GracefulShutdown,
        stream: TcpStream,
        remote: SocketAddr,
        router: axum::Router,
    ) -> impl Future<Output = ()> + Send + 'static {
        // Answers are small and often the whole of a request's round trip.
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(Watched::new(stream, self.clock.clone()));
        let service = ApiService::new(router, remote, self.clock.clone());
        let served = graceful.watch(builder.serve_connection(io, service));
        let registered = self.open.add(self.clock.clone());
        self.metrics.http_connections.inc();
        async move {
            tokio::select! {
                served = served => {
                    if let Err(error) = served {
                        tracing::debug!(%error, %remote, "HTTP connection ended");
                    }
                }
                reason = self.clock.expired() => {
                    if reason != Closed::Evicted {
                        self.metrics.http_connection_closed(reason.as_str());
                    }
                }
            }
            self.metrics.http_connections.dec();
            drop(registered);
            drop(self.slot);
        }
    }
}

/// The open connections' clocks, to find the one to evict.
#[derive(Default)]
struct Open {
    clocks: Mutex<HashMap<u64, Arc<Clock>>>,
    next_id: AtomicU64,
}

impl Open {
    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Arc<Clock>>> {
        self.clocks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a connection's clock until the returned mark is dropped.
    fn add(self: &Arc<Self>, clock: Arc<Clock>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, clock);
        Registered { open: self.clone(), id }
    }

    /// Marks the connection that has waited longest for a request to be
    /// closed; false when none is waiting.
    fn evict_longest_waiting(&self) -> bool {
        let clocks = self.lock();
        let longest = clocks
            .values()
            .filter_map(|clock| clock.waiting_since().map(|since| (since, clock)))
            .min_by_key(|(since, _)| *since);
        longest.is_some_and(|(_, clock)| clock.evict())
    }
}

/// A connection's place among the open ones.
struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().remove(&self.id);
    }
}

/// When each kind of warning was last logged.
#[derive(Default)]
struct Warnings {
    accept: Spaced,
    full: Spaced,
}

/// A warning logged at most once per [`WARNING_SPACING`].
#[derive(Default)]
struct Spaced {
    last: Option<Instant>,
}

impl Spaced {
    /// True (and remembered) when the warning may be logged now.
    fn due(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < WARNING_SPACING)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// Raises the open-files soft limit to the hard one (each connection holds
/// a file descriptor) and returns the connection cap that fits under it
/// with [`RESERVED_FILES`] to spare: `wanted`, or less with a warning.
pub fn fit_connection_cap(wanted: usize) -> usize {
    let Some(limit) = raise_open_files_limit() else {
        return wanted;
    };
    let room = limit.saturating_sub(RESERVED_FILES).max(limit / 2).max(1);
    if u64::try_from(wanted).unwrap_or(u64::MAX) <= room {
        return wanted;
    }
    let cap = usize::try_from(room).unwrap_or(usize::MAX);
    tracing::warn!(
        "http_max_connections {wanted} does not fit under the open-files limit {limit} with {RESERVED_FILES} kept for the database, plugins and outbound requests; holding at most {cap} connections (raise the hard limit, `ulimit -Hn`, to hold more)"
    );
    cap
}

/// The open-files soft limit after raising it as far as the hard one.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    let mut limits = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given, which we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limits) } != 0 {
        return None;
    }
    if limits.rlim_cur < limits.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limits.rlim_max,
            rlim_max: limits.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given; raising the soft
        // limit up to the hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = limits.rlim_cur,
                to = limits.rlim_max,
                "raised the open-files limit"
            );
            limits.rlim_cur = limits.rlim_max;
        }
    }
    Some(limits.rlim_cur)
}

#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spaced_warnings_are_due_once_per_spacing() {
        let mut spaced = Spaced::default();
        assert!(spaced.due());
        assert!(!spaced.due());
        spaced.last = Some(Instant::now() - WARNING_SPACING);
        assert!(spaced.due());
    }

    #[test]
    fn the_connection_cap_stays_under_the_open_files_limit() {
        let limit = raise_open_files_limit().expect("a unix machine has an open-files limit");
        assert_eq!(fit_connection_cap(1), 1);
        let room = limit.saturating_sub(RESERVED_FILES).max(limit / 2).max(1);
        let fitted = fit_connection_cap(usize::MAX);
        assert_eq!(u64::try_from(fitted).unwrap(), room);
        assert!(u64::try_from(fitted).unwrap() < limit || limit <= 1);
    }
}
