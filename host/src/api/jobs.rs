//! `/v1/jobs`: create, upsert, list, show, patch, delete, pause, resume,
//! run now. Every state change is flushed before the answer.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Caller, JsonBody, Query};
use super::runs::full_run_view;
use super::{ApiError, AppState};
use crate::model::{Job, Trigger};

/// The longest `?wait=` a run-now may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);

fn job_view(job: &Job) -> Value {
    job_view_with(job, &HashMap::new())
}

/// A job as the API shows it. `ahead` holds fires recorded ahead of their
/// instant (see [`crate::executor::Executor::fires_ahead`]): the job's next
/// fire is the earliest of those, not the one after.
fn job_view_with(job: &Job, ahead: &HashMap<String, DateTime<Utc>>) -> Value {
    let next = job.next_fire_or(ahead.get(&job.id).copied());
    let shown;
    let job = if next == job.next_fire_at {
        job
    } else {
        shown = Job {
            next_fire_at: next,
            ..job.clone()
        };
        &shown
    };
    let mut view = serde_json::to_value(job).expect("a job always serializes");
    let object = view.as_object_mut().expect("a job serializes to an object");
    object.remove("tenant");
    object.insert("state".to_string(), json!(job.state()));
    view
}

/// A job of the caller's tenant by id or name, or 404.
pub(super) fn find_job(state: &AppState, tenant: &str, id_or_name: &str) -> Result<Job, ApiError> {
    Ok(state.jobs().find(tenant, id_or_name)?)
}

/// `POST /v1/jobs`: 201, or 409 if the name is taken.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    request_body(content = Object, description = "the job (see the README)"),
    responses((status = 201, description = "created", body = Object), (status = 403, description = "over the jobs quota", body = super::openapi::ErrorBody), (status = 404, description = "the plugin does not exist", body = super::openapi::ErrorBody), (status = 409, description = "the name is taken", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let job = state.jobs().create(&caller.tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(job_view(&job))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpsertQuery {
    /// Validate and say what would change, writing nothing.
    #[serde(default)]
    dry_run: bool,
}

/// `PUT /v1/jobs/{name}`: create (201) or replace (200) by name. With
/// `?dry_run=true`: 200 `{"change": "create"|"update"|"unchanged",
/// "changed_fields", "job"}` and nothing written.
#[utoipa::path(
    put,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "the job name"), ("dry_run" = Option<bool>, Query, description = "only say what would change")),
    request_body(content = Object),
    responses((status = 200, description = "replaced (or, dry run, what would change)", body = Object), (status = 201, description = "created", body = Object), (status = 403, description = "over the jobs quota", body = super::openapi::ErrorBody), (status = 404, description = "the plugin does not exist", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn upsert(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(query): Query<UpsertQuery>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if query.dry_run {
        let preview = state.jobs().preview_put(&caller.tenant, &name, body)?;
        let body =
            json!({"change": preview.change, "changed_fields": preview.changed_fields, "job": job_view(&preview.job)});
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let (job, created) = state.jobs().put(&caller.tenant, &name, body).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(job_view(&job))).into_response())
}

/// `GET /v1/jobs?label=k=v` (labels may repeat; all must match).
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    params(("label" = Option<String>, Query, description = "key=value, repeatable")),
    responses((status = 200, description = "the jobs", body = Object), super::openapi::Refusals)
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let mut wanted = Vec::new();
    for (key, value) in pairs {
        if key != "label" {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("{key}: unknown query parameter; use label=key=value"),
            ));
        }
        let (label, label_value) = value
            .split_once('=')
            .ok_or_else(|| ApiError::bad_request("invalid_query", format!("label: {value:?} is not key=value")))?;
        wanted.push((label.to_string(), label_value.to_string()));
    }
    let _settled = state.scheduler().settled().await;
    let ahead = state.executor().fires_ahead(&caller.tenant);
    let jobs: Vec<Value> = state
        .store()
        .list_jobs(&caller.tenant)?
        .iter()
        .filter(|job| wanted.iter().all(|(key, value)| job.labels.get(key) == Some(value)))
        .map(|job| job_view_with(job, &ahead))
        .collect();
    Ok(Json(json!({"jobs": jobs})))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)")),
    responses((status = 200, description = "the job", body = Object), (status = 404, description = "no such job", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let _settled = state.scheduler().settled().await;
    let ahead = state.executor().fires_ahead(&caller.tenant);
    Ok(Json(job_view_with(&find_job(&state, &caller.tenant, &id)?, &ahead)))
}

/// `PATCH /v1/jobs/{id}` with a JSON merge patch (RFC 7386) of the spec.
#[utoipa::path(
    patch,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)")),
    request_body(content = Object, content_type = "application/json", description = "a JSON merge patch"),
    responses((status = 200, description = "the changed job", body = Object), (status = 404, description = "no such job", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let job = state.jobs().patch(&caller.tenant, &id, &body).await?;
    Ok(Json(job_view(&job)))
}

/// `DELETE /v1/jobs/{id}`: the job and its kv state; its runs stay.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such job", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs().delete(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(state: &AppState, tenant: &str, id: &str, enabled: bool) -> Result<Json<Value>, ApiError> {
    let job = state.jobs().set_enabled(tenant, id, enabled).await?;
    Ok(Json(job_view(&job)))
}

