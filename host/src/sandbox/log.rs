//! The run log: plugin `log` calls and the guest's stdout/stderr, captured
//! into one capped buffer. Past the cap bytes are dropped (the guest is not
//! told, so a chatty plugin keeps running until its deadline) and a marker
//! records the truncation.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

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

    /// The captured bytes, with a marker when some were dropped.
    pub fn contents(&self) -> Vec<u8> {
        let buffer = self.lock();
        let mut bytes = buffer.bytes.clone();
        if buffer.dropped > 0 {
            if bytes.last().is_some_and(|byte| *byte != b'\n') {
                bytes.push(b'\n');
            }
            bytes.extend_from_slice(
                format!(
                    "[sandcron: log truncated at {} bytes; {} more bytes dropped]\n",
                    buffer.cap, buffer.dropped
                )
                .as_bytes(),
            );
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
    use super::*;

    #[test]
    fn log_keeps_the_first_bytes_and_marks_truncation() {
        let sink = LogSink::new(10);
        sink.append(b"0123456789abcdef");
        let contents = String::from_utf8(sink.contents()).unwrap();
        assert!(contents.starts_with("0123456789\n[sandcron: log truncated at 10 bytes; 6 more bytes dropped]"));
        let small = LogSink::new(100);
        small.append(b"hi\n");
        assert_eq!(small.contents(), b"hi\n");
    }
}
