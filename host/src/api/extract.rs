//! Request extractors that fail with [`ApiError`] instead of axum's plain
//! text rejections: the caller, JSON bodies (size-capped, time-capped,
//! strict: a key given twice in one object is refused rather than the last
//! one silently winning) and query strings; and the budget of requests
//! without a valid token.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;
use super::state::AppState;
use crate::auth::{AuthError, Principal};

/// What authenticating a request found, once, for [`Caller`].
#[derive(Clone)]
struct Authenticated(Result<Principal, AuthError>);

fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Principal, AuthError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    state.auth().authenticate(header, state.store())
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
        && let Err(retry_after) = state.unauthenticated().admit(remote, Instant::now())
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

/// How long a body refused before it was read is still read (and dropped).
pub const DISCARD_GRACE: Duration = Duration::from_secs(1);

/// Reads and drops what arrives of a body for up to `grace`. A refusal
/// sent before the body was read, then a close, would otherwise meet the
/// rest of the body in the socket: the kernel resets the connection, and
/// the client may lose the answer to a broken pipe. Nothing is kept, so a
/// large body costs its transfer, not memory.
pub async fn discard_body(mut body: Body, grace: Duration) {
    use http_body_util::BodyExt;
    let drain = async { while let Some(Ok(_)) = body.frame().await {} };
    let _ = tokio::time::timeout(grace, drain).await;
}

/// 413 `body_too_large`: the body is (or says it is) past `limit` bytes; the
/// connection is closed after the answer, the rest of the body unread.
pub fn body_too_large(what: &str, limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the {what} is larger than the {limit}-byte limit"),
    )
    .closing_connection()
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
                Err(body_too_large(what, limit as u64))
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
        strict_json(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {error}")))
    }
}

/// Parses JSON into a `Value`, refusing an object that names a key twice
/// (which `serde_json` would take as its last value, so what one reader of
/// the body sees differs from another).
pub fn strict_json(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let StrictValue(value) = serde::Deserialize::deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// A JSON value built by a visitor that checks each object's keys.
struct StrictValue(Value);

impl<'de> serde::Deserialize<'de> for StrictValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_string()))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(StrictValue(value)) = items.next_element()? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            let StrictValue(value) = entries.next_value()?;
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "the key {key:?} appears twice in one object"
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A JSON body read into `T`, which must be an object: serde would also
/// fill a struct from an array (`[1]`), field by position. `shape` says
/// what is expected, e.g. `{"input"?}`; a refusal names the field at fault
/// (`body` for the whole).
pub fn body_object<T: DeserializeOwned>(body: Value, shape: &str) -> Result<T, ApiError> {
    if !body.is_object() {
        let kind = match body {
            Value::Null => "empty",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("body: is {kind}; expected an object {shape}"),
        ));
    }
    serde_path_to_error::deserialize(body).map_err(|error| {
        let path = error.path().to_string();
        let field = if path == "." { "body".to_string() } else { path };
        ApiError::bad_request("invalid_field", format!("{field}: {}; expected {shape}", error.inner()))
    })
}

/// An RFC 3339 instant the caller sent as `field`, or 400 with `code`
/// (`invalid_field` in a body, `invalid_query` in a query string).
pub fn instant_arg(code: &'static str, field: &str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| ApiError::bad_request(code, format!("{field}: {text:?} is not RFC 3339 ({error})")))
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

/// The longest `?wait=` a call may ask for.
pub const MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(300);
/// A page of a listing when `limit` is not given, and the most it may be.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 500;

/// A `?wait=` duration (`30s`), at most [`MAX_WAIT`].
pub fn wait_query(wait: Option<&str>) -> Result<Option<std::time::Duration>, ApiError> {
    let Some(text) = wait else {
        return Ok(None);
    };
    let wait = crate::units::parse_duration(text)
        .map_err(|message| ApiError::bad_request("invalid_query", format!("wait: {message}")))?;
    if wait > MAX_WAIT {
        return Err(ApiError::bad_request("invalid_query", "wait: the longest wait is 5m"));
    }
    Ok(Some(wait))
}

/// A listing's `?limit=` (default [`DEFAULT_PAGE`], 1 to [`MAX_PAGE`]) and
/// `?cursor=` (an id this API returned as `next_cursor`).
pub fn page_query(limit: Option<usize>, cursor: Option<&str>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("limit: must be from 1 to {MAX_PAGE}"),
        ));
    }
    if let Some(cursor) = cursor
        && (cursor.len() != 26 || !cursor.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return Err(ApiError::bad_request(
            "invalid_query",
            "cursor: not a cursor returned by this API",
        ));
    }
    Ok(limit)
}

/// The optional body of a run asked for (`POST /v1/jobs/{id}/run`,
/// `POST /v1/workflows/{name}/run`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// Any JSON, handed to the run (a workflow's root steps) instead of the
    /// job's (the workflow's) input.
    #[serde(default)]
    pub input: Option<Value>,
}

/// The `input` of a run's optional body (null: none), at most
/// `max_bytes` of JSON.
pub fn run_input(body: Value, max_bytes: usize) -> Result<Option<Value>, ApiError> {
    if body.is_null() {
        return Ok(None);
    }
    let body: RunBody = body_object(body, r#"{"input"?}"#)?;
    if let Some(input) = &body.input {
        let size = crate::model::job::input_bytes(input).len();
        if size > max_bytes {
            return Err(ApiError::bad_request(
                "invalid_field",
                format!("input: is {size} bytes; the limit is {max_bytes}"),
            ));
        }
    }
    Ok(body.input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_bodies_are_parsed_strictly() {
        let cases: &[(&str, Result<Value, &str>, &str)] = &[
            (
                r#"{"a": 1, "b": [true, null, "x", 1.5, -2]}"#,
                Ok(serde_json::json!({"a": 1, "b": [true, null, "x", 1.5, -2]})),
                "a plain body",
            ),
            (
                r#"{"name": "a", "name": "b"}"#,
                Err("\"name\" appears twice"),
                "a duplicate key",
            ),
            (
                r#"{"x": {"k": 1, "k": 2}}"#,
                Err("\"k\" appears twice"),
                "a duplicate key in a nested object",
            ),
            (
                r#"[{"k": 1}, {"k": 2}]"#,
                Ok(serde_json::json!([{"k": 1}, {"k": 2}])),
                "the same key in two objects",
            ),
            (r#"{"a": 1} x"#, Err("trailing characters"), "trailing bytes"),
            (r#"{"a": "#, Err("EOF"), "a cut body"),
        ];
        for (text, expected, what) in cases {
            match (strict_json(text.as_bytes()), expected) {
                (Ok(value), Ok(expected)) => assert_eq!(&value, expected, "{what}"),
                (Err(error), Err(needle)) => assert!(error.to_string().contains(needle), "{what}: {error}"),
                (got, _) => panic!("{what}: got {got:?}"),
            }
        }
    }

    #[test]
    fn a_body_that_must_be_an_object_refuses_an_array() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Body {
            input: Option<Value>,
        }
        let refused = body_object::<Body>(serde_json::json!([1]), r#"{"input"?}"#).unwrap_err();
        assert_eq!(refused.code(), "invalid_field");
        assert!(body_object::<Body>(serde_json::json!({"input": 1}), "").is_ok());
    }
}
