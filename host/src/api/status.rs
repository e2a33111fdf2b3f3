//! `/v1/status` and `/v1/scheduler/pause|resume`: what the daemon is doing.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::extract::{Caller, require_admin};
use super::{ApiError, AppState};

/// How many upcoming fires `/v1/status` lists.
const NEXT_FIRES: usize = 10;

/// `GET /v1/status`: scheduler state, queue depth, runs, jobs and next
/// fires; the runs and queue of the caller's tenant (the admin's: all).
pub async fn status(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<Value>, ApiError> {
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
    let next_fires: Vec<Value> = upcoming
        .iter()
        .take(NEXT_FIRES)
        .map(|(at, name)| json!({"job": name, "at": at}))
        .collect();
    Ok(Json(json!({
        "scheduler": if state.scheduler().is_paused() { "paused" } else { "running" },
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": state.inner.started_at,
        "running_runs": state.executor().running_of(scope),
        "queue_depth": depth,
        "queue_depth_by_priority": by_priority,
        "max_concurrent_runs": state.config().max_concurrent_runs,
        "jobs": jobs.len(),
        "jobs_paused": jobs.iter().filter(|job| !job.enabled).count(),
        "next_fires": next_fires,
    })))
}

/// `POST /v1/scheduler/pause` (admin): no schedule fires until resumed.
pub async fn pause(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    state.scheduler().pause().await?;
    state.store().flush_async().await?;
    tracing::info!("scheduler paused");
    Ok(Json(json!({"scheduler": "paused"})))
}

/// `POST /v1/scheduler/resume` (admin): fires again; missed fires follow
/// each job's misfire policy.
pub async fn resume(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    state.scheduler().resume();
    tracing::info!("scheduler resumed");
    Ok(Json(json!({"scheduler": "running"})))
}
