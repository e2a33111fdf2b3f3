//! `/v1/plugins`: upload, list, show, delete. The built-in plugins
//! (`std.*`) are listed and shown with `"builtin": true`; uploading over or
//! deleting one is 403 `builtin_plugin`.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody, Refusals};
use super::extract::{Caller, DISCARD_GRACE, Query, body_too_large, discard_body, read_body};
use super::state::AppState;
use super::views::{PluginList, PluginVersionView, PluginView};
use crate::model::PluginVersion;

#[derive(Deserialize)]
pub struct UploadQuery {
    name: Option<String>,
}

/// A WebAssembly component's bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)] // Only described: the upload reads the body as bytes.
pub struct Component(Vec<u8>);

/// `POST /v1/plugins?name=N` with the component bytes as the body.
#[utoipa::path(
    post,
    path = "/v1/plugins",
    tag = "plugins",
    operation_id = "upload_plugin",
    params(("name" = String, Query, description = "plugin name")),
    request_body(content = Component, content_type = "application/octet-stream", description = "the component bytes (any content type, e.g. application/wasm)"),
    responses((status = 201, description = "a new version", body = PluginVersionView), (status = 200, description = "the same bytes are already a version", body = PluginVersionView), (status = 403, description = "over the plugin_bytes quota (quota_exceeded), or a built-in's name (builtin_plugin)", body = ErrorBody), (status = 413, description = "over the size cap", body = ErrorBody), Refusals)
)]
pub async fn upload(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = query
        .name
        .ok_or_else(|| ApiError::bad_request("invalid_name", "name: the query parameter ?name= is required"))?;
    let quota = state.tenants().quotas(&caller.tenant).plugin_bytes;
    // A body that could not be taken is refused before it is kept (what
    // arrives meanwhile is dropped, see `discard_body`).
    if let Some(declared) = declared_length(&headers) {
        let limit = state.plugins().max_bytes();
        let refused = if declared > limit {
            Some(body_too_large("plugin", limit))
        } else {
            let checked = state
                .plugins()
                .check_declared_size(&caller.tenant, &name, declared, quota);
            checked.err().map(|error| ApiError::from(error).closing_connection())
        };
        if let Some(refused) = refused {
            discard_body(body, DISCARD_GRACE).await;
            return Err(refused);
        }
    }
    let bytes = read_body(
        body,
        state.plugins().max_bytes(),
        "plugin",
        state.config().http.body_timeout,
    )
    .await?;
    let uploaded = state.plugins().upload(&caller.tenant, &name, bytes, quota).await?;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(PluginVersionView::from(&uploaded.version))).into_response())
}

/// The body's length as its `Content-Length` says, if it says one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// `GET /v1/plugins`.
#[utoipa::path(
    get,
    path = "/v1/plugins",
    tag = "plugins",
    operation_id = "list_plugins",
    responses((status = 200, description = "every plugin with its versions, the built-ins (builtin: true) among them", body = PluginList), Refusals)
)]
pub async fn list(State(state): State<AppState>, Caller(caller): Caller) -> Result<Json<PluginList>, ApiError> {
    let mut by_name: BTreeMap<String, Vec<PluginVersion>> = BTreeMap::new();
    for version in state.plugins().list(&caller.tenant)? {
        by_name.entry(version.name.clone()).or_default().push(version);
    }
    let plugins = by_name
        .iter()
        .map(|(name, versions)| PluginView::new(name, versions))
        .collect();
    Ok(Json(PluginList::new(plugins)))
}

/// `GET /v1/plugins/{name}`.
#[utoipa::path(
    get,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "get_plugin",
    params(("name" = String, Path, description = "name")),
    responses((status = 200, description = "the plugin's versions", body = PluginView), (status = 404, description = "no such plugin", body = ErrorBody), Refusals)
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<PluginView>, ApiError> {
    let versions = state.plugins().versions(&caller.tenant, &name)?;
    Ok(Json(PluginView::new(&name, &versions)))
}

/// `DELETE /v1/plugins/{name}`: 409 while a job uses it, 403 for a built-in.
#[utoipa::path(
    delete,
    path = "/v1/plugins/{name}",
    tag = "plugins",
    operation_id = "delete_plugin",
    params(("name" = String, Path, description = "name")),
    responses((status = 204, description = "deleted"), (status = 403, description = "a built-in plugin (builtin_plugin)", body = ErrorBody), (status = 404, description = "no such plugin", body = ErrorBody), (status = 409, description = "a job uses it", body = ErrorBody), Refusals)
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.plugins().delete(&caller.tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
