//! `/v1/calendars`: a tenant's named sets of dates (holidays) that its
//! jobs' schedules exclude by name (`"exclude": ["holidays"]`). Setting a
//! calendar moves the next fires of the jobs that exclude it; one in use
//! cannot be deleted.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody};
use super::state::AppState;
use super::views::{CalendarList, CalendarView};
use crate::model::tenant::Calendar;
use crate::model::validate::ValidationError;
use crate::timing::rules::{is_calendar_name, parse_spans};

/// The longest description.
const MAX_DESCRIPTION: usize = 1024;

/// Held by a calendar's write, from the read of its tenant's record to the
/// jobs moved by it: two writes at once would each write back the record
/// without the other's calendar.
static WRITING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `PUT /v1/calendars/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CalendarBody {
    /// Local dates (`"2026-12-25"`) and ranges (`"2026-12-24..2026-12-26"`,
    /// both ends included), at most 1000; each schedule reads them in its
    /// own zone.
    dates: Vec<String>,
    /// What it is for.
    #[serde(default)]
    description: Option<String>,
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(
        "calendar_not_found",
        format!("no calendar named {name:?}; PUT /v1/calendars/{name} makes one"),
    )
}

/// The names of the tenant's jobs whose schedules exclude `name`.
fn users(state: &AppState, tenant: &str, name: &str) -> Result<Vec<String>, ApiError> {
    Ok(state
        .store()
        .list_jobs(tenant)?
        .into_iter()
        .filter(|job| {
            job.schedule
                .as_ref()
                .is_some_and(|schedule| schedule.rules.calendars().any(|used| used == name))
        })
        .map(|job| job.name)
        .collect())
}

fn view(state: &AppState, tenant: &str, name: &str, calendar: &Calendar) -> Result<CalendarView, ApiError> {
    Ok(CalendarView::new(name, calendar, users(state, tenant, name)?))
}

/// `PUT /v1/calendars/{name} {"dates": [...], "description"?}`: sets the
/// calendar and moves the next fires of the jobs that exclude it.
#[utoipa::path(
    put,
    path = "/v1/calendars/{name}",
    tag = "calendars",
    operation_id = "put_calendar",
    params(("name" = String, Path, description = "a letter, then letters, digits, '.', '_', '-'")),
    request_body(content = CalendarBody),
    responses((status = 200, description = "the calendar", body = CalendarView), Refusals)
)]
pub async fn put(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<CalendarView>, ApiError> {
    if !is_calendar_name(&name) {
        return Err(ValidationError::new(
            "name",
            format!("{name:?} is not a calendar name: a letter, then up to 63 of letters, digits, '.', '_' and '-'"),
        )
        .into());
    }
    let request: CalendarBody = super::extract::body_object(body, r#"{"dates": [...], "description"?}"#)?;
    let dates =
        parse_spans("dates", &request.dates).map_err(|(field, message)| ValidationError::new(field, message))?;
    if request
        .description
        .as_ref()
        .is_some_and(|description| description.len() > MAX_DESCRIPTION)
    {
        return Err(ValidationError::new("description", format!("at most {MAX_DESCRIPTION} bytes")).into());
    }
    let _writing = WRITING.lock().await;
    let mut tenant = state.tenant(&caller.tenant)?;
    let calendar = Calendar {
        dates,
        description: request.description,
        updated_at: Utc::now(),
    };
    tenant.calendars.insert(name.clone(), calendar.clone());
    state.store().put_tenant(&tenant)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant);
    let moved = state.jobs().calendar_changed(&caller.tenant, &name).await?;
    if !moved.is_empty() {
        tracing::info!(tenant = %caller.tenant, calendar = %name, jobs = moved.len(), "calendar set; its jobs' next fires moved");
    }
    Ok(Json(view(&state, &caller.tenant, &name, &calendar)?))
}

/// `GET /v1/calendars`.
#[utoipa::path(
    get,
    path = "/v1/calendars",
    tag = "calendars",
    operation_id = "list_calendars",
    responses((status = 200, description = "the tenant's calendars", body = CalendarList), Refusals)
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<CalendarList>, ApiError> {
    let tenant = state.tenant(&caller.tenant)?;
    let calendars = tenant
        .calendars
        .iter()
        .map(|(name, calendar)| view(&state, &caller.tenant, name, calendar))
        .collect::<Result<_, _>>()?;
    Ok(Json(CalendarList { calendars }))
}

/// `GET /v1/calendars/{name}`.
#[utoipa::path(
    get,
    path = "/v1/calendars/{name}",
    tag = "calendars",
    operation_id = "get_calendar",
    params(("name" = String, Path, description = "the calendar's name")),
    responses((status = 200, description = "the calendar", body = CalendarView), (status = 404, description = "no such calendar", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<CalendarView>, ApiError> {
    let tenant = state.tenant(&caller.tenant)?;
    let calendar = tenant.calendars.get(&name).ok_or_else(|| not_found(&name))?;
    Ok(Json(view(&state, &caller.tenant, &name, calendar)?))
}

/// `DELETE /v1/calendars/{name}`: 204; refused (409) while a job's schedule
/// excludes it.
#[utoipa::path(
    delete,
    path = "/v1/calendars/{name}",
    tag = "calendars",
    operation_id = "delete_calendar",
    params(("name" = String, Path, description = "the calendar's name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such calendar", body = ErrorBody), (status = 409, description = "jobs exclude it", body = ErrorBody), Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let _writing = WRITING.lock().await;
    let mut tenant = state.tenant(&caller.tenant)?;
    if !tenant.calendars.contains_key(&name) {
        return Err(not_found(&name));
    }
    let used_by = users(&state, &caller.tenant, &name)?;
    if !used_by.is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "calendar_in_use",
            format!(
                "calendar {name:?} is excluded by the schedules of jobs {}; change them first",
                used_by.join(", ")
            ),
        ));
    }
    tenant.calendars.remove(&name);
    state.store().put_tenant(&tenant)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant);
    Ok(StatusCode::NO_CONTENT)
}
