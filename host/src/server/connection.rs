//! One HTTP connection's clock: whether it is waiting for a request (and
//! since when) or busy with one, the deadline that follows, and the socket
//! and service wrappers that tell it when bytes arrive and requests start
//! and end.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why the server closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// It did not send a whole request head in time.
    HeaderTimeout,
    /// It kept a connection open without a request for too long.
    IdleTimeout,
    /// It was the one waiting longest for a request when the server was at
    /// its connection cap and another client came.
    Evicted,
}

impl Closed {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request in hand: since the connection opened or its last answer
    /// ended; `head_started` is when the next request's first byte came on
    /// a kept-alive connection.
    Waiting {
        since: Instant,
        kept_alive: bool,
        head_started: Option<Instant>,
    },
    /// Requests being answered (HTTP/1.1 answers one at a time; a count
    /// keeps the bookkeeping right whatever the order of the ends).
    Busy { requests: usize },
    /// Marked to be closed to make room.
    Evicted,
}

/// A connection's phase and the deadline it implies.
pub struct Clock {
    phase: Mutex<Phase>,
    changed: Notify,
    header_timeout: Duration,
    idle_timeout: Duration,
}

impl Clock {
    /// The clock of a connection opened now.
    pub fn new(header_timeout: Duration, idle_timeout: Duration) -> Clock {
        Clock {
            phase: Mutex::new(Phase::Waiting {
                since: Instant::now(),
                kept_alive: false,
                head_started: None,
            }),
            changed: Notify::new(),
            header_timeout,
            idle_timeout,
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes arrived: on an idle kept-alive connection a request head has
    /// begun, and the header timeout now bounds it instead of the idle one.
    fn bytes_read(&self) {
        let mut phase = self.phase();
        if let Phase::Waiting {
            kept_alive: true,
            head_started: head_started @ None,
            ..
        } = &mut *phase
        {
            *head_started = Some(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    /// A request's head is in: no deadline of this clock applies until its
    /// answer ends (the body has its own).
    fn request_started(self: &Arc<Self>) -> InFlight {
        let mut phase = self.phase();
        match &mut *phase {
            Phase::Waiting { .. } => *phase = Phase::Busy { requests: 1 },
            Phase::Busy { requests } => *requests += 1,
            Phase::Evicted => {}
        }
        InFlight { clock: self.clone() }
    }

    fn request_ended(&self) {
        let mut phase = self.phase();
        if let Phase::Busy { requests } = &mut *phase {
            *requests = requests.saturating_sub(1);
            if *requests == 0 {
                *phase = Phase::Waiting {
                    since: Instant::now(),
                    kept_alive: true,
                    head_started: None,
                };
                drop(phase);
                self.changed.notify_one();
            }
        }
    }

    /// Since when the connection has waited for a request, if it is.
    pub fn waiting_since(&self) -> Option<Instant> {
        match *self.phase() {
            Phase::Waiting { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Marks a waiting connection to be closed; false if it is busy.
    pub fn evict(&self) -> bool {
        let mut phase = self.phase();
        if !matches!(*phase, Phase::Waiting { .. }) {
            return false;
        }
        *phase = Phase::Evicted;
        drop(phase);
        self.changed.notify_one();
        true
    }

    /// When the connection is due to be closed, and why; None while busy.
    fn deadline(&self) -> Option<(Instant, Closed)> {
        match *self.phase() {
            Phase::Waiting {
                since,
                kept_alive: false,
                ..
            } => Some((since + self.header_timeout, Closed::HeaderTimeout)),
            Phase::Waiting {
                head_started: Some(started),
                ..
            } => Some((started + self.header_timeout, Closed::HeaderTimeout)),
            Phase::Waiting { since, .. } => Some((since + self.idle_timeout, Closed::IdleTimeout)),
            Phase::Busy { .. } => None,
            Phase::Evicted => Some((Instant::now(), Closed::Evicted)),
        }
    }

    /// Resolves when the connection is due to be closed.
    pub async fn expired(&self) -> Closed {
        loop {
            // A change between reading the deadline and waiting leaves a
            // permit in `changed`, so the wait below returns at once.
            match self.deadline() {
                None => self.changed.notified().await,
                Some((at, reason)) if at <= Instant::now() => return reason,
                Some((at, _)) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = self.changed.notified() => {}
                    }
                }
            }
        }
    }
}

/// A request being answered; its drop (when the answer's body has been
/// sent, or the request was abandoned) lets the connection wait again.
struct InFlight {
    clock: Arc<Clock>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.clock.request_ended();
    }
}

/// The socket, telling the clock when bytes arrive.
pub struct Watched {
    stream: TcpStream,
    clock: Arc<Clock>,
}

impl Watched {
    /// Wraps an accepted socket.
    pub fn new(stream: TcpStream, clock: Arc<Clock>) -> Watched {
        Watched { stream, clock }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buffer.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(context, buffer);
        if matches!(polled, Poll::Ready(Ok(()))) && buffer.filled().len() > before {
            this.clock.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, context: &mut Context<'_>, bytes: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(context, bytes)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(context)
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(context)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffers: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(context, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The API's router as one connection's hyper service: each request
/// carries the client's address (axum's `ConnectInfo`) and holds the
/// connection busy until its answer's body ends.
#[derive(Clone)]
pub struct ApiService {
    router: axum::Router,
    remote: SocketAddr,
    clock: Arc<Clock>,
}

impl ApiService {
    /// The service for a connection from `remote`.
    pub fn new(router: axum::Router, remote: SocketAddr, clock: Arc<Clock>) -> ApiService {
        ApiService { router, remote, clock }
    }
}

impl hyper::service::Service<hyper::Request<Incoming>> for ApiService {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: hyper::Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(ConnectInfo(self.remote));
        let in_flight = self.clock.request_started();
        // A router is always ready (axum's Router::poll_ready returns Ready).
        let answer = tower::Service::call(&mut self.router.clone(), request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    // The body owns the request's mark until it is dropped.
                    let _ = &in_flight;
                    frame
                }))
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: Duration = Duration::from_secs(10);
    const IDLE: Duration = Duration::from_secs(60);

    fn clock() -> Arc<Clock> {
        Arc::new(Clock::new(HEADER, IDLE))
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_has_the_header_timeout_to_send_a_request() {
        let clock = clock();
        let opened = Instant::now();
        assert_eq!(clock.expired().await, Closed::HeaderTimeout);
        assert_eq!(Instant::now() - opened, HEADER);
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_alive_connection_gets_the_idle_timeout_then_the_header_timeout_from_its_first_byte() {
        let clock = clock();
        drop(clock.request_started());
        let idle_from = Instant::now();
        tokio::time::advance(Duration::from_secs(55)).await;
        clock.bytes_read();
        let head_from = Instant::now();
        assert_eq!(clock.expired().await, Closed::HeaderTimeout);
        assert_eq!(
            Instant::now() - head_from,
            HEADER,
            "not the idle deadline at {:?}",
            idle_from + IDLE
        );
        let quiet = Arc::new(Clock::new(HEADER, IDLE));
        drop(quiet.request_started());
        let from = Instant::now();
        assert_eq!(quiet.expired().await, Closed::IdleTimeout);
        assert_eq!(Instant::now() - from, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_connection_has_no_deadline_until_its_answer_ends() {
        let clock = clock();
        let in_flight = clock.request_started();
        assert_eq!(clock.waiting_since(), None);
        assert!(!clock.evict(), "a busy connection is not evicted");
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move { clock.expired().await }
        });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!waiting.is_finished());
        drop(in_flight);
        let ended = Instant::now();
        assert_eq!(waiting.await.unwrap(), Closed::IdleTimeout);
        assert_eq!(Instant::now() - ended, IDLE);
    }

    #[tokio::test(start_paused = true)]
    async fn an_evicted_connection_closes_at_once() {
        let clock = clock();
        let waiting = tokio::spawn({
            let clock = clock.clone();
            async move { clock.expired().await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(clock.waiting_since().is_some());
        assert!(clock.evict());
        let evicted = Instant::now();
        assert_eq!(waiting.await.unwrap(), Closed::Evicted);
        assert_eq!(Instant::now(), evicted);
    }
}
