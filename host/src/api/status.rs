//! `/v1/status` and `/v1/scheduler/pause|resume`: what the daemon is doing.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, require_admin};
use super::state::AppState;
use super::views::{NextFireView, SchedulerState, SchedulerView, StatusView, StorageState};
use crate::model::RunStatus;
use crate::model::job::Priority;
use crate::store::RunFilter;

/// How many upcoming fires `/v1/status` lists.
const NEXT_FIRES: usize = 10;
/// The most jobs whose last success one scrape reads from the store (the
/// first scrapes after a start with many jobs fill them in turn).
const LAST_SUCCESS_READS: usize = 1_000;

/// `GET /v1/status`: scheduler state, queue depth, runs, jobs and next
/// fires; the runs and queue of the caller's tenant (the admin's: all).
#[utoipa::path(
    get,
    path = "/v1/status",
    tag = "status",
    operation_id = "get_status",
    responses((status = 200, description = "the daemon's state", body = StatusView), Refusals)
)]
pub async fn status(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<StatusView>, ApiError> {
    let settled = state.scheduler().settled().await;
    let scope = (!caller.admin).then_some(caller.tenant.as_str());
    let (depth, by_priority) = state.executor().queue_depth(scope);
    let jobs = state.store().list_jobs(&caller.tenant)?;
    let ahead = state.executor().fires_ahead(&caller.tenant);
    drop(settled);
    let mut upcoming: Vec<(chrono::DateTime<chrono::Utc>, &str)> = jobs
        .iter()
        .filter(|job| job.enabled)
        .filter_map(|job| {
            job.next_fire_or(ahead.get(&job.id).copied())
                .map(|at| (at, job.name.as_str()))
        })
        .collect();
    upcoming.sort();
    let next_fires = upcoming
        .iter()
        .take(NEXT_FIRES)
        .map(|(at, name)| NextFireView {
            job: name.to_string(),
            at: *at,
        })
        .collect();
    Ok(Json(StatusView {
        scheduler: scheduler_state(&state),
        storage: StorageState::from(&state.storage().snapshot().condition),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: state.started_at(),
        running_runs: state.executor().running_of(scope),
        queue_depth: depth,
        queue_depth_by_priority: by_priority,
        max_concurrent_runs: state.config().max_concurrent_runs,
        jobs: jobs.len(),
        jobs_paused: jobs.iter().filter(|job| !job.enabled).count(),
        next_fires,
    }))
}

fn scheduler_state(state: &AppState) -> SchedulerState {
    if state.scheduler().is_paused() {
        SchedulerState::Paused
    } else {
        SchedulerState::Running
    }
}

/// `POST /v1/scheduler/pause` (admin): no schedule fires until resumed.
#[utoipa::path(
    post,
    path = "/v1/scheduler/pause",
    tag = "status",
    operation_id = "pause_scheduler",
    responses((status = 200, description = "paused", body = SchedulerView), (status = 403, description = "admin only", body = ErrorBody), Refusals)
)]
pub async fn pause(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<SchedulerView>, ApiError> {
    require_admin(&caller)?;
    // Every node's, in a cluster.
    if let Some(cluster) = state.cluster() {
        cluster.set_paused(true)?;
    }
    state.scheduler().pause().await?;
    state.store().flush_async().await?;
    tracing::info!("scheduler paused");
    Ok(Json(SchedulerView {
        scheduler: SchedulerState::Paused,
    }))
}

/// `POST /v1/scheduler/resume` (admin): fires again; missed fires follow
/// each job's misfire policy.
#[utoipa::path(
    post,
    path = "/v1/scheduler/resume",
    tag = "status",
    operation_id = "resume_scheduler",
    responses((status = 200, description = "running", body = SchedulerView), (status = 403, description = "admin only", body = ErrorBody), Refusals)
)]
pub async fn resume(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<SchedulerView>, ApiError> {
    require_admin(&caller)?;
    // Every node's, in a cluster.
    if let Some(cluster) = state.cluster() {
        cluster.set_paused(false)?;
    }
    state.scheduler().resume();
    tracing::info!("scheduler resumed");
    Ok(Json(SchedulerView {
        scheduler: SchedulerState::Running,
    }))
}

/// `GET /metrics` (admin): Prometheus text format, every tenant.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "status",
    operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"), (status = 403, description = "admin only", body = ErrorBody), Refusals)
)]
pub async fn metrics(State(state): State<AppState>, Caller(caller): Caller) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let metrics = state.metrics();
    let (_, by_priority) = state.executor().queue_depth(None);
    for priority in Priority::ALL {
        let depth = by_priority.get(&priority).copied().unwrap_or(0);
        metrics
            .queue_depth
            .with_label_values(&[priority.as_str()])
            .set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
    metrics
        .running
        .set(i64::try_from(state.executor().running()).unwrap_or(i64::MAX));
    metrics
        .plugin_cache_bytes
        .set(i64::try_from(state.plugins().cache_bytes()).unwrap_or(i64::MAX));
    let (nodes, leading) = match state.cluster() {
        Some(cluster) => (cluster.nodes()?.len(), cluster.leadership().is_leader()),
        None => (1, true),
    };
    metrics.cluster_nodes.set(i64::try_from(nodes).unwrap_or(i64::MAX));
    metrics.cluster_leader.set(i64::from(leading));
    let tenants = state.store().tenant_names()?;
    metrics.jobs.reset();
    metrics.job_last_success.reset();
    metrics.job_next_fire.reset();
    // Jobs whose last success is read from the store this scrape (once
    // per job and process; a success seen here needs none).
    let mut reads_left = LAST_SUCCESS_READS;
    for tenant in &tenants {
        let mut counts: BTreeMap<&str, i64> = ["active", "paused", "done"]
            .into_iter()
            .map(|state| (state, 0))
            .collect();
        let jobs = state.store().list_jobs(tenant)?;
        // After the jobs, as in the jobs' views.
        let ahead = state.executor().fires_ahead(tenant);
        for job in jobs {
            *counts.entry(job.state()).or_default() += 1;
            if let Some(next) = job.next_fire_or(ahead.get(&job.id).copied()) {
                metrics
                    .job_next_fire
                    .with_label_values(&[tenant.as_str(), job.name.as_str()])
                    .set(next.timestamp_millis() as f64 / 1000.0);
            }
            let last_success = metrics.last_success(tenant, &job.name).or_else(|| {
                reads_left = reads_left.checked_sub(1)?;
                let newest = RunFilter {
                    job_id: Some(job.id.clone()),
                    status: Some(RunStatus::Succeeded),
                    before: None,
                    limit: 1,
                };
                let runs = state.store().list_runs(tenant, &newest).ok()?;
                let found = runs.first().and_then(|run| run.finished_at);
                Some(metrics.read_last_success(tenant, &job.name, found))
            });
            if let Some(seconds) = last_success {
                metrics
                    .job_last_success
                    .with_label_values(&[tenant.as_str(), job.name.as_str()])
                    .set(seconds);
            }
        }
        for (job_state, count) in counts {
            metrics.jobs.with_label_values(&[tenant.as_str(), job_state]).set(count);
        }
    }
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        metrics.render(),
    )
        .into_response())
}
