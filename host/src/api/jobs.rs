//! `/v1/jobs`: create, upsert, list, show, patch, delete, pause, resume,
//! run now, coming fires. Every state change is flushed before the answer.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody, Query, RunBody, instant_arg, run_input, wait_query};
use super::runs::full_run_view;
use super::state::AppState;
use super::views::{BackfillView, FiresView, JobList, JobPreviewView, JobPutView, JobView, RunWithOutputView};
use crate::model::upcoming::upcoming;
use crate::model::{Job, Trigger};

/// A job of the caller's tenant by id or name, or 404.
pub(super) fn find_job(state: &AppState, tenant: &str, id_or_name: &str) -> Result<Job, ApiError> {
    Ok(state.jobs().find(tenant, id_or_name)?)
}

/// `POST /v1/jobs`: 201, or 409 if the name is taken.
#[utoipa::path(
    post,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "create_job",
    request_body(content = Object, description = "the job (see the README)"),
    responses((status = 201, description = "created", body = JobView), (status = 403, description = "over the jobs quota", body = ErrorBody), (status = 404, description = "the plugin does not exist", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody), Refusals)
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let job = state.jobs().create(&caller.tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(JobView::from(job))).into_response())
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
    operation_id = "put_job",
    params(("id" = String, Path, description = "the job name"), ("dry_run" = Option<bool>, Query, description = "only say what would change")),
    request_body(content = Object, description = "the job (see the README)"),
    responses((status = 200, description = "replaced (or, dry run, what would change)", body = JobPutView), (status = 201, description = "created", body = JobView), (status = 403, description = "over the jobs quota", body = ErrorBody), (status = 404, description = "the plugin does not exist", body = ErrorBody), Refusals)
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
        let body = JobPutView::Preview(JobPreviewView::from(preview));
        return Ok((StatusCode::OK, Json(body)).into_response());
    }
    let (job, created) = state.jobs().put(&caller.tenant, &name, body).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(JobPutView::Job(JobView::from(job)))).into_response())
}

/// `GET /v1/jobs?label=k=v` (labels may repeat; all must match).
#[utoipa::path(
    get,
    path = "/v1/jobs",
    tag = "jobs",
    operation_id = "list_jobs",
    params(("label" = Option<String>, Query, description = "key=value, repeatable")),
    responses((status = 200, description = "the jobs", body = JobList), Refusals)
)]
pub async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<JobList>, ApiError> {
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
    // The jobs before their fires ahead: in a cluster a fire the leader
    // records between the two reads is then among them, not lost between
    // a next fire moved past it and a list read before it.
    let jobs = state.store().list_jobs(&caller.tenant)?;
    let ahead = state.executor().fires_ahead(&caller.tenant);
    let jobs = jobs
        .iter()
        .filter(|job| wanted.iter().all(|(key, value)| job.labels.get(key) == Some(value)))
        .map(|job| JobView::with_fires_ahead(job, &ahead))
        .collect();
    Ok(Json(JobList::new(jobs)))
}

/// `GET /v1/jobs/{id}`.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "get_job",
    params(("id" = String, Path, description = "the job's id or name")),
    responses((status = 200, description = "the job", body = JobView), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let _settled = state.scheduler().settled().await;
    // The job before its fires ahead (see `list`).
    let job = find_job(&state, &caller.tenant, &id)?;
    let ahead = state.executor().fires_ahead(&caller.tenant);
    Ok(Json(JobView::with_fires_ahead(&job, &ahead)))
}

