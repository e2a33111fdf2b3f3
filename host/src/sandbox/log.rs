//! The run log: plugin `log` calls and the guest's stdout/stderr, captured
//! into one capped buffer. Past the cap bytes are dropped (the guest is not
//! told, so a chatty plugin keeps running until its deadline) and a marker
//! records the truncation. Secret values are masked on the way out
//! ([`super::mask`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

pub use super::mask::Secrets;
use super::mask::{self, MaskingTimedOut};

/// The capped log of one run, shared by the host imports and WASI streams.
#[derive(Clone, Debug)]
pub struct LogSink {
    inner: Arc<Mutex<LogBuffer>>,
}

#[derive(Debug)]
struct LogBuffer {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl LogSink {
    /// An empty log holding at most `cap` bytes.
    pub fn new(cap: u64) -> LogSink {
        LogSink {
            inner: Arc::new(Mutex::new(LogBuffer {
                bytes: Vec::new(),
                cap: usize::try_from(cap).unwrap_or(usize::MAX),
                dropped: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LogBuffer> {
        // A panic while holding this lock can only come from an allocation
        // failure; the buffer is still a valid byte vector, so keep going.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends bytes, keeping what fits under the cap.
    pub fn append(&self, bytes: &[u8]) {
        let mut buffer = self.lock();
        let room = buffer.cap.saturating_sub(buffer.bytes.len());
        let kept = bytes.len().min(room);
        buffer.bytes.extend_from_slice(&bytes[..kept]);
        buffer.dropped += (bytes.len() - kept) as u64;
    }

    /// Appends one line from a `log` call.
    pub fn line(&self, level: &str, message: &str) {
        let stamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ");
        self.append(format!("{stamp} {level:<5} {message}\n").as_bytes());
    }

    /// The captured bytes with every secret value masked (also a secret
    /// cut short by the cap at the end), and a marker when some were dropped.
    pub fn contents(&self, secrets: &Secrets) -> Vec<u8> {
        self.contents_until(secrets, None)
            .unwrap_or_else(|_| mask::WITHHELD.to_vec())
    }

    /// As [`LogSink::contents`], giving up once `deadline` has passed.
    /// Masking is linear in the log but may take a while for a big one:
    /// call it off the async workers.
    pub fn contents_until(&self, secrets: &Secrets, deadline: Option<Instant>) -> Result<Vec<u8>, MaskingTimedOut> {
        // Copied out so a guest still writing is not held up by the masking.
        let (raw, cap, dropped) = {
            let buffer = self.lock();
            (buffer.bytes.clone(), buffer.cap, buffer.dropped)
        };
        let mut bytes = secrets.mask_until(&raw, deadline)?;
        if dropped > 0 {
            secrets.mask_cut_tail(&mut bytes);
            if bytes.last().is_some_and(|byte| *byte != b'\n') {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(
                format!("[sandcron: log truncated at {cap} bytes; {dropped} more bytes dropped]\n").as_bytes(),
            );
        }
        Ok(bytes)
    }

    /// The log so far of a run still going, masked as [`LogSink::contents`]
    /// would, and a value cut short at the end masked too (the rest of it
    /// may be on its way). Call it off the async workers.
    pub fn live_contents(&self, secrets: &Secrets) -> Vec<u8> {
        let mut bytes = self.contents(secrets);
        if self.lock().dropped == 0 {
            secrets.mask_cut_tail(&mut bytes);
        }
        bytes
    }

    /// A WASI stdout/stderr stream writing into this log.
    pub fn stream(&self) -> GuestStream {
        GuestStream { sink: self.clone() }
    }
}

/// stdout or stderr of the guest; both go to the run log as they come.
#[derive(Clone, Debug)]
pub struct GuestStream {
    sink: LogSink,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStream {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.sink.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.sink.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::mask::tests::granted;
    use super::*;

    #[test]
    fn log_keeps_the_first_bytes_and_marks_truncation() {
        let sink = LogSink::new(10);
        sink.append(b"0123456789abcdef");
        let contents = String::from_utf8(sink.contents(&Secrets::default())).unwrap();
        assert!(contents.starts_with("0123456789\n[sandcron: log truncated at 10 bytes; 6 more bytes dropped]"));
        let small = LogSink::new(100);
        small.append(b"hi\n");
        assert_eq!(small.contents(&Secrets::default()), b"hi\n");
    }

    #[test]
    fn a_secret_cut_by_the_log_cap_is_masked_too() {
        let sink = LogSink::new(9);
        sink.append(b"pw: hunter2 and more");
        let secrets = granted(&[("db", "hunter2")]);
        let contents = String::from_utf8(sink.contents(&secrets)).unwrap();
        assert!(contents.starts_with("pw: [secret:db]\n"), "{contents}");
        assert!(!contents.contains("hunt"), "{contents}");
        // Split across two writes, the whole value is still caught.
        let split = LogSink::new(1 << 10);
        split.append(b"x hun");
        split.append(b"ter2 y");
        assert_eq!(split.contents(&secrets), b"x [secret:db] y");
    }
}
