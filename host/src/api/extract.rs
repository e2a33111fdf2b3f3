//! Request extractors that fail with [`ApiError`] instead of axum's plain
//! text rejections: the caller, JSON bodies (size-capped, time-capped) and
//! query strings; and the budget of requests without a valid token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{ApiError, AppState};
use crate::auth::{AuthError, Principal};

/// What authenticating a request found, once, for [`Caller`].
#[derive(Clone)]
struct Authenticated(Result<Principal, AuthError>);

fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Principal, AuthError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    state.inner.auth.authenticate(header, state.store())
}

/// Middleware: a request without a valid token (none, a wrong one, a
/// revoked one; anonymous routes such as `/healthz` included) takes one
/// from its client address's budget, and is refused with 429 when that is
/// spent. A valid token is never held to it: the tenant's own rate applies.
pub async fn limit_unauthenticated(
    State(state): State<AppState>,
    mut request: Request,
    next: axum::middleware::Next,
) -> Response {
    let found = authenticate(request.headers(), &state);
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(remote)| remote.ip());
    if found.is_err()
        && let Some(remote) = remote
        && let Err(retry_after) = state.inner.unauthenticated.admit(remote, Instant::now())
    {
        state.metrics().unauthenticated_limited();
        return ApiError::unauthenticated_rate_limited(retry_after).into_response();
    }
    request.extensions_mut().insert(Authenticated(found));
    next.run(request).await
}

/// The authenticated caller.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let found = match parts.extensions.get::<Authenticated>() {
            Some(Authenticated(found)) => found.clone(),
            None => authenticate(&parts.headers, state),
        };
        let principal = found?;
        // The admin is not held to a tenant's request rate.
        if !principal.admin
            && let Err(retry_after) = state.tenants().admit(&principal.tenant, std::time::Instant::now())
        {
            return Err(ApiError::rate_limited(&principal.tenant, retry_after));
        }
        Ok(Caller(principal))
    }
}

/// 403 `admin_only` unless the caller holds the admin token.
pub fn require_admin(caller: &Principal) -> Result<(), ApiError> {
    if caller.admin {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "admin_only",
        "this route acts on the whole daemon or on tenants; it needs the admin token",
    ))
}

/// Reads a body up to `limit` bytes; 413 past it, 408 when it has not
/// arrived whole within `timeout` (a client sending a byte now and then
/// would otherwise hold the request open as long as it likes).
pub async fn read_body(body: Body, limit: u64, what: &str, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let Ok(read) = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await else {
        return Err(ApiError::body_timeout(what, timeout));
    };
    match read {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(error) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            let mut too_large = false;
            while let Some(current) = cause {
                too_large |= current.is::<http_body_util::LengthLimitError>();
                cause = current.source();
            }
            if too_large {
                Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("the {what} is larger than the {limit}-byte limit"),
                )
                .closing_connection())
            } else {
                Err(ApiError::bad_request(
                    "unreadable_body",
                    format!("cannot read the {what}: {error}"),
                ))
            }
        }
    }
}

/// A JSON body as a `Value` (an empty body reads as `null`).
pub struct JsonBody(pub Value);

impl FromRequest<AppState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let config = state.config();
        let bytes = read_body(
            request.into_body(),
            config.max_request_bytes,
            "request body",
            config.http.body_timeout,
        )
        .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Null));
        }
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {error}")))
    }
}

/// A query string parsed into `T`, naming the parameter at fault.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|error| ApiError::bad_request("invalid_query", format!("query string: {error}")))
    }
}
