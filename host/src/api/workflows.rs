//! `/v1/workflows` (create, replace, patch, show, list, delete, run now)
//! and `/v1/workflow-runs` (list, show, cancel, retry). Every change is
//! durable before the answer.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody, Query, RunBody, page_query, run_input, wait_query};
use super::state::AppState;
use super::views::{WorkflowList, WorkflowRunList, WorkflowRunView, WorkflowView};
use crate::model::Trigger;
use crate::model::workflow_run::WorkflowRun;

/// `POST /v1/workflows`: 201, or 409 if the name is taken.
#[utoipa::path(
    post,
    path = "/v1/workflows",
    tag = "workflows",
    operation_id = "create_workflow",
    request_body(content = Object, description = "the workflow (see docs/workflows.md)"),
    responses((status = 201, description = "created", body = WorkflowView), (status = 409, description = "the name is taken", body = ErrorBody), Refusals)
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let workflow = state.workflows().create(&caller.tenant, &body).await?;
    Ok((StatusCode::CREATED, Json(WorkflowView::from(workflow))).into_response())
}

/// `PUT /v1/workflows/{name}`: create (201) or replace (200).
#[utoipa::path(
    put,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    operation_id = "put_workflow",
    params(("name" = String, Path, description = "the workflow's name")),
    request_body(content = Object, description = "the workflow (see docs/workflows.md)"),
    responses((status = 200, description = "replaced", body = WorkflowView), (status = 201, description = "created", body = WorkflowView), Refusals)
)]
pub async fn put(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (workflow, created) = state.workflows().replace(&caller.tenant, &name, &body).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(WorkflowView::from(workflow))).into_response())
}

/// `PATCH /v1/workflows/{name}`: a JSON merge patch.
#[utoipa::path(
    patch,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    operation_id = "patch_workflow",
    params(("name" = String, Path, description = "the workflow's name")),
    request_body(content = Object, content_type = "application/json", description = "a JSON merge patch"),
    responses((status = 200, description = "the changed workflow", body = WorkflowView), (status = 404, description = "no such workflow", body = ErrorBody), Refusals)
)]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<WorkflowView>, ApiError> {
    let workflow = state.workflows().patch(&caller.tenant, &name, &body).await?;
    Ok(Json(WorkflowView::from(workflow)))
}

/// `GET /v1/workflows`.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    tag = "workflows",
    operation_id = "list_workflows",
    responses((status = 200, description = "the workflows, by name", body = WorkflowList), Refusals)
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<WorkflowList>, ApiError> {
    Ok(Json(WorkflowList::new(state.workflows().list(&caller.tenant)?)))
}

/// `GET /v1/workflows/{name}`.
#[utoipa::path(
    get,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    operation_id = "get_workflow",
    params(("name" = String, Path, description = "the workflow's name")),
    responses((status = 200, description = "the workflow", body = WorkflowView), (status = 404, description = "no such workflow", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(WorkflowView::from(state.workflows().get(&caller.tenant, &name)?)))
}

/// `DELETE /v1/workflows/{name}`: its runs stay.
#[utoipa::path(
    delete,
    path = "/v1/workflows/{name}",
    tag = "workflows",
    operation_id = "delete_workflow",
    params(("name" = String, Path, description = "the workflow's name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such workflow", body = ErrorBody), Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.workflows().delete(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// `POST /v1/workflows/{name}/run` with optional `{input}`; `?wait=30s`
/// answers with the finished run (200) or the run so far (202).
#[utoipa::path(
    post,
    path = "/v1/workflows/{name}/run",
    tag = "workflows",
    operation_id = "run_workflow",
    params(("name" = String, Path, description = "the workflow's name"), ("wait" = Option<String>, Query, description = "wait up to this long, e.g. 30s")),
    request_body(content = Option<RunBody>, description = "{\"input\"?}"),
    responses((status = 200, description = "the finished workflow run", body = WorkflowRunView), (status = 202, description = "still going", body = WorkflowRunView), (status = 404, description = "no such workflow", body = ErrorBody), Refusals)
)]
pub async fn run_now(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Query(query): Query<WaitQuery>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let wait = wait_query(query.wait.as_deref())?;
    let input = run_input(body, state.config().jobs.max_input_bytes)?;
    let run = state
        .workflows()
        .start(&caller.tenant, &name, input.as_ref(), Trigger::Manual, None)
        .await?;
    answer(&state, &caller.tenant, run, wait).await
}

