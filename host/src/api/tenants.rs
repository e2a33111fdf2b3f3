//! `/v1/tenants` (admin token only): create and list tenants, and add, list
//! and revoke their tokens. A token's secret is in the answer that makes it
//! and nowhere else.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Caller, JsonBody};
use super::{ApiError, AppState};
use crate::auth::{Principal, new_token, token_hash};
use crate::model::validate::check_name;
use crate::model::{DEFAULT_TENANT, Tenant, Token};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "admin_only",
        "managing tenants and tokens needs the admin token",
    ))
}

fn tenant_view(tenant: &Tenant) -> Value {
    json!({"name": tenant.name, "created_at": tenant.created_at})
}

/// The default tenant exists without being stored.
fn default_tenant() -> Tenant {
    Tenant {
        name: DEFAULT_TENANT.to_string(),
        created_at: chrono::DateTime::UNIX_EPOCH,
    }
}

fn find_tenant(state: &AppState, name: &str) -> Result<Tenant, ApiError> {
    if name == DEFAULT_TENANT {
        return Ok(default_tenant());
    }
    state
        .store()
        .tenant(name)?
        .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant named {name:?}")))
}

/// A new token of `tenant`, and its secret.
fn mint(tenant: &str) -> (Token, String) {
    let secret = new_token("sc");
    let token = Token {
        id: crate::model::new_id(),
        tenant: tenant.to_string(),
        hash: token_hash(&secret),
        created_at: Utc::now(),
        revoked_at: None,
    };
    (token, secret)
}

/// `POST /v1/tenants {"name"}`: 201 with the tenant and its first token.
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let request: NewTenant = serde_json::from_value(body)
        .map_err(|error| ApiError::bad_request("invalid_field", format!("body: {error}; expected {{\"name\"}}")))?;
    check_name(&request.name).map_err(|problem| ApiError::bad_request("invalid_field", format!("name: {problem}")))?;
    if request.name == DEFAULT_TENANT {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tenant_exists",
            format!("the tenant {DEFAULT_TENANT:?} always exists"),
        ));
    }
    let tenant = Tenant {
        name: request.name,
        created_at: Utc::now(),
    };
    let (token, secret) = mint(&tenant.name);
    state.store().insert_tenant(&tenant, &token)?;
    state.store().flush_async().await?;
    tracing::info!(tenant = %tenant.name, "tenant created");
    let body = json!({"tenant": tenant_view(&tenant), "token": secret, "token_id": token.id});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/tenants`.
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let mut tenants = vec![tenant_view(&default_tenant())];
    tenants.extend(state.store().list_tenants()?.iter().map(tenant_view));
    Ok(Json(json!({"tenants": tenants})))
}

/// `GET /v1/tenants/{name}`.
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    Ok(Json(tenant_view(&find_tenant(&state, &name)?)))
}

/// `POST /v1/tenants/{name}/tokens`: 201 with the new token's secret.
pub async fn create_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let tenant = find_tenant(&state, &name)?;
    let (token, secret) = mint(&tenant.name);
    state.store().insert_token(&token)?;
    state.store().flush_async().await?;
    tracing::info!(tenant = %tenant.name, token_id = %token.id, "token created");
    let mut body = token.view();
    body["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /v1/tenants/{name}/tokens`: ids and dates, never secrets.
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller)?;
    let tenant = find_tenant(&state, &name)?;
    let tokens: Vec<Value> = state
        .store()
        .list_tokens(&tenant.name)?
        .iter()
        .map(Token::view)
        .collect();
    Ok(Json(json!({"tokens": tokens})))
}

/// `DELETE /v1/tenants/{name}/tokens/{id}`: revokes it (204).
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_admin(&caller)?;
    let tenant = find_tenant(&state, &name)?;
    if state.store().revoke_token(&tenant.name, &id, Utc::now())?.is_none() {
        return Err(ApiError::not_found(
            "token_not_found",
            format!("tenant {:?} has no token {id:?}", tenant.name),
        ));
    }
    state.store().flush_async().await?;
    tracing::info!(tenant = %tenant.name, token_id = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