/// `PATCH /v1/jobs/{id}` with a JSON merge patch (RFC 7386) of the spec.
#[utoipa::path(
    patch,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "patch_job",
    params(("id" = String, Path, description = "the job's id or name")),
    request_body(content = Object, content_type = "application/json", description = "a JSON merge patch"),
    responses((status = 200, description = "the changed job", body = JobView), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<JobView>, ApiError> {
    let job = state.jobs().patch(&caller.tenant, &id, &body).await?;
    Ok(Json(JobView::from(job)))
}

/// `DELETE /v1/jobs/{id}`: the job and its kv state; its runs stay.
#[utoipa::path(
    delete,
    path = "/v1/jobs/{id}",
    tag = "jobs",
    operation_id = "delete_job",
    params(("id" = String, Path, description = "the job's id or name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such job", body = ErrorBody), (status = 409, description = "workflows' steps name it", body = ErrorBody), Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.jobs().delete(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn set_enabled(state: &AppState, tenant: &str, id: &str, enabled: bool) -> Result<Json<JobView>, ApiError> {
    let job = state.jobs().set_enabled(tenant, id, enabled).await?;
    Ok(Json(JobView::from(job)))
}

/// `POST /v1/jobs/{id}/pause`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/pause",
    tag = "jobs",
    operation_id = "pause_job",
    params(("id" = String, Path, description = "the job's id or name")),
    responses((status = 200, description = "the job", body = JobView), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn pause(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&state, &caller.tenant, &id, false).await
}

/// `POST /v1/jobs/{id}/resume`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/resume",
    tag = "jobs",
    operation_id = "resume_job",
    params(("id" = String, Path, description = "the job's id or name")),
    responses((status = 200, description = "the job", body = JobView), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn resume(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    set_enabled(&state, &caller.tenant, &id, true).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    wait: Option<String>,
    /// With `wait`: follow a failed attempt to its retries, to the last.
    #[serde(default)]
    final_attempt: bool,
    /// Record the run's host calls (to replay it), whatever the job says.
    #[serde(default)]
    record: bool,
}

/// `POST /v1/jobs/{id}/run` with optional `{input}`; `?wait=30s` answers
/// with the finished run (200), or the run so far (202) if it is still going;
/// `&final_attempt=true` waits for the last attempt of a run that is retried;
/// `?record=true` records the run's host calls, to replay it.
/// Within the tenant's quotas: 429 `queue_full` past `queued_runs`, 403
/// `quota_exceeded` when the run does not fit `run_bytes`.
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/run",
    tag = "jobs",
    operation_id = "run_job",
    params(("id" = String, Path, description = "the job's id or name"), ("wait" = Option<String>, Query, description = "wait up to this long, e.g. 30s"), ("final_attempt" = Option<bool>, Query, description = "with wait: follow a failed attempt to its retries and answer with the last one"), ("record" = Option<bool>, Query, description = "record the run's host calls, to replay it (POST /v1/runs/{id}/replay)")),
    request_body(content = Option<RunBody>, description = "{\"input\"?}"),
    responses((status = 200, description = "the finished run", body = RunWithOutputView), (status = 202, description = "queued or still going", body = RunWithOutputView), (status = 403, description = "its input does not fit the tenant's run_bytes quota", body = ErrorBody), (status = 404, description = "no such job or plugin", body = ErrorBody), Refusals)
)]
pub async fn run_now(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<RunQuery>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let mut job = find_job(&state, &caller.tenant, &id)?;
    job.record |= query.record;
    let wait = wait_query(query.wait.as_deref())?;
    if query.final_attempt && wait.is_none() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "final_attempt: waits for the last attempt only with wait (e.g. ?wait=60s&final_attempt=true)",
        ));
    }
    let input = run_input(body, state.config().jobs.max_input_bytes)?;
    let run = state.executor().queue(&job, Trigger::Manual, input.as_ref()).await?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiresQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

/// The most fires `GET /v1/jobs/{id}/fires` lists.
const MAX_FIRES_LISTED: usize = 1000;
/// The longest range it covers.
const MAX_FIRES_RANGE_DAYS: i64 = 366;

