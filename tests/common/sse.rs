//! Server-sent events read off `/v1/events`, for the tests of streams.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use super::TestDaemon;

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its id.
    pub id: Option<u64>,
    /// Its kind.
    pub event: String,
    /// Its data.
    pub data: Value,
}

/// Reads server-sent events off a streaming answer.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Opens `/v1/events{query}` on `daemon` as `token`, resuming after
    /// `last_event_id`.
    pub async fn open(daemon: &TestDaemon, token: &str, query: &str, last_event_id: Option<u64>) -> Events {
        let mut request = reqwest::Client::new()
            .get(format!("{}/v1/events{query}", daemon.url))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event within `wait`, or None.
    pub async fn next(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                for line in block.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        frame.id = id.parse().ok();
                    } else if let Some(event) = line.strip_prefix("event: ") {
                        frame.event = event.to_string();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        frame.data = serde_json::from_str(data).unwrap();
                    }
                }
                if frame.event == "message" && frame.data.is_null() {
                    continue; // a keep-alive comment
                }
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events until `count` have come (or `wait` passed for one).
    pub async fn take(&mut self, count: usize, wait: Duration) -> Vec<Frame> {
        let mut frames = Vec::new();
        while frames.len() < count {
            match self.next(wait).await {
                Some(frame) => frames.push(frame),
                None => break,
            }
        }
        frames
    }
}

/// The kinds of `frames`.
pub fn kinds(frames: &[Frame]) -> Vec<&str> {
    frames.iter().map(|frame| frame.event.as_str()).collect()
}
