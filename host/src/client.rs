//! A small typed-enough client of the HTTP API for the CLI (and anyone who
//! wants one). Finds the daemon through `--url`/`SANDCRON_URL` and the token
//! through `--token`/`SANDCRON_TOKEN` or `<data-dir>/admin-token`.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A failed call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon could not be reached.
    #[error(
        "cannot reach the sandcron daemon at {url}: {source} (is `sandcron serve` running? set --url or SANDCRON_URL)"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// Why.
        source: reqwest::Error,
    },
    /// The daemon answered with an error.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

impl ClientError {
    /// Whether it is the API's answer with this error code
    /// (`workflow_not_found`).
    pub fn is_code(&self, code: &str) -> bool {
        matches!(self, ClientError::Api { code: found, .. } if found == code)
    }
}

/// An API client.
#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// What a call returned.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Raw body.
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON.
    pub fn json(&self) -> Result<Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|error| ClientError::Protocol(format!("invalid JSON: {error}")))
    }
}

/// Reads the admin token written by a local daemon.
pub fn local_token(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(crate::config::ADMIN_TOKEN_FILE))
        .ok()
        .map(|text| text.trim().to_string())
        .filter(|token| !token.is_empty())
}

impl Client {
    /// A client of the daemon at `base` (e.g. `http://127.0.0.1:8085`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            http: reqwest::Client::new(),
        }
    }

    /// Sends a request; `body` is JSON or raw bytes.
    pub async fn call(&self, method: Method, path: &str, body: Body) -> Result<Answer, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Bytes(bytes) => request.header("content-type", "application/wasm").body(bytes),
            Body::Stream(body) => request.header("content-type", "application/wasm").body(body),
        };
        let response = request.send().await.map_err(|source| ClientError::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?
            .to_vec();
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        Err(api_error(status, &body))
    }

    /// GET returning JSON.
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, Body::None).await?.json()
    }

    /// POST of JSON returning JSON.
    pub async fn post(&self, path: &str, body: Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Body::Json(body)).await?.json()
    }

    /// Opens the server-sent event stream at `path`, resuming after
    /// `last_event_id`; the answer is read as it comes.
    pub async fn stream(&self, path: &str, last_event_id: Option<u64>) -> Result<reqwest::Response, ClientError> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await.map_err(|source| ClientError::Unreachable {
            url: self.base.clone(),
            source,
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }
}

/// Workflows (`/v1/workflows`) and their runs (`/v1/workflow-runs`), each
/// call answering the API's JSON.
impl Client {
    /// `POST /v1/workflows`: creates a workflow; refused (409) when its name
    /// is taken.
    pub async fn create_workflow(&self, spec: Value) -> Result<Value, ClientError> {
        self.post("/v1/workflows", spec).await
    }

    /// `PUT /v1/workflows/{name}`: creates or replaces the workflow `name`.
    pub async fn put_workflow(&self, name: &str, spec: Value) -> Result<Value, ClientError> {
        let path = format!("/v1/workflows/{}", encode(name));
        self.call(Method::PUT, &path, Body::Json(spec)).await?.json()
    }

    /// `PATCH /v1/workflows/{name}`: a JSON merge patch.
    pub async fn patch_workflow(&self, name: &str, patch: Value) -> Result<Value, ClientError> {
        let path = format!("/v1/workflows/{}", encode(name));
        self.call(Method::PATCH, &path, Body::Json(patch)).await?.json()
    }

    /// `GET /v1/workflows/{name}` (404 `workflow_not_found` when absent).
    pub async fn workflow(&self, name: &str) -> Result<Value, ClientError> {
        self.get(&format!("/v1/workflows/{}", encode(name))).await
    }

    /// `GET /v1/workflows`: `{"workflows": [...]}`, by name.
    pub async fn workflows(&self) -> Result<Value, ClientError> {
        self.get("/v1/workflows").await
    }

    /// `DELETE /v1/workflows/{name}`; its runs stay.
    pub async fn delete_workflow(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/workflows/{}", encode(name));
        self.call(Method::DELETE, &path, Body::None).await.map(drop)
    }

    /// `POST /v1/workflows/{name}/run`: a workflow run, finished when it
    /// ended within `wait` (`"30s"`), else as it is so far.
    pub async fn run_workflow(
        &self,
        name: &str,
        input: Option<Value>,
        wait: Option<&str>,
    ) -> Result<Value, ClientError> {
        let body = match input {
            Some(input) => serde_json::json!({ "input": input }),
            None => serde_json::json!({}),
        };
        let path = format!("/v1/workflows/{}/run{}", encode(name), wait_query(wait));
        self.post(&path, body).await
    }

    /// `GET /v1/workflow-runs`: `{"workflow_runs": [...], "next_cursor"}`,
    /// newest first, only `workflow`'s when given.
    pub async fn workflow_runs(
        &self,
        workflow: Option<&str>,
        limit: Option<usize>,
        cursor: Option<&str>,
    ) -> Result<Value, ClientError> {
        let mut query = Vec::new();
        if let Some(workflow) = workflow {
            query.push(format!("workflow={}", encode(workflow)));
        }
        if let Some(limit) = limit {
            query.push(format!("limit={limit}"));
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={}", encode(cursor)));
        }
        self.get(&format!("/v1/workflow-runs?{}", query.join("&"))).await
    }

    /// `GET /v1/workflow-runs/{id}`, after waiting up to `wait` for it to end.
    pub async fn workflow_run(&self, id: &str, wait: Option<&str>) -> Result<Value, ClientError> {
        self.get(&format!("/v1/workflow-runs/{}{}", encode(id), wait_query(wait)))
            .await
    }

    /// `POST /v1/workflow-runs/{id}/cancel`: its running steps are
    /// cancelled and nothing new starts (409 when it is over).
    pub async fn cancel_workflow_run(&self, id: &str) -> Result<Value, ClientError> {
        let path = format!("/v1/workflow-runs/{}/cancel", encode(id));
        self.call(Method::POST, &path, Body::None).await?.json()
    }

    /// `POST /v1/workflow-runs/{id}/retry`: a failed or cancelled run again
    /// from its failed, cancelled and skipped steps, waiting up to `wait`.
    pub async fn retry_workflow_run(&self, id: &str, wait: Option<&str>) -> Result<Value, ClientError> {
        let path = format!("/v1/workflow-runs/{}/retry{}", encode(id), wait_query(wait));
        self.call(Method::POST, &path, Body::None).await?.json()
    }
}

/// `?wait=30s`, or nothing.
fn wait_query(wait: Option<&str>) -> String {
    wait.map(|wait| format!("?wait={}", encode(wait))).unwrap_or_default()
}

/// The error an answer with a failure status carries.
fn api_error(status: reqwest::StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|value| value.get("error"));
    ClientError::Api {
        status: status.as_u16(),
        code: error
            .and_then(|error| error.get("code"))
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string(),
        message: error
            .and_then(|error| error.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
    }
}

/// A request body.
pub enum Body {
    /// No body.
    None,
    /// JSON.
    Json(Value),
    /// Raw bytes (plugin uploads).
    Bytes(Vec<u8>),
    /// Raw bytes sent as they are read (a large upload with progress).
    Stream(reqwest::Body),
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
