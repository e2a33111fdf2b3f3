//! The routes without a token: `/healthz` (is the daemon up, can it take
//! writes) and `/` (the web dashboard). `/openapi.json` lives with the
//! document, in `openapi.rs`.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use super::views::{HealthStatus, HealthView, StorageErrorsView, StorageReportView, StorageState, UnhealthyView};
use crate::store::health::Condition;

/// The web dashboard: one page, no outside resources (it works offline);
/// it asks for a token and talks to the API like any client.
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    operation_id = "get_dashboard",
    responses((status = 200, description = "the dashboard page", body = String, content_type = "text/html"), (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = ErrorBody)),
    security(())
)]
pub async fn dashboard() -> impl IntoResponse {
    use axum::http::header;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("dashboard.html"),
    )
}

/// `GET /healthz`: 200 while the daemon can take writes; 503 once its
/// storage failed (a full disk, an I/O error), saying why and since when,
/// with the error code writes get meanwhile.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "meta",
    operation_id = "get_health",
    responses(
        (status = 200, description = "alive, and the storage takes writes", body = HealthView),
        (status = 429, description = "too many requests without a valid token from this address (`Retry-After`)", body = ErrorBody),
        (status = 503, description = "the storage is failing: `storage` says why; writes are refused until the daemon restarts into working storage", body = UnhealthyView),
    ),
    security(())
)]
pub async fn healthz(State(state): State<AppState>) -> Result<Json<HealthView>, ApiError> {
    let version = env!("CARGO_PKG_VERSION").to_string();
    let snapshot = state.storage().snapshot();
    let (failure, recovered_at) = match &snapshot.condition {
        Condition::Healthy => {
            return Ok(Json(HealthView {
                status: HealthStatus::Ok,
                version,
                storage: StorageReportView {
                    state: StorageState::Ok,
                    fault: None,
                    reason: None,
                    since: None,
                    errors: None,
                    recovered_at: None,
                },
            }));
        }
        Condition::Failing(failure) => (failure, None),
        Condition::Recovered { failure, at } => (failure, Some(*at)),
    };
    let message = match recovered_at {
        None => format!(
            "storage is failing since {}: {}; writes are refused until it can take them again",
            failure.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            failure.reason
        ),
        Some(_) => "storage can take writes again; the daemon is restarting to reopen the database".to_string(),
    };
    let (status, storage_state) = match recovered_at {
        Some(_) => (HealthStatus::Restarting, StorageState::Recovered),
        None => (HealthStatus::Failing, StorageState::Failing),
    };
    let report = HealthView {
        status,
        version,
        storage: StorageReportView {
            state: storage_state,
            fault: Some(failure.fault.as_str().to_string()),
            reason: Some(failure.reason.clone()),
            since: Some(failure.since),
            errors: Some(StorageErrorsView {
                no_space: snapshot.errors[0],
                io: snapshot.errors[1],
            }),
            recovered_at,
        },
    };
    Err(ApiError::storage_unhealthy(
        failure.fault,
        message,
        serde_json::to_value(report).expect("a health report always serializes"),
    ))
}