/// The finished run (200) after waiting up to `wait`, or as it is (202).
async fn answer(
    state: &AppState,
    tenant: &str,
    run: WorkflowRun,
    wait: Option<Duration>,
) -> Result<Response, ApiError> {
    let run = match wait {
        Some(wait) => state.workflows().wait(tenant, &run.id, wait).await?.unwrap_or(run),
        None => run,
    };
    let status = if run.status.is_finished() {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(WorkflowRunView::from(&run))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunsQuery {
    workflow: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/workflow-runs?workflow=&limit=&cursor=`, newest first.
#[utoipa::path(
    get,
    path = "/v1/workflow-runs",
    tag = "workflows",
    operation_id = "list_workflow_runs",
    params(("workflow" = Option<String>, Query, description = "only this workflow's"), ("limit" = Option<u32>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "workflow runs, newest first", body = WorkflowRunList), Refusals)
)]
pub async fn list_runs(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<RunsQuery>,
) -> Result<Json<WorkflowRunList>, ApiError> {
    let limit = page_query(query.limit, query.cursor.as_deref())?;
    let runs = state.workflows().runs(
        &caller.tenant,
        query.workflow.as_deref(),
        query.cursor.as_deref(),
        limit,
    )?;
    Ok(Json(WorkflowRunList::page(&runs, limit)))
}

/// `GET /v1/workflow-runs/{id}?wait=`.
#[utoipa::path(
    get,
    path = "/v1/workflow-runs/{id}",
    tag = "workflows",
    operation_id = "get_workflow_run",
    params(("id" = String, Path, description = "the workflow run's id"), ("wait" = Option<String>, Query, description = "wait up to this long for it to end")),
    responses((status = 200, description = "the workflow run", body = WorkflowRunView), (status = 404, description = "no such workflow run", body = ErrorBody), Refusals)
)]
pub async fn get_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<WorkflowRunView>, ApiError> {
    let run = match wait_query(query.wait.as_deref())? {
        Some(wait) => state.workflows().wait(&caller.tenant, &id, wait).await?,
        None => state.workflows().run(&caller.tenant, &id)?,
    };
    let run = run.ok_or_else(|| not_found(&id))?;
    Ok(Json(WorkflowRunView::from(&run)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("workflow_run_not_found", format!("no workflow run with id {id:?}"))
}

/// `POST /v1/workflow-runs/{id}/cancel`: its running steps are cancelled,
/// nothing new starts; 409 when it is over.
#[utoipa::path(
    post,
    path = "/v1/workflow-runs/{id}/cancel",
    tag = "workflows",
    operation_id = "cancel_workflow_run",
    params(("id" = String, Path, description = "the workflow run's id")),
    responses((status = 200, description = "the workflow run as it ends", body = WorkflowRunView), (status = 404, description = "no such workflow run", body = ErrorBody), (status = 409, description = "it is over", body = ErrorBody), Refusals)
)]
pub async fn cancel_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
) -> Result<Json<WorkflowRunView>, ApiError> {
    let run = state.workflows().cancel(&caller.tenant, &id).await?;
    Ok(Json(WorkflowRunView::from(&run)))
}

/// `POST /v1/workflow-runs/{id}/retry?wait=`: a failed or cancelled run
/// again from its failed, cancelled and skipped steps.
#[utoipa::path(
    post,
    path = "/v1/workflow-runs/{id}/retry",
    tag = "workflows",
    operation_id = "retry_workflow_run",
    params(("id" = String, Path, description = "the workflow run's id"), ("wait" = Option<String>, Query, description = "wait up to this long, e.g. 30s")),
    responses((status = 200, description = "the finished workflow run", body = WorkflowRunView), (status = 202, description = "going again", body = WorkflowRunView), (status = 404, description = "no such workflow run", body = ErrorBody), (status = 409, description = "it is running or succeeded", body = ErrorBody), Refusals)
)]
pub async fn retry_run(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let wait = wait_query(query.wait.as_deref())?;
    let run = state.workflows().retry(&caller.tenant, &id).await?;
    answer(&state, &caller.tenant, run, wait).await
}
