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

    /// The captured bytes with every secret value masked (also a secret
    /// cut short by the cap at the end), and a marker when some were dropped.
    pub fn contents(&self, secrets: &Secrets) -> Vec<u8> {
        let buffer = self.lock();
        let mut bytes = secrets.mask(&buffer.bytes);
        if buffer.dropped > 0 {
            secrets.mask_cut_tail(&mut bytes);
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

    /// The log so far of a run still going, masked as [`LogSink::contents`]
    /// would, and a value cut short at the end masked too (the rest of it
    /// may be on its way).
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

/// The secret values one run was granted, to mask wherever the run's words
/// are kept (log, output, error message).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: Vec<(String, Vec<u8>)>,
}

/// Shortest cut-off tail of a secret that is masked at a truncation point.
const MIN_MASKED_TAIL: usize = 3;

impl Secrets {
    /// Masks the values of these (name, value) pairs; empty values are skipped.
    pub fn new<'a>(granted: impl IntoIterator<Item = (&'a String, &'a String)>) -> Secrets {
        let mut values: Vec<(String, Vec<u8>)> = granted
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
            .collect();
        // Longest first, so a secret containing another is masked whole.
        values.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Secrets { values }
    }

    /// `bytes` with each occurrence of a value replaced by `[secret:NAME]`.
    pub fn mask(&self, bytes: &[u8]) -> Vec<u8> {
        let mut masked = bytes.to_vec();
        for (name, value) in &self.values {
            if masked.len() < value.len() {
                continue;
            }
            let marker = format!("[secret:{name}]").into_bytes();
            let mut out = Vec::with_capacity(masked.len());
            let mut at = 0;
            while at < masked.len() {
                if masked[at..].starts_with(value) {
                    out.extend_from_slice(&marker);
                    at += value.len();
                } else {
                    out.push(masked[at]);
                    at += 1;
                }
            }
            masked = out;
        }
        masked
    }

    /// Masks a value's beginning left at the end of `bytes` by a cut.
    pub fn mask_cut_tail(&self, bytes: &mut Vec<u8>) {
        for (name, value) in &self.values {
            let longest = value.len().saturating_sub(1).min(bytes.len());
            let cut = (MIN_MASKED_TAIL.min(value.len())..=longest)
                .rev()
                .find(|length| bytes.ends_with(&value[..*length]));
            if let Some(length) = cut {
                bytes.truncate(bytes.len() - length);
                bytes.extend_from_slice(format!("[secret:{name}]").as_bytes());
                return;
            }
        }
    }

    /// A message with the values masked.
    pub fn mask_text(&self, text: &str) -> String {
        String::from_utf8_lossy(&self.mask(text.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests {
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

    fn granted(pairs: &[(&str, &str)]) -> Secrets {
        let owned: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        Secrets::new(owned.iter().map(|(name, value)| (name, value)))
    }

    #[test]
    fn secret_values_are_masked_wherever_they_appear() {
        let secrets = granted(&[("db", "hunter2"), ("api", "tok-hunter2-x"), ("empty", "")]);
        assert_eq!(
            secrets.mask_text("a hunter2 b tok-hunter2-x chunter2hunter2"),
            "a [secret:db] b [secret:api] c[secret:db][secret:db]"
        );
        assert_eq!(secrets.mask_text("nothing here"), "nothing here");
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
