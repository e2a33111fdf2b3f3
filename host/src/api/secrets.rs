//! `/v1/secrets`: a tenant's secrets. A value goes in and never comes back
//! out: answers carry names and dates only; a job reads a value only when
//! it lists the name in `secrets`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody};
use super::state::AppState;
use super::views::{SecretList, SecretView, WebhookSecretView};
use crate::model::SecretRecord;
use crate::model::validate::check_name;

/// Largest secret value, bytes.
const MAX_SECRET_BYTES: usize = 64 << 10;

/// `PUT /v1/secrets/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SecretBody {
    /// The secret, 1 to 64 KiB; it is never shown again.
    value: String,
}

fn checked_name(name: &str) -> Result<(), ApiError> {
    check_name(name).map_err(|problem| ApiError::bad_request("invalid_name", format!("name: {problem}")))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found("secret_not_found", format!("no secret named {name:?}"))
}

/// `PUT /v1/secrets/{name} {"value"}`: 201 when new, 200 when replaced;
/// the answer shows the name and dates, not the value.
#[utoipa::path(
    put,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "put_secret",
    params(("name" = String, Path, description = "name")),
    request_body(content = SecretBody),
    responses((status = 200, description = "replaced", body = SecretView), (status = 201, description = "created", body = SecretView), Refusals)
)]
pub async fn put(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    checked_name(&name)?;
    // serde's message never holds a string value, only its type.
    let SecretBody { value } = super::extract::body_object(body, r#"{"value": "<text>"}"#)?;
    if value.is_empty() || value.len() > MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!(
                "value: is {} bytes; a secret is 1 to {MAX_SECRET_BYTES} bytes",
                value.len()
            ),
        ));
    }
    let existing = state.store().secret(&caller.tenant, &name)?;
    let now = Utc::now();
    let (nonce, sealed) = state.vault().seal(&caller.tenant, &name, &value);
    let record = SecretRecord {
        tenant: caller.tenant.clone(),
        name,
        nonce,
        sealed,
        created_at: existing.as_ref().map_or(now, |existing| existing.created_at),
        updated_at: now,
    };
    state.store().put_secret(&record)?;
    state.store().flush_async().await?;
    tracing::info!(tenant = %record.tenant, secret = %record.name, "secret set");
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(SecretView::from(&record))).into_response())
}

/// `GET /v1/secrets`: names and dates.
#[utoipa::path(
    get,
    path = "/v1/secrets",
    tag = "secrets",
    operation_id = "list_secrets",
    responses((status = 200, description = "names and dates", body = SecretList), Refusals)
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<SecretList>, ApiError> {
    let secrets = state.store().list_secrets(&caller.tenant)?;
    Ok(Json(SecretList::new(&secrets)))
}

/// `GET /v1/secrets/{name}`: its name and dates.
#[utoipa::path(
    get,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "get_secret",
    params(("name" = String, Path, description = "name")),
    responses((status = 200, description = "name and dates", body = SecretView), (status = 404, description = "no such secret", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<SecretView>, ApiError> {
    checked_name(&name)?;
    let record = state
        .store()
        .secret(&caller.tenant, &name)?
        .ok_or_else(|| not_found(&name))?;
    Ok(Json(SecretView::from(&record)))
}

/// `DELETE /v1/secrets/{name}`: 204; jobs granted it read none from then on.
#[utoipa::path(
    delete,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    operation_id = "delete_secret",
    params(("name" = String, Path, description = "name")),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such secret", body = ErrorBody), Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    checked_name(&name)?;
    if !state.store().delete_secret(&caller.tenant, &name)? {
        return Err(not_found(&name));
    }
    state.store().flush_async().await?;
    tracing::info!(tenant = %caller.tenant, secret = %name, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/webhooks/secret`: the key the tenant's webhook deliveries are
/// signed with (HMAC-SHA256 of `<timestamp>.<body>`, keyed with this text).
#[utoipa::path(
    get,
    path = "/v1/webhooks/secret",
    tag = "secrets",
    operation_id = "get_webhook_secret",
    responses((status = 200, description = "the webhook signing secret", body = WebhookSecretView), Refusals)
)]
pub async fn webhook_secret(State(state): State<AppState>, Caller(caller): Caller) -> Json<WebhookSecretView> {
    Json(WebhookSecretView {
        secret: crate::notify::signing_secret(state.vault(), &caller.tenant),
        signature_header: "X-Sandcron-Signature".to_string(),
        timestamp_header: "X-Sandcron-Timestamp".to_string(),
        scheme: "sha256=hex(HMAC-SHA256(secret, timestamp + \".\" + body))".to_string(),
    })
}
