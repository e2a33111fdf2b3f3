//! The OpenAPI document: generated from the handlers, it covers every
//! route, and the running daemon's answers conform to it: schemathesis
//! (from PyPI) generates requests for every operation from the document and
//! checks each answer (no server error, a documented status, the documented
//! content type, headers and body schema).

mod common;

use std::process::Command;

use common::{TestDaemon, repo_root};
use reqwest::Method;

/// (method, path) of every route.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/"),
    ("get", "/healthz"),
    ("get", "/openapi.json"),
    ("get", "/metrics"),
    ("post", "/v1/plugins"),
    ("get", "/v1/plugins"),
    ("get", "/v1/plugins/{name}"),
    ("delete", "/v1/plugins/{name}"),
    ("post", "/v1/jobs"),
    ("get", "/v1/jobs"),
    ("get", "/v1/jobs/{id}"),
    ("put", "/v1/jobs/{id}"),
    ("patch", "/v1/jobs/{id}"),
    ("delete", "/v1/jobs/{id}"),
    ("post", "/v1/jobs/{id}/pause"),
    ("post", "/v1/jobs/{id}/resume"),
    ("post", "/v1/jobs/{id}/run"),
    ("get", "/v1/jobs/{id}/fires"),
    ("post", "/v1/jobs/{id}/backfill"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("get", "/v1/runs/{id}/logs"),
    ("post", "/v1/runs/{id}/cancel"),
    ("post", "/v1/runs/{id}/retry"),
    ("post", "/v1/runs/{id}/replay"),
    ("get", "/v1/runs/{id}/record"),
    ("post", "/v1/workflows"),
    ("get", "/v1/workflows"),
    ("get", "/v1/workflows/{name}"),
    ("put", "/v1/workflows/{name}"),
    ("patch", "/v1/workflows/{name}"),
    ("delete", "/v1/workflows/{name}"),
    ("post", "/v1/workflows/{name}/run"),
    ("get", "/v1/workflow-runs"),
    ("get", "/v1/workflow-runs/{id}"),
    ("post", "/v1/workflow-runs/{id}/cancel"),
    ("post", "/v1/workflow-runs/{id}/retry"),
    ("post", "/v1/schedules/preview"),
    ("get", "/v1/status"),
    ("get", "/v1/cluster"),
    ("post", "/v1/scheduler/pause"),
    ("post", "/v1/scheduler/resume"),
    ("get", "/v1/events"),
    ("get", "/v1/secrets"),
    ("put", "/v1/secrets/{name}"),
    ("get", "/v1/secrets/{name}"),
    ("delete", "/v1/secrets/{name}"),
    ("get", "/v1/webhooks/secret"),
    ("put", "/v1/digest"),
    ("get", "/v1/digest"),
    ("delete", "/v1/digest"),
    ("post", "/v1/digest/send"),
    ("get", "/v1/calendars"),
    ("put", "/v1/calendars/{name}"),
    ("get", "/v1/calendars/{name}"),
    ("delete", "/v1/calendars/{name}"),
    ("post", "/v1/tenants"),
    ("get", "/v1/tenants"),
    ("get", "/v1/tenants/{name}"),
    ("patch", "/v1/tenants/{name}"),
    ("post", "/v1/tenants/{name}/tokens"),
    ("get", "/v1/tenants/{name}/tokens"),
    ("delete", "/v1/tenants/{name}/tokens/{id}"),
];

#[tokio::test]
async fn the_document_covers_every_route_and_the_daemon_conforms_to_it() {
    let daemon = TestDaemon::start();
    let document = reqwest::get(format!("{}/openapi.json", daemon.url))
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    let mut operations = 0;
    for (method, path) in ROUTES {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not in the document");
        assert!(operation["responses"].is_object(), "{method} {path} has no responses");
        operations += 1;
    }
    let documented: usize = document["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, operations, "the document has no route the daemon lacks");
    // Public routes say so; the rest need the bearer token.
    assert_eq!(document["components"]["securitySchemes"]["token"]["scheme"], "bearer");
    assert_eq!(
        document["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([{}])
    );

    // A job and a run, so the fuzzing also meets real objects.
    daemon.job_with("greet", "hello", serde_json::json!({})).await;
    daemon.run_job("greet", None).await;
    assert_eq!(daemon.call(Method::GET, "/v1/jobs/greet", None).await.status, 200);

    let openapi = repo_root().join("tests").join("openapi");
    let setup = Command::new("bash")
        .arg(openapi.join("setup.sh"))
        .status()
        .expect("running the OpenAPI test setup");
    assert!(setup.success(), "tests/openapi/setup.sh failed");
    // schemathesis keeps a cache in its working directory: not in the clone.
    let scratch = tempfile::tempdir().expect("a scratch directory");
    let output = Command::new(openapi.join(".venv").join("bin").join("st"))
        .current_dir(scratch.path())
        .args(["run", &format!("{}/openapi.json", daemon.url)])
        .args(["-H", &format!("Authorization: Bearer {}", daemon.token)])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
        ])
        // The event stream never ends; its answers are tested in observe.rs.
        .args(["--exclude-path", "/v1/events"])
        .args(["--max-examples", "25", "--seed", "20261125", "--no-color"])
        .output()
        .expect("running schemathesis");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis found failures:\n{printed}");
    assert!(printed.contains(" passed"), "{printed}");
    assert!(!printed.contains("failures"), "{printed}");
}
