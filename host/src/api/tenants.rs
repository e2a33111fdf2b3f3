//! `/v1/tenants` (admin token only): create and list tenants, and add, list
//! and revoke their tokens. A token's secret is in the answer that makes it
//! and nowhere else.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, JsonBody, require_admin};
use super::state::AppState;
use super::views::{
    NewTenantView, NewTokenView, QuotasView, TenantList, TenantUsageView, TenantView, TenantWithUsageView, TokenList,
};
use crate::auth::{new_token, token_hash};
use crate::model::validate::{check_host_pattern, check_list, check_name, merge_patch};
use crate::model::{DEFAULT_TENANT, Quotas, Tenant, Token};
use crate::tenancy::implicit_default;

/// `POST /v1/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    /// Its name (also its id).
    name: String,
    /// Its quotas over those of a new tenant (sizes as bytes or `"64MiB"`,
    /// `max_timeout` as seconds or `"30s"`; null is no limit).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quotas: Option<Value>,
    /// Host patterns its jobs' `http_allow` must fall within.
    #[serde(default)]
    http_allow: Option<Vec<String>>,
}

/// Quotas given over the API, merged (RFC 7386) over `base`.
fn merged_quotas(base: &Quotas, patch: Option<&Value>) -> Result<Quotas, ApiError> {
    let Some(patch) = patch else {
        return Ok(*base);
    };
    if !patch.is_object() {
        return Err(ApiError::bad_request("invalid_field", "quotas: must be an object"));
    }
    let mut view = serde_json::to_value(QuotasView::from(base)).expect("quotas always serialize");
    merge_patch(&mut view, patch);
    Ok(Quotas::from_json(&view)?)
}

fn checked_http_allow(patterns: Option<Vec<String>>) -> Result<Option<Vec<String>>, ApiError> {
    if let Some(patterns) = &patterns {
        check_list("http_allow", patterns, check_host_pattern)?;
    }
    Ok(patterns)
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
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    operation_id = "create_tenant",
    request_body(content = NewTenant),
    responses((status = 201, description = "the tenant and its first token", body = NewTenantView), (status = 403, description = "admin only", body = ErrorBody), (status = 409, description = "the name is taken", body = ErrorBody), Refusals)
)]
pub async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let request: NewTenant = super::extract::body_object(body, r#"{"name", "quotas"?, "http_allow"?}"#)?;
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
        quotas: merged_quotas(&Quotas::for_new_tenant(), request.quotas.as_ref())?,
        http_allow: checked_http_allow(request.http_allow)?,
        digest: None,
        calendars: Default::default(),
    };
    let (token, secret) = mint(&tenant.name);
    state.store().insert_tenant(&tenant, &token)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant.clone());
    tracing::info!(tenant = %tenant.name, "tenant created");
    Ok((StatusCode::CREATED, Json(NewTenantView::new(&tenant, &token, secret))).into_response())
}

/// `GET /v1/tenants`.
#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "tenants",
    operation_id = "list_tenants",
    responses((status = 200, description = "the tenants", body = TenantList), (status = 403, description = "admin only", body = ErrorBody), Refusals)
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<TenantList>, ApiError> {
    require_admin(&caller)?;
    let mut tenants = state.store().list_tenants()?;
    if !tenants.iter().any(|tenant| tenant.name == DEFAULT_TENANT) {
        tenants.insert(0, implicit_default());
    }
    Ok(Json(TenantList::new(&tenants)))
}