/// `POST /v1/jobs/{id}/pause`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/pause",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)")),
    responses((status = 200, description = "the job", body = Object), (status = 404, description = "no such job", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn pause(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &caller.tenant, &id, false).await
}

/// `POST /v1/jobs/{id}/resume`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/resume",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)")),
    responses((status = 200, description = "the job", body = Object), (status = 404, description = "no such job", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_enabled(&state, &caller.tenant, &id, true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    wait: Option<String>,
    /// With `wait`: follow a failed attempt to its retries, to the last.
    #[serde(default)]
    final_attempt: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    input: Option<Value>,
}

/// `POST /v1/jobs/{id}/run` with optional `{input}`; `?wait=30s` answers
/// with the finished run (200), or the run so far (202) if it is still going;
/// `&final_attempt=true` waits for the last attempt of a run that is retried.
/// Within the tenant's quotas: 429 `queue_full` past `queued_runs`, 403
/// `quota_exceeded` when the run does not fit `run_bytes`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/run",
    tag = "jobs",
    params(("id" = String, Path, description = "id (or, for jobs, the name)"), ("wait" = Option<String>, Query, description = "wait up to this long, e.g. 30s"), ("final_attempt" = Option<bool>, Query, description = "with wait: follow a failed attempt to its retries and answer with the last one")),
    request_body(content = Object, description = "{\"input\"?}"),
    responses((status = 200, description = "the finished run", body = Object), (status = 202, description = "queued or still going", body = Object), (status = 403, description = "its input does not fit the tenant's run_bytes quota", body = super::openapi::ErrorBody), (status = 404, description = "no such job or plugin", body = super::openapi::ErrorBody), super::openapi::Refusals)
)]
pub async fn run_now(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let job = find_job(&state, &caller.tenant, &id)?;
    let wait = match query.wait.as_deref() {
        None => None,
        Some(text) => {
            let wait = crate::units::parse_duration(text)
                .map_err(|message| ApiError::bad_request("invalid_query", format!("wait: {message}")))?;
            if wait > MAX_WAIT {
                return Err(ApiError::bad_request("invalid_query", "wait: the longest wait is 5m"));
            }
            Some(wait)
        }
    };
    if query.final_attempt && wait.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "final_attempt: waits for the last attempt only with wait (e.g. ?wait=60s&final_attempt=true)",
        ));
    }
    let body: RunBody = if body.is_null() {
        RunBody { input: None }
    } else {
        super::extract::body_object(body, r#"{"input"?}"#)?
    };
    if let Some(input) = &body.input {
        let size = crate::model::job::input_bytes(input).len();
        let limit = state.config().jobs.max_input_bytes;
        if size > limit {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("input: is {size} bytes; the limit is {limit}"),
            ));
        }
    }
    let run = state
        .executor()
        .queue(&job, Trigger::Manual, body.input.as_ref())
        .await?;
    let run = match wait {
        Some(wait) if query.final_attempt => state
            .executor()
            .wait_final(&caller.tenant, &run.id, wait)
            .await?
            .unwrap_or(run),
        Some(wait) => state
            .executor()
            .wait(&caller.tenant, &run.id, wait)
            .await?
            .unwrap_or(run),
        None => run,
    };
    let status = if run.status.is_finished() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(full_run_view(&state, &run)?)).into_response())
}
