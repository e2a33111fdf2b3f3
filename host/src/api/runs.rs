//! `/v1/runs`: list with filters and cursor pagination, show one, its log.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, Query, page_query};
use super::state::AppState;
use super::views::{RunList, RunView, RunWithOutputView};
use crate::model::{Run, RunStatus};
use crate::store::RunFilter;

/// Loads a run of the caller's tenant or answers 404.
pub fn find_run(state: &AppState, tenant: &str, id: &str) -> Result<Run, ApiError> {
    state
        .store()
        .run(tenant, id)?
        .ok_or_else(|| ApiError::not_found("run_not_found", format!("no run with id {id:?}")))
}

/// A run with its output, as `GET /v1/runs/{id}` shows it.
pub fn full_run_view(state: &AppState, run: &Run) -> Result<RunWithOutputView, ApiError> {
    let output = state.store().run_output(&run.tenant, &run.id)?.unwrap_or_default();
    Ok(RunWithOutputView::new(run, &output))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    job: Option<String>,
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/runs?job=&status=&limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/runs",
    tag = "runs",
    operation_id = "list_runs",
    params(("job" = Option<String>, Query), ("status" = Option<String>, Query), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "runs, newest first", body = RunList), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(text) => Some(RunStatus::parse(text).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status: {text:?} is not one of queued, running, succeeded, failed, cancelled"),
            )
        })?),
    };
    let limit = page_query(query.limit, query.cursor.as_deref())?;
    let job_id = match query.job {
        Some(job) => Some(job_of_runs(&state, &caller.tenant, &job)?),
        None => None,
    };
    let filter = RunFilter {
        job_id,
        status,
        before: query.cursor,
        limit,
    };
    let runs = state.store().list_runs(&caller.tenant, &filter)?;
    Ok(Json(RunList::page(&runs, limit)))
}

/// The job id a `?job=` names: a job's name or id, or the id of a deleted
/// job whose runs are still kept; 404 when it is none of them.
fn job_of_runs(state: &AppState, tenant: &str, job: &str) -> Result<String, ApiError> {
    if let Some(id) = state.store().job_id_by_name(tenant, job)? {
        return Ok(id);
    }
    if state.store().job(tenant, job)?.is_some() {
        return Ok(job.to_string());
    }
    let probe = RunFilter {
        job_id: Some(job.to_string()),
        status: None,
        before: None,
        limit: 1,
    };
    if !state.store().list_runs(tenant, &probe)?.is_empty() {
        return Ok(job.to_string());
    }
    Err(ApiError::not_found(
        "job_not_found",
        format!("job: no job with id or name {job:?}, and no runs of a deleted job with that id"),
    ))
}

/// `GET /v1/runs/{id}` with its output.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}",
    tag = "runs",
    operation_id = "get_run",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, description = "the run with its output", body = RunWithOutputView), (status = 404, description = "no such run", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunWithOutputView>, ApiError> {
    let run = find_run(&state, &caller.tenant, &id)?;
    Ok(Json(full_run_view(&state, &run)?))
}

/// `GET /v1/runs/{id}/logs` as text.
#[utoipa::path(
    get,
    path = "/v1/runs/{id}/logs",
    tag = "runs",
    operation_id = "get_run_logs",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, description = "the captured log", body = String, content_type = "text/plain"), (status = 404, description = "no such run", body = ErrorBody), Refusals)
)]
pub async fn logs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let run = find_run(&state, &caller.tenant, &id)?;
    // A run still going shows its log so far.
    let log = match state.executor().live_log(&run.id).await {
        Some(live) => live,
        None => state.store().run_log(&caller.tenant, &run.id)?.unwrap_or_default(),
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::HeaderName::from_static("x-run-status"), run.status.as_str()),
        ],
        log,
    ))
}

/// `POST /v1/runs/{id}/cancel`: a queued run ends at once, a running one
/// within an epoch tick; 409 if it has finished.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/cancel",
    tag = "runs",
    operation_id = "cancel_run",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 200, description = "the run as it ended", body = RunWithOutputView), (status = 404, description = "no such run", body = ErrorBody), (status = 409, description = "it has finished", body = ErrorBody), Refusals)
)]
pub async fn cancel(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunWithOutputView>, ApiError> {
    let run = state
        .executor()
        .cancel(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run_not_found", format!("no run with id {id:?}")))?;
    Ok(Json(full_run_view(&state, &run)?))
}

/// `POST /v1/runs/{id}/retry`: a new attempt of a finished run, trigger
/// `retry`; 409 if it has not finished; within the tenant's `queued_runs`
/// and `run_bytes` quotas like a run asked for by `POST /v1/jobs/{id}/run`.
#[utoipa::path(
    post,
    path = "/v1/runs/{id}/retry",
    tag = "runs",
    operation_id = "retry_run",
    params(("id" = String, Path, description = "the run's id")),
    responses((status = 202, description = "the new attempt, queued", body = RunView), (status = 403, description = "it does not fit the tenant's run_bytes quota", body = ErrorBody), (status = 404, description = "no such run", body = ErrorBody), (status = 409, description = "it has not finished", body = ErrorBody), Refusals)
)]
pub async fn retry(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let run = state
        .executor()
        .retry(&caller.tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("run_not_found", format!("no run with id {id:?}")))?;
    Ok((StatusCode::ACCEPTED, Json(RunView::from(&run))))
}
