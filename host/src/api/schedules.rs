//! `POST /v1/schedules/preview`: the next fires of a schedule.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, Refusals};
use super::extract::{Caller, JsonBody};
use super::state::AppState;
use super::views::SchedulePreviewView;
use crate::model::validate::resolve_calendars;
use crate::timing::Schedule;

const DEFAULT_COUNT: usize = 10;
const MAX_COUNT: usize = 1000;

/// `POST /v1/schedules/preview`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    /// A schedule as a job takes it.
    #[schema(value_type = crate::timing::ScheduleJson)]
    schedule: Value,
    /// Fires after this instant (RFC 3339; now unless given).
    from: Option<String>,
    /// How many fires, 1 to 1000 (10 unless given).
    count: Option<usize>,
}

/// `{schedule, from?, count?}` -> `{fires: [...]}` (RFC 3339, UTC; on no
/// excluded date, within the bounds, at most `max_fires`), for a cron line
/// or exclusions in a zone `{timezone, local: [...]}` (the same instants as
/// wall times there, RFC 3339 with the offset), and with a jitter
/// `{due_by: [...]}` (the latest each fire's run is due). Calendars named
/// in `exclude` must be the caller's tenant's.
#[utoipa::path(
    post,
    path = "/v1/schedules/preview",
    tag = "schedules",
    operation_id = "preview_schedule",
    request_body(content = PreviewRequest),
    responses((status = 200, description = "the next fires", body = SchedulePreviewView), Refusals)
)]
pub async fn preview(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<SchedulePreviewView>, ApiError> {
    let request: PreviewRequest = super::extract::body_object(body, r#"{"schedule", "from"?, "count"?}"#)?;
    let mut schedule = Schedule::from_json(&request.schedule)?
        .ok_or_else(|| ApiError::bad_request("invalid_schedule", "schedule: null has no fires; give a schedule"))?;
    if schedule.rules.calendars().next().is_some() {
        let tenant = state.tenants().get(&caller.tenant);
        resolve_calendars(&mut schedule, |name| tenant.as_ref()?.calendar_dates(name))?;
    }
    let from = match request.from {
        Some(text) => super::extract::instant_arg("invalid_field", "from", &text)?,
        None => Utc::now(),
    };
    let count = request.count.unwrap_or(DEFAULT_COUNT);
    if count == 0 || count > MAX_COUNT {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("count: must be from 1 to {MAX_COUNT}"),
        ));
    }
    let instants = schedule.preview(from, count);
    let fires: Vec<String> = instants
        .iter()
        .map(|fire| fire.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .collect();
    let due_by = schedule.rules.jitter.map(|jitter| {
        let latest = jitter.saturating_sub(std::time::Duration::from_millis(1));
        instants
            .iter()
            .map(|fire| {
                crate::units::add_saturating(*fire, latest).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
            })
            .collect()
    });
    let mut answer = SchedulePreviewView {
        fires,
        timezone: None,
        local: None,
        due_by,
    };
    if let Some(zone) = schedule.timezone() {
        let local: Vec<String> = instants
            .iter()
            .map(|fire| {
                fire.with_timezone(&zone)
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
            })
            .collect();
        answer.timezone = Some(zone.name().to_string());
        answer.local = Some(local);
    }
    Ok(Json(answer))
}
