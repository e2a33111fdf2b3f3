//! The one way errors leave the API: `{"error": {"code", "message"}}` with
//! a status chosen here and nowhere else. The body's type ([`ErrorBody`])
//! is what answers are made of and what the OpenAPI document shows, with
//! [`Refusals`], the answers any authenticated route may give. A 500 says
//! only that something failed inside, with a reference to its line in the
//! daemon's log: what failed (an internal path, a database message) is for
//! the operator, not the client.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::{IntoResponses, ToSchema};

use crate::auth::AuthError;
use crate::executor::ExecError;
use crate::jobs::JobsError;
use crate::model::policy::BackfillRefusal;
use crate::model::validate::ValidationError;
use crate::plugin::PluginError;
use crate::sandbox::ComponentError;
use crate::scheduler::backfill::BackfillError;
use crate::store::StoreError;
use crate::store::health::Fault;
use crate::timing::ScheduleError;
use crate::workflows::WorkflowError;

/// Every error answer (a `/healthz` refusal carries its report beside
/// `error`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code (`invalid_field`, `job_not_found`, ...).
    pub code: String,
    /// Says which field or object and what is wrong.
    pub message: String,
}

/// Answers any authenticated route may give.
#[derive(IntoResponses)]
#[allow(dead_code)] // Only described: `ApiError` makes these answers.
pub enum Refusals {
    /// A malformed request: the message names the field.
    #[response(status = 400)]
    BadRequest(ErrorBody),
    /// No token, or one not accepted.
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// The tenant is over its request rate (`rate_limited`, see
    /// `Retry-After`), or, without a valid token, the client's address is
    /// over its budget; or, where a run is queued, its queue is at its
    /// `queued_runs` quota (`queue_full`).
    #[response(status = 429)]
    RateLimited(ErrorBody),
    /// `storage_unavailable`: the data volume failed with an I/O error;
    /// writes are refused until the daemon restarts into working storage.
    #[response(status = 503)]
    StorageUnavailable(ErrorBody),
    /// `insufficient_storage`: the data volume is full; writes are refused
    /// until there is room again and the daemon has restarted.
    #[response(status = 507)]
    InsufficientStorage(ErrorBody),
}

/// What a 500 tells the client; the detail goes to the log under the
/// reference the message ends with.
const INTERNAL_MESSAGE: &str = "internal error; see the daemon's log";

/// An API error: status, stable code, human message.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    close_connection: bool,
    retry_after: Option<u64>,
    /// Fields the body carries beside `error` (a health report's details).
    details: serde_json::Map<String, serde_json::Value>,
}

impl ApiError {
    /// Any error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            close_connection: false,
            retry_after: None,
            details: serde_json::Map::new(),
        }
    }

    /// 503 for `/healthz` while the storage fails, with the code a write
    /// gets meanwhile (`insufficient_storage` for a full volume,
    /// `storage_unavailable` for another I/O failure) and `details` (an
    /// object) beside the error: load balancers take the daemon out of
    /// rotation for writes, people read why.
    pub fn storage_unhealthy(fault: Fault, message: impl Into<String>, details: serde_json::Value) -> ApiError {
        let code = ApiError::from(fault.error(String::new())).code;
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message);
        if let serde_json::Value::Object(details) = details {
            error.details = details;
        }
        error
    }

    /// Asks the client to close the connection after this answer: the
    /// request body was not read to its end, so the connection cannot carry
    /// another request.
    pub fn closing_connection(mut self) -> ApiError {
        self.close_connection = true;
        self
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 429 `rate_limited`, with `Retry-After` in whole seconds.
    pub fn rate_limited(tenant: &str, retry_after: std::time::Duration) -> ApiError {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("tenant {tenant:?} is over its requests_per_second quota; retry in {seconds}s"),
        );
        error.retry_after = Some(seconds);
        error
    }

    /// 429 `rate_limited` for a request without a valid token whose client
    /// address has spent its budget, with `Retry-After`.
    pub fn unauthenticated_rate_limited(retry_after: std::time::Duration) -> ApiError {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests without a valid token from this address (unauthenticated_rate); retry in {seconds}s"
            ),
        );
        error.retry_after = Some(seconds);
        error
    }

    /// 408 `body_timeout`: the request's body did not arrive within
    /// `http_body_timeout`; the connection is closed after the answer.
    pub fn body_timeout(what: &str, timeout: std::time::Duration) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the {what} did not arrive within {} (http_body_timeout)",
                crate::units::format_duration(timeout)
            ),
        )
        .closing_connection()
    }

    /// 503 `too_many_connections`: the server holds its most connections
    /// and every one is busy with a request.
    pub fn too_many_connections(max: usize) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            format!("the server holds its most connections ({max}, http_max_connections), all busy; retry shortly"),
        )
        .closing_connection();
        error.retry_after = Some(1);
        error
    }

    /// The answer as the bytes of an HTTP/1.1 response, for a connection
    /// answered before any request is read from it.
    pub fn to_http1_bytes(&self) -> Vec<u8> {
        let body = self.body().to_string();
        let mut head = format!(
            "HTTP/1.1 {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            self.status,
            body.len()
        );
        if let Some(seconds) = self.retry_after {
            head.push_str(&format!("retry-after: {seconds}\r\n"));
        }
        if self.close_connection {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        [head.into_bytes(), body.into_bytes()].concat()
    }

    /// The body: [`ErrorBody`], and the details beside it.
    fn body(&self) -> serde_json::Value {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
            },
        };
        let mut body = serde_json::to_value(body).expect("strings always serialize");
        if let serde_json::Value::Object(fields) = &mut body {
            fields.extend(self.details.clone());
        }
        body
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