/// `GET /v1/jobs/{id}/fires?from=&to=&limit=`: the job's coming fires in
/// [from, to) (now and a week on unless given) as its scheduler fires them:
/// from its own next fire and anchor, honouring its schedule's rules, each
/// with its jitter; the first `limit` (100 unless given, at most 1000)
/// listed, all counted per hour.
#[utoipa::path(
    get,
    path = "/v1/jobs/{id}/fires",
    tag = "jobs",
    operation_id = "list_job_fires",
    params(
        ("id" = String, Path, description = "the job's id or name"),
        ("from" = Option<String>, Query, description = "RFC 3339; now unless given"),
        ("to" = Option<String>, Query, description = "RFC 3339, excluded; a week after `from` unless given, at most 366 days after it"),
        ("limit" = Option<u32>, Query, description = "fires listed, 1 to 1000 (100 unless given)"),
    ),
    responses((status = 200, description = "the coming fires", body = FiresView), (status = 404, description = "no such job", body = ErrorBody), Refusals)
)]
pub async fn fires(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<FiresQuery>,
) -> Result<Json<FiresView>, ApiError> {
    let instant =
        |field: &str, text: Option<&str>| text.map(|text| instant_arg("invalid_query", field, text)).transpose();
    let from = whole_millisecond(instant("from", query.from.as_deref())?.unwrap_or_else(Utc::now));
    let to = instant("to", query.to.as_deref())?.unwrap_or(from + chrono::Duration::days(7));
    check_range("invalid_query", from, to)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_FIRES_LISTED {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be from 1 to {MAX_FIRES_LISTED}"),
        ));
    }
    let _settled = state.scheduler().settled().await;
    let job = find_job(&state, &caller.tenant, &id)?;
    let ahead = state.executor().fires_ahead(&caller.tenant).get(&job.id).copied();
    // Counting a year of hours is milliseconds of CPU: off the runtime.
    let view = tokio::task::spawn_blocking(move || {
        let coming = upcoming(&job, ahead, from, to, limit);
        FiresView::new(&job, from, to, coming)
    })
    .await
    .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", error.to_string()))?;
    Ok(Json(view))
}

/// `POST /v1/jobs/{id}/backfill`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    /// The range's start, included (RFC 3339).
    from: String,
    /// Its end, excluded (RFC 3339, not after now).
    to: String,
}

/// `POST /v1/jobs/{id}/backfill {"from", "to"}`: queues the job's fires in
/// that past range (from included, to excluded) as runs due now with their
/// historical `scheduled_at` (trigger `backfill`), through its overlap
/// policy; a fire already recorded queues nothing (the same range twice
/// queues nothing new). At most 1000 fires (400 `backfill_too_large`).
#[utoipa::path(
    post,
    path = "/v1/jobs/{id}/backfill",
    tag = "jobs",
    operation_id = "backfill_job",
    params(("id" = String, Path, description = "the job's id or name")),
    request_body(content = BackfillBody),
    responses((status = 200, description = "what was queued", body = BackfillView), (status = 404, description = "no such job", body = ErrorBody), (status = 429, description = "the runs do not fit in the tenant's queue", body = ErrorBody), Refusals)
)]
pub async fn backfill(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<BackfillView>, ApiError> {
    let request: BackfillBody = super::extract::body_object(body, r#"{"from", "to"}"#)?;
    let from = whole_millisecond(instant_arg("invalid_field", "from", &request.from)?);
    let to = instant_arg("invalid_field", "to", &request.to)?;
    check_range("invalid_field", from, to)?;
    if to > Utc::now() {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "to: {} is in the future; a backfill queues past fires (the scheduler fires the coming ones)",
                request.to
            ),
        ));
    }
    let job = find_job(&state, &caller.tenant, &id)?;
    let done = state.scheduler().backfill(&caller.tenant, &job.id, from, to).await?;
    if !done.queued.is_empty() {
        tracing::info!(job_id = %job.id, runs = done.queued.len(), %from, %to, "backfill queued");
    }
    Ok(Json(BackfillView::from(done)))
}

/// A range of fires the API takes: `to` after `from`, at most
/// [`MAX_FIRES_RANGE_DAYS`] after it; else 400 with `code`.
fn check_range(code: &'static str, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), ApiError> {
    if to <= from || to - from > chrono::Duration::days(MAX_FIRES_RANGE_DAYS) {
        return Err(ApiError::bad_request(
            code,
            format!("to: must be after from and at most {MAX_FIRES_RANGE_DAYS} days after it"),
        ));
    }
    Ok(())
}

/// `at`, or the next whole millisecond after it (fires are whole
/// milliseconds: one a fraction before `at` is not at or after it).
fn whole_millisecond(at: DateTime<Utc>) -> DateTime<Utc> {
    let millisecond = chrono::Duration::milliseconds(1);
    match chrono::DurationRound::duration_trunc(at, millisecond) {
        Ok(whole) if whole < at => whole + millisecond,
        Ok(whole) => whole,
        Err(_) => at,
    }
}
