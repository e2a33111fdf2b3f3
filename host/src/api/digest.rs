//! `/v1/digest`: the caller's tenant asks for a summary of its runs by
//! e-mail on a cron line in a zone (`PUT`), shows it (`GET`), stops it
//! (`DELETE`), or has one sent now for the runs since the last one (`POST
//! /v1/digest/send`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody};
use super::state::AppState;
use super::views::{DigestSentView, DigestView};
use crate::model::tenant::Summary;
use crate::model::validate::{ValidationError, check_list};
use crate::timing::Schedule;

/// `PUT /v1/digest`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DigestBody {
    /// When to send it: a cron line ...
    cron: String,
    /// ... in this IANA zone (`UTC` unless given).
    #[serde(default = "utc")]
    timezone: String,
    /// The addresses it goes to (at least one).
    to: Vec<String>,
}

fn utc() -> String {
    "UTC".to_string()
}

fn no_mail() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "email_not_configured",
        "this daemon has no mail server (the admin sets smtp_url), so it cannot send digests",
    )
}

fn no_digest() -> ApiError {
    ApiError::not_found("digest_not_found", "this tenant has no digest; PUT /v1/digest sets one")
}

/// `PUT /v1/digest {"cron", "timezone"?, "to": [addresses]}`.
#[utoipa::path(
    put,
    path = "/v1/digest",
    tag = "digest",
    operation_id = "put_digest",
    request_body(content = DigestBody),
    responses((status = 200, description = "the digest", body = DigestView), (status = 409, description = "no mail server", body = ErrorBody), Refusals)
)]
pub async fn put(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<DigestView>, ApiError> {
    if !state.digests().can_send() {
        return Err(no_mail());
    }
    let request: DigestBody = serde_path_to_error::deserialize(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_field",
            format!(
                "{}: {}; expected {{\"cron\", \"timezone\"?, \"to\": [addresses]}}",
                error.path(),
                error.inner()
            ),
        )
    })?;
    Schedule::from_json(&json!({"cron": request.cron, "timezone": request.timezone}))?;
    if request.to.is_empty() {
        return Err(ValidationError::new("to", "needs at least one address").into());
    }
    check_list("to", &request.to, |address| {
        if crate::mail::is_address(address) {
            Ok(())
        } else {
            Err(format!("{address:?} is not an e-mail address"))
        }
    })?;
    let mut tenant = state.tenant(&caller.tenant)?;
    let previous = tenant.digest.take();
    let digest = Summary {
        cron: request.cron,
        timezone: request.timezone,
        to: request.to,
        since: previous.as_ref().map_or_else(Utc::now, Summary::window_start),
        last_sent_at: previous.and_then(|digest| digest.last_sent_at),
    };
    let view = DigestView::from(&digest);
    tenant.digest = Some(digest);
    state.store().put_tenant(&tenant)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant);
    state.digests().changed();
    Ok(Json(view))
}

/// `GET /v1/digest`.
#[utoipa::path(
    get,
    path = "/v1/digest",
    tag = "digest",
    operation_id = "get_digest",
    responses((status = 200, description = "the digest", body = DigestView), (status = 404, description = "no digest", body = ErrorBody), Refusals)
)]
pub async fn get(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<DigestView>, ApiError> {
    let tenant = state.tenant(&caller.tenant)?;
    tenant
        .digest
        .as_ref()
        .map(|digest| Json(DigestView::from(digest)))
        .ok_or_else(no_digest)
}

/// `DELETE /v1/digest`: 204.
#[utoipa::path(
    delete,
    path = "/v1/digest",
    tag = "digest",
    operation_id = "delete_digest",
    responses((status = 204, description = "stopped"), (status = 404, description = "no digest", body = ErrorBody), Refusals)
)]
pub async fn delete(State(state): State<AppState>, Caller(caller): Caller) -> Result<StatusCode, ApiError> {
    let mut tenant = state.tenant(&caller.tenant)?;
    if tenant.digest.take().is_none() {
        return Err(no_digest());
    }
    state.store().put_tenant(&tenant)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant);
    state.digests().changed();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/digest/send`: mails the digest of the runs since the last one
/// now (the schedule is not moved). 202 once the mail server took it.
#[utoipa::path(
    post,
    path = "/v1/digest/send",
    tag = "digest",
    operation_id = "send_digest",
    responses((status = 202, description = "sent", body = DigestSentView), (status = 404, description = "no digest", body = ErrorBody), (status = 409, description = "no mail server", body = ErrorBody), (status = 502, description = "the mail server failed", body = ErrorBody), Refusals)
)]
pub async fn send_now(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<(StatusCode, Json<DigestSentView>), ApiError> {
    if !state.digests().can_send() {
        return Err(no_mail());
    }
    let tenant = state.tenant(&caller.tenant)?;
    let digest = tenant.digest.as_ref().ok_or_else(no_digest)?;
    let (from, to) = (digest.window_start(), Utc::now());
    state
        .digests()
        .send(&tenant, from, to)
        .await
        .map_err(|problem| ApiError::new(StatusCode::BAD_GATEWAY, "email_failed", problem))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DigestSentView {
            sent_to: digest.to.clone(),
            from,
            to,
        }),
    ))
}
