//! `POST /v1/runs/{id}/replay` (a recorded run executed again against its
//! tape, with no side effects) and `GET /v1/runs/{id}/record` (its record,
//! for `sandcron exec --replay`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody, body_object};
use super::state::AppState;
use super::views::{OutputEncoding, output_text};
use crate::executor::replay::ReplayError;
use crate::model::RunError;
use crate::sandbox::replay::{Record, Replayed};
use crate::sandbox::tape::TapeError;

/// The optional body of `POST /v1/runs/{id}/replay`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    /// Another version of the plugin to replay on (`name@version`); absent:
    /// the bytes the run ran.
    #[serde(default)]
    pub plugin: Option<String>,
}

/// Where a replay left the recorded calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct DivergenceView {
    /// The index of the call, from 0 (clock reads count).
    call: u64,
    /// The call the record has there.
    expected: String,
    /// The call the replay made.
    got: String,
}

/// What a replay gave.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// Output and error are the run's, and every call was the recorded one.
    identical: bool,
    /// The replay's output.
    output: String,
    output_encoding: OutputEncoding,
    /// Why the replay failed, if it did.
    error: Option<RunError>,
    /// The first call that was not the recorded one (null: none).
    diverged_at: Option<DivergenceView>,
}

impl From<Replayed> for ReplayView {
    fn from(replayed: Replayed) -> ReplayView {
        let (output, output_encoding) = output_text(&replayed.output);
        ReplayView {
            identical: replayed.identical,
            output,
            output_encoding,
            error: replayed.error,
            diverged_at: replayed.diverged_at.map(|divergence| DivergenceView {
                call: divergence.call,
                expected: divergence.expected,
                got: divergence.got,
            }),
        }
    }
}

impl From<ReplayError> for ApiError {
    fn from(error: ReplayError) -> Self {
        let message = error.to_string();
        let conflict = |code| ApiError::new(StatusCode::CONFLICT, code, message.clone());
        match error {
            ReplayError::NoRun(_) => ApiError::not_found("run_not_found", message),
            ReplayError::NotFinished(_) => conflict("run_not_finished"),
            ReplayError::NotRecorded(_) => conflict("run_not_recorded"),
            ReplayError::Incomplete { .. } => conflict("record_incomplete"),
            ReplayError::PluginGone(_) => conflict("plugin_gone"),
            ReplayError::Busy(_) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many_replays", message),
            ReplayError::Tape(TapeError::Incompatible { .. }) => conflict("record_incompatible"),
            ReplayError::Tape(TapeError::Damaged(_)) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "record_damaged", message)
            }
            ReplayError::Plugin(error) => error.into(),
            ReplayError::Store(error) => error.into(),
        }
    }
}

/// `POST /v1/runs/{id}/replay` with an optional `{"plugin"}`: executes a
/// finished recorded run again, every host call answered from its record
/// and nothing written (no kv, no HTTP, no log, no run); 409 when the run
/// did not record, has not finished or passed its record's cap.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/replay",
    tag = "runs",
    operation_id = "replay_run",
    params(("id" = String, Path, description = "the run's id")),
    request_body(content = Option<ReplayBody>, description = "{\"plugin\"?: \"name@version\"}"),
    responses((status = 200, description = "what the replay gave", body = ReplayView), (status = 404, description = "no such run or plugin", body = ErrorBody), (status = 409, description = "the run cannot be replayed: not recorded, not finished, past its record's cap, or its plugin version is gone", body = ErrorBody), (status = 429, description = "as many replays are going as the node or the tenant may have at once", body = ErrorBody), Refusals)
)]
pub async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<ReplayView>, ApiError> {
    let body: ReplayBody = match body {
        serde_json::Value::Null => ReplayBody { plugin: None },
        body => body_object(body, "{\"plugin\"?}")?,
    };
    let replayed = state
        .executor()
        .replay(&caller.tenant, &id, body.plugin.as_deref())
        .await?;
    Ok(Json(ReplayView::from(replayed)))
}

/// `GET /v1/runs/{id}/record`: a finished recorded run's record (context,
/// input, limits, plugin, output and tape), for `sandcron exec --replay`.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/record",
    tag = "runs",
    operation_id = "get_run_record",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, description = "the run's record (format sandcron-record/1)", body = Record), (status = 404, description = "no such run", body = ErrorBody), (status = 409, description = "the run cannot be replayed: not recorded, not finished, or past its record's cap", body = ErrorBody), Refusals)
)]
pub async fn record(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Record>, ApiError> {
    Ok(Json(state.executor().record(&caller.tenant, &id)?))
}