/// `GET /v1/tenants/{name}`: the tenant, its quotas and what it uses.
#[utoipa::path(
    get,
    path = "/v1/tenants/{name}",
    tag = "tenants",
    operation_id = "get_tenant",
    params(("name" = String, Path, description = "name")),
    responses((status = 200, description = "the tenant with its usage", body = TenantWithUsageView), (status = 403, description = "admin only", body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<TenantWithUsageView>, ApiError> {
    require_admin(&caller)?;
    let tenant = state.tenant(&name)?;
    let store = state.store();
    let usage = TenantUsageView {
        plugin_bytes: store.plugin_usage(&tenant.name)?,
        jobs: store.list_jobs(&tenant.name)?.len(),
        kv_bytes: store.kv_usage(&tenant.name)?,
        secrets: store.list_secrets(&tenant.name)?.len(),
        queued_runs: state.executor().waiting_of(&tenant.name),
        run_bytes: store.run_bytes(&tenant.name)?,
    };
    Ok(Json(TenantWithUsageView::new(&tenant, usage)))
}

/// `PATCH /v1/tenants/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TenantPatch {
    /// Merged over its quotas (RFC 7386): null removes a limit.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    quotas: Option<Value>,
    /// Absent: unchanged; null: no cap; a list: the cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    http_allow: Option<Option<Vec<String>>>,
}

/// Tells a field given as null from one left out.
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<Vec<String>>>, D::Error> {
    Option::<Vec<String>>::deserialize(deserializer).map(Some)
}

/// `PATCH /v1/tenants/{name} {"quotas"?, "http_allow"?}`: quotas are
/// merged (null removes a limit); `http_allow` is replaced (null: no cap).
/// Takes effect at once, for runs already queued too.
#[utoipa::path(
    patch,
    path = "/v1/tenants/{name}",
    tag = "tenants",
    operation_id = "patch_tenant",
    params(("name" = String, Path, description = "name")),
    request_body(content = TenantPatch),
    responses((status = 200, description = "the tenant", body = TenantView), (status = 403, description = "admin only", body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), Refusals)
)]
pub async fn patch(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<TenantView>, ApiError> {
    require_admin(&caller)?;
    let mut tenant = state.tenant(&name)?;
    let request: TenantPatch = super::extract::body_object(body, r#"{"quotas"?, "http_allow"?}"#)?;
    tenant.quotas = merged_quotas(&tenant.quotas, request.quotas.as_ref())?;
    if let Some(http_allow) = request.http_allow {
        tenant.http_allow = checked_http_allow(http_allow)?;
    }
    state.store().put_tenant(&tenant)?;
    state.store().flush_async().await?;
    state.tenants().put(tenant.clone());
    state.executor().wake();
    tracing::info!(tenant = %tenant.name, "tenant changed");
    Ok(Json(TenantView::from(&tenant)))
}

/// `POST /v1/tenants/{name}/tokens`: 201 with the new token's secret.
#[utoipa::path(
    post,
    path = "/v1/tenants/{name}/tokens",
    tag = "tenants",
    operation_id = "create_token",
    params(("name" = String, Path, description = "name")),
    responses((status = 201, description = "a new token, shown once", body = NewTokenView), (status = 403, description = "admin only", body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), Refusals)
)]
pub async fn create_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    require_admin(&caller)?;
    let tenant = state.tenant(&name)?;
    let (token, secret) = mint(&tenant.name);
    state.store().insert_token(&token)?;
    state.store().flush_async().await?;
    tracing::info!(tenant = %tenant.name, token_id = %token.id, "token created");
    Ok((StatusCode::CREATED, Json(NewTokenView::new(&token, secret))).into_response())
}

/// `GET /v1/tenants/{name}/tokens`: ids and dates, never secrets.
#[utoipa::path(
    get,
    path = "/v1/tenants/{name}/tokens",
    tag = "tenants",
    operation_id = "list_tokens",
    params(("name" = String, Path, description = "name")),
    responses((status = 200, description = "ids and dates", body = TokenList), (status = 403, description = "admin only", body = ErrorBody), (status = 404, description = "no such tenant", body = ErrorBody), Refusals)
)]
pub async fn list_tokens(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<TokenList>, ApiError> {
    require_admin(&caller)?;
    let tenant = state.tenant(&name)?;
    let tokens = state.store().list_tokens(&tenant.name)?;
    Ok(Json(TokenList::new(&tokens)))
}

/// `DELETE /v1/tenants/{name}/tokens/{id}`: revokes it (204).
#[utoipa::path(
    delete,
    path = "/v1/tenants/{name}/tokens/{id}",
    tag = "tenants",
    operation_id = "revoke_token",
    params(("name" = String, Path, description = "name"), ("id" = String, Path, description = "token id")),
    responses((status = 204, description = "revoked"), (status = 403, description = "admin only", body = ErrorBody), (status = 404, description = "no such tenant or token", body = ErrorBody), Refusals)
)]
pub async fn revoke_token(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path((name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    require_admin(&caller)?;
    let tenant = state.tenant(&name)?;
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