/// The codes of writes refused because the storage is failing: the failure
/// is logged once when it starts (see `store::health`), not per request.
const STORAGE_FAILING_CODES: [&str; 2] = ["insufficient_storage", "storage_unavailable"];

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if STORAGE_FAILING_CODES.contains(&self.code) {
            tracing::debug!(code = self.code, message = %self.message, "request refused: storage is failing");
        } else if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            // The detail may name paths, keys or database internals: it
            // goes to the log, the client gets the reference to find it by.
            let reference = crate::model::new_id();
            tracing::error!(code = self.code, %reference, detail = %self.message, "request failed");
            self.message = format!("{INTERNAL_MESSAGE} (reference {reference})");
        } else if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
        }
        if self.close_connection {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NameTaken { .. } => ApiError::new(StatusCode::CONFLICT, "name_taken", error.to_string()),
            StoreError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, "conflict", error.to_string()),
            StoreError::TenantExists { .. } => ApiError::new(StatusCode::CONFLICT, "tenant_exists", error.to_string()),
            StoreError::QuotaExceeded(_) => ApiError::new(StatusCode::FORBIDDEN, "quota_exceeded", error.to_string()),
            // The data volume is full (or its quota used up): 507, so a
            // client can tell it from a bug and retry once there is room.
            StoreError::NoSpace(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                error.to_string(),
            ),
            // Any other I/O failure of the data volume: temporary as far as
            // the client is concerned.
            StoreError::Unavailable(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                error.to_string(),
            ),
            // The cluster's database cannot be reached: temporary too.
            StoreError::Disconnected(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                error.to_string(),
            ),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", error.to_string()),
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> Self {
        ApiError::bad_request(error.code, error.to_string())
    }
}

impl From<ScheduleError> for ApiError {
    fn from(error: ScheduleError) -> Self {
        ApiError::bad_request(error.code(), error.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        if let AuthError::Store(message) = &error {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "storage_error", message.clone());
        }
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string())
    }
}

impl From<PluginError> for ApiError {
    fn from(error: PluginError) -> Self {
        let message = error.to_string();
        let (status, code) = match &error {
            PluginError::Empty => (StatusCode::BAD_REQUEST, "empty_body"),
            PluginError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "plugin_too_large"),
            PluginError::InvalidName(_) => (StatusCode::BAD_REQUEST, "invalid_name"),
            PluginError::Component(component) => (
                StatusCode::BAD_REQUEST,
                match component {
                    ComponentError::NotWasm => "not_wasm",
                    ComponentError::CoreModule => "not_a_component",
                    ComponentError::Invalid(_) => "invalid_component",
                    ComponentError::UnsatisfiedImport(_) => "unsupported_import",
                    ComponentError::WrongExports(_) => "wrong_world",
                },
            ),
            PluginError::NotFound { .. } => (StatusCode::NOT_FOUND, "plugin_not_found"),
            PluginError::VersionNotFound { .. } => (StatusCode::NOT_FOUND, "plugin_version_not_found"),
            PluginError::Builtin(_) => (StatusCode::FORBIDDEN, "builtin_plugin"),
            PluginError::InUse { .. } => (StatusCode::CONFLICT, "plugin_in_use"),
            PluginError::Store(StoreError::QuotaExceeded(_)) => (StatusCode::FORBIDDEN, "quota_exceeded"),
            PluginError::Store(store @ (StoreError::NoSpace(_) | StoreError::Unavailable(_))) => {
                let store = ApiError::from(store.clone());
                (store.status, store.code)
            }
            PluginError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
            PluginError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        };
        ApiError::new(status, code, message)
    }
}

