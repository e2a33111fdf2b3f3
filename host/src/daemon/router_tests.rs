//! The assembled router in process (`tower::ServiceExt::oneshot`, no socket): status
//! codes and error bodies of a few routes, and the OpenAPI document's
//! shape. The black-box suite in `tests/` drives the real binary.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::Daemon;
use crate::api::{AppState, router};
use crate::auth::Auth;
use crate::clock::SystemClock;
use crate::config::Config;

const ADMIN_TOKEN: &str = "sc_admin_router_tests";

/// A router over a daemon opened on a fresh data directory (nothing
/// started: no run executes).
struct App {
    router: axum::Router,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl App {
    fn new() -> App {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(ADMIN_TOKEN.to_string()),
            ..Config::default()
        };
        let daemon = Daemon::open(&config, Arc::new(SystemClock)).unwrap();
        let auth = Auth::for_config(&config).unwrap();
        App {
            router: router(AppState::new(daemon.into_app_parts(auth, config))),
            _dir: dir,
        }
    }

    async fn call_as(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body.to_string())
            }
            None => Body::empty(),
        };
        let response = self.router.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(ADMIN_TOKEN), method, path, body).await
    }
}

/// Asserts the answer is `status` with the error body of `code`, and
/// returns its message.
fn error_of(answer: &Answer, status: StatusCode, code: &str) -> String {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.content_type, "application/json", "{}", answer.body);
    assert_eq!(answer.body["error"]["code"], code, "{}", answer.body);
    let error = answer.body["error"].as_object().unwrap();
    assert_eq!(error.len(), 2, "only code and message: {}", answer.body);
    answer.body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_request_without_a_valid_token_is_401_unauthorized() {
    let app = App::new();
    let missing = app.call_as(None, "GET", "/v1/jobs", None).await;
    let message = error_of(&missing, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(message.contains("Authorization: Bearer"), "{message}");
    let wrong = app.call_as(Some("sc_wrong"), "GET", "/v1/status", None).await;
    error_of(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    // The public routes need none.
    assert_eq!(app.call_as(None, "GET", "/healthz", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_job_is_404_job_not_found_naming_it() {
    let app = App::new();
    for (method, path) in [
        ("GET", "/v1/jobs/nightly"),
        ("DELETE", "/v1/jobs/nightly"),
        ("POST", "/v1/jobs/nightly/pause"),
        ("GET", "/v1/runs?job=nightly"),
    ] {
        let answer = app.call(method, path, None).await;
        let message = error_of(&answer, StatusCode::NOT_FOUND, "job_not_found");
        assert!(message.contains("nightly"), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn a_bad_field_is_400_invalid_field_naming_the_field() {
    let app = App::new();
    let job = json!({"name": "nightly", "plugin": "std.http", "limits": {"timeout": "soon"}});
    let answer = app.call("POST", "/v1/jobs", Some(job)).await;
    let message = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(message.starts_with("limits.timeout: "), "{message}");
    let preview = json!({"schedule": {"every": "1m"}, "count": 0});
    let answer = app.call("POST", "/v1/schedules/preview", Some(preview)).await;
    let message = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(message.starts_with("count: "), "{message}");
    let answer = app.call("PUT", "/v1/secrets/key", Some(json!({"value": ""}))).await;
    let message = error_of(&answer, StatusCode::BAD_REQUEST, "invalid_field");
    assert!(message.starts_with("value: "), "{message}");
}

#[tokio::test]
async fn an_unknown_route_is_404_and_a_wrong_method_405_with_the_error_body() {
    let app = App::new();
    let answer = app.call("GET", "/v1/nothing", None).await;
    let message = error_of(&answer, StatusCode::NOT_FOUND, "route_not_found");
    assert!(message.contains("/v1/nothing"), "{message}");
    let answer = app.call("DELETE", "/v1/status", None).await;
    let message = error_of(&answer, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(message.contains("DELETE"), "{message}");
}

#[tokio::test]
async fn a_created_job_answers_201_and_reads_back_as_the_same_view() {
    let app = App::new();
    let job = json!({"name": "nightly", "plugin": "std.http", "schedule": {"every": "1h"}, "labels": {"team": "a"}});
    let created = app.call("POST", "/v1/jobs", Some(job.clone())).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["state"], "active");
    assert!(created.body.get("tenant").is_none(), "{}", created.body);
    let shown = app.call("GET", "/v1/jobs/nightly", None).await;
    assert_eq!((shown.status, &shown.body), (StatusCode::OK, &created.body));
    let listed = app.call("GET", "/v1/jobs?label=team=a", None).await;
    assert_eq!(listed.body, json!({"jobs": [created.body]}));
    let taken = app.call("POST", "/v1/jobs", Some(job)).await;
    error_of(&taken, StatusCode::CONFLICT, "name_taken");
}

#[tokio::test]
async fn the_document_names_every_operation_once_and_types_its_answers() {
    let app = App::new();
    let answer = app.call_as(None, "GET", "/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.body;
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let mut ids = HashSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no id"));
            assert!(ids.insert(id.to_string()), "{id} names two operations");
            for (status, response) in operation["responses"].as_object().unwrap() {
                let Some(schema) = response.pointer("/content/application~1json/schema") else {
                    continue;
                };
                // Every JSON body is a named type (the document itself aside).
                let reference = schema["$ref"].as_str();
                if path != "/openapi.json" {
                    assert!(reference.is_some(), "{method} {path} {status}: {schema}");
                }
                if let Some(reference) = reference {
                    let name = reference.trim_start_matches("#/components/schemas/");
                    assert!(schemas.contains_key(name), "{method} {path} {status}: {reference}");
                }
            }
        }
    }
    for id in [
        "get_job",
        "list_jobs",
        "get_run",
        "list_runs",
        "get_health",
        "get_openapi",
    ] {
        assert!(ids.contains(id), "{id}");
    }
    // Errors everywhere are the one error body.
    let not_found = &document["paths"]["/v1/jobs/{id}"]["get"]["responses"]["404"];
    assert_eq!(
        not_found["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
}