impl From<JobsError> for ApiError {
    fn from(error: JobsError) -> Self {
        match error {
            JobsError::Invalid(error) => error.into(),
            JobsError::InvalidField(message) => ApiError::bad_request("invalid_field", message),
            error @ JobsError::UnknownPlugin(_) => ApiError::bad_request("unknown_plugin", error.to_string()),
            JobsError::Plugin(error) => error.into(),
            error @ JobsError::NotFound(_) => ApiError::not_found("job_not_found", error.to_string()),
            error @ JobsError::InUse { .. } => ApiError::new(StatusCode::CONFLICT, "job_in_use", error.to_string()),
            JobsError::Store(error) => error.into(),
        }
    }
}

impl From<WorkflowError> for ApiError {
    fn from(error: WorkflowError) -> Self {
        match error {
            WorkflowError::Invalid(error) => error.into(),
            error @ WorkflowError::NotFound(_) => ApiError::not_found("workflow_not_found", error.to_string()),
            error @ WorkflowError::RunNotFound(_) => ApiError::not_found("workflow_run_not_found", error.to_string()),
            WorkflowError::Conflict(message) => ApiError::new(StatusCode::CONFLICT, "workflow_conflict", message),
            WorkflowError::Store(error) => error.into(),
        }
    }
}

impl From<ExecError> for ApiError {
    fn from(error: ExecError) -> Self {
        match error {
            ExecError::Plugin(error) => error.into(),
            ExecError::Store(error) => error.into(),
            ExecError::Finished(_) => ApiError::new(StatusCode::CONFLICT, "run_finished", error.to_string()),
            ExecError::NotFinished(_) => ApiError::new(StatusCode::CONFLICT, "run_not_finished", error.to_string()),
            // Transient: a place frees as soon as one of its runs starts.
            ExecError::QueueFull { .. } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", error.to_string())
            }
        }
    }
}

impl From<BackfillError> for ApiError {
    fn from(error: BackfillError) -> Self {
        let message = error.to_string();
        match error {
            BackfillError::Refused(BackfillRefusal::TooMany { .. }) => {
                ApiError::bad_request("backfill_too_large", message)
            }
            BackfillError::Refused(BackfillRefusal::NoFixedFires(_)) => {
                ApiError::bad_request("invalid_schedule", message)
            }
            BackfillError::NotFound(_) => ApiError::not_found("job_not_found", message),
            BackfillError::QueueFull { .. } => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "queue_full", message),
            BackfillError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_before_any_request_is_a_whole_http_answer_with_the_error_body() {
        let bytes = ApiError::too_many_connections(8).to_http1_bytes();
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
        assert!(head.contains("\r\nretry-after: 1"), "{head}");
        assert!(head.contains("\r\nconnection: close"), "{head}");
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())), "{head}");
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "too_many_connections");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("http_max_connections")
        );
    }

    #[test]
    fn a_full_volume_is_507_and_another_io_failure_503_whatever_carried_them() {
        let full = || StoreError::NoSpace("no space left on the data volume".into());
        let broken = || StoreError::Unavailable("an I/O error on the data volume".into());
        for error in [
            ApiError::from(full()),
            ApiError::from(ExecError::Store(full())),
            ApiError::from(PluginError::Store(full())),
        ] {
            assert_eq!(error.status(), StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(error.code(), "insufficient_storage");
        }
        for error in [
            ApiError::from(broken()),
            ApiError::from(ExecError::Store(broken())),
            ApiError::from(PluginError::Store(broken())),
        ] {
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(error.code(), "storage_unavailable");
        }
        let bug = ApiError::from(StoreError::Backend("a bug".into()));
        assert_eq!(
            (bug.status(), bug.code()),
            (StatusCode::INTERNAL_SERVER_ERROR, "storage_error")
        );
    }

    #[tokio::test]
    async fn a_500_keeps_its_code_and_sends_a_reference_to_the_log_instead_of_the_detail() {
        use http_body_util::BodyExt;
        let bug = ApiError::from(StoreError::Backend("sled: corrupt key /data/db/blobs/x".into()));
        let response = bug.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["code"], "storage_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(INTERNAL_MESSAGE), "{message}");
        assert!(message.contains("(reference "), "{message}");
        assert!(!message.contains("corrupt") && !message.contains("/data"), "{message}");
        // Other server errors say what happened: the client can act on it.
        let full = ApiError::from(StoreError::NoSpace("no space left on the data volume".into()));
        let bytes = full.into_response().into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"]["message"], "no space left on the data volume");
    }

    #[test]
    fn unhealthy_storage_is_503_with_the_writes_code_and_its_details_beside_the_error() {
        let full = ApiError::storage_unhealthy(Fault::NoSpace, "full", serde_json::json!({"status": "failing"}));
        assert_eq!(
            (full.status(), full.code()),
            (StatusCode::SERVICE_UNAVAILABLE, "insufficient_storage")
        );
        let broken = ApiError::storage_unhealthy(Fault::Io, "eio", serde_json::json!({}));
        assert_eq!(broken.code(), "storage_unavailable");
        let response = full.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}
