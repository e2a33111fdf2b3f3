//! Black-box tests of tenants and tokens: the admin token makes tenants and
//! their tokens; a tenant token sees only its tenant; a revoked token is
//! refused; secrets are shown once.

mod common;

use common::{TestDaemon, plugin_bytes, texts};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Creates a tenant and returns its first token.
async fn tenant(daemon: &TestDaemon, name: &str) -> String {
    let answer = daemon
        .call(Method::POST, "/v1/tenants", Some(json!({"name": name})))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["tenant"]["name"], name);
    answer.body["token"].as_str().expect("a token").to_string()
}

#[tokio::test]
async fn tenants_and_tokens_are_made_listed_and_revoked_by_the_admin_only() {
    let daemon = TestDaemon::start();
    let acme = tenant(&daemon, "acme").await;
    assert!(acme.len() >= 64, "at least 256 bits: {acme}");
    for (body, status, code) in [
        (json!({"name": "acme"}), StatusCode::CONFLICT, "tenant_exists"),
        (json!({"name": "default"}), StatusCode::CONFLICT, "tenant_exists"),
        (json!({"name": "../etc"}), StatusCode::BAD_REQUEST, "invalid_field"),
        (json!({"name": 7}), StatusCode::BAD_REQUEST, "invalid_field"),
        (json!({"nom": "x"}), StatusCode::BAD_REQUEST, "invalid_field"),
    ] {
        let answer = daemon.call(Method::POST, "/v1/tenants", Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.code()),
            (status, code),
            "{body}: {}",
            answer.body
        );
    }
    let listed = daemon.call(Method::GET, "/v1/tenants", None).await;
    assert_eq!(texts(&listed.body["tenants"], "name"), ["default", "acme"]);

    // A second token; listing shows ids and dates, never a secret.
    let second = daemon.call(Method::POST, "/v1/tenants/acme/tokens", None).await;
    assert_eq!(second.status, StatusCode::CREATED, "{}", second.body);
    let second_secret = second.body["token"].as_str().unwrap().to_string();
    let tokens = daemon.call(Method::GET, "/v1/tenants/acme/tokens", None).await;
    let text = tokens.body.to_string();
    assert_eq!(tokens.body["tokens"].as_array().unwrap().len(), 2);
    assert!(!text.contains(&acme) && !text.contains(&second_secret), "{text}");
    assert!(!text.contains("hash"), "{text}");

    // Tenant tokens cannot manage tenants.
    for (method, path) in [
        (Method::GET, "/v1/tenants"),
        (Method::POST, "/v1/tenants/acme/tokens"),
        (Method::GET, "/v1/tenants/acme/tokens"),
    ] {
        let answer = daemon.call_as(Some(&acme), method.clone(), path, None).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{method} {path}: {}", answer.body);
        assert_eq!(answer.code(), "admin_only");
    }
    let missing = daemon.call(Method::GET, "/v1/tenants/nobody/tokens", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // Revoking the second token: it is refused, the first still works.
    let id = second.body["id"].as_str().unwrap();
    let revoked = daemon
        .call(Method::DELETE, &format!("/v1/tenants/acme/tokens/{id}"), None)
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    let refused = daemon
        .call_as(Some(&second_secret), Method::GET, "/v1/jobs", None)
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let allowed = daemon.call_as(Some(&acme), Method::GET, "/v1/jobs", None).await;
    assert_eq!(allowed.status, StatusCode::OK);
    let again = daemon
        .call(Method::DELETE, "/v1/tenants/acme/tokens/01nonexistent", None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_tenant_sees_only_its_own_objects_and_tokens_survive_a_restart() {
    let mut daemon = TestDaemon::start();
    let acme = tenant(&daemon, "acme").await;
    let beta = tenant(&daemon, "beta").await;
    let upload = daemon.upload_bytes_as(&acme, "hello", plugin_bytes("hello")).await;
    assert_eq!(upload.status, StatusCode::CREATED, "{}", upload.body);
    let job = daemon
        .call_as(
            Some(&acme),
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "greet", "plugin": "hello"})),
        )
        .await;
    assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
    let job_id = job.body["id"].as_str().unwrap().to_string();
    let run = daemon
        .call_as(Some(&acme), Method::POST, "/v1/jobs/greet/run?wait=60s", None)
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.body);
    let run_id = run.body["id"].as_str().unwrap().to_string();

    // beta (and the admin, acting on the default tenant) see none of it.
    for token in [beta.as_str(), daemon.token.as_str()] {
        for path in [
            format!("/v1/jobs/{job_id}"),
            "/v1/jobs/greet".to_string(),
            format!("/v1/runs/{run_id}"),
            format!("/v1/runs/{run_id}/logs"),
            "/v1/plugins/hello".to_string(),
        ] {
            let answer = daemon.call_as(Some(token), Method::GET, &path, None).await;
            assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}: {}", answer.body);
        }
        let jobs = daemon.call_as(Some(token), Method::GET, "/v1/jobs", None).await;
        assert_eq!(jobs.body["jobs"], json!([]));
        let runs = daemon.call_as(Some(token), Method::GET, "/v1/runs", None).await;
        assert_eq!(runs.body["runs"], json!([]));
    }
    // Every route that changes an object, with beta's token on acme's: 404,
    // and nothing changes.
    let before = daemon
        .call_as(Some(&acme), Method::GET, "/v1/jobs/greet", None)
        .await
        .body;
    for (method, path, body) in [
        (
            Method::PATCH,
            format!("/v1/jobs/{job_id}"),
            Some(json!({"enabled": false})),
        ),
        (Method::PATCH, "/v1/jobs/greet".to_string(), Some(json!({"input": 1}))),
        (Method::DELETE, format!("/v1/jobs/{job_id}"), None),
        (Method::POST, format!("/v1/jobs/{job_id}/pause"), None),
        (Method::POST, format!("/v1/jobs/{job_id}/resume"), None),
        (Method::POST, format!("/v1/jobs/{job_id}/run"), None),
        (Method::POST, format!("/v1/runs/{run_id}/cancel"), None),
        (Method::POST, format!("/v1/runs/{run_id}/retry"), None),
        (Method::DELETE, "/v1/plugins/hello".to_string(), None),
    ] {
        let answer = daemon.call_as(Some(&beta), method.clone(), &path, body).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}: {}", answer.body);
    }
    let after = daemon
        .call_as(Some(&acme), Method::GET, "/v1/jobs/greet", None)
        .await
        .body;
    assert_eq!(before, after, "beta changed nothing");
    let runs = daemon.call_as(Some(&acme), Method::GET, "/v1/runs", None).await;
    assert_eq!(runs.body["runs"].as_array().unwrap().len(), 1, "no run was added");
    let plugin = daemon
        .call_as(Some(&acme), Method::GET, "/v1/plugins/hello", None)
        .await;
    assert_eq!(plugin.status, StatusCode::OK);
    // beta's plugin of the same name is its own (version 1).
    let upload = daemon.upload_bytes_as(&beta, "hello", plugin_bytes("hello")).await;
    assert_eq!(upload.body["version"], 1, "{}", upload.body);
    let status = daemon.call_as(Some(&beta), Method::GET, "/v1/status", None).await;
    assert_eq!(status.body["jobs"], 0, "{}", status.body);

    daemon.restart();
    let mine = daemon.call_as(Some(&acme), Method::GET, "/v1/jobs/greet", None).await;
    assert_eq!(
        mine.status,
        StatusCode::OK,
        "tokens and jobs survive a restart: {}",
        mine.body
    );
    let none = daemon.call_as(None, Method::GET, "/v1/jobs", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
}

/// Runs the CLI against the daemon with its admin token (read from the data
/// dir, as on a local machine).
fn cli(daemon: &TestDaemon, args: &[&str]) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(args)
        .args(["--url", &daemon.url, "--data-dir"])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running the CLI");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "sandcron {args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_cli_creates_tenants_and_manages_their_tokens() {
    let daemon = TestDaemon::start();
    let created = cli(&daemon, &["tenant", "create", "acme"]);
    let secret = created
        .lines()
        .find_map(|line| line.strip_prefix("token (shown only now): "))
        .expect("the token is printed")
        .to_string();
    let works = daemon.call_as(Some(&secret), Method::GET, "/v1/jobs", None).await;
    assert_eq!(works.status, StatusCode::OK);
    assert!(cli(&daemon, &["tenant", "ls"]).contains("acme"));
    cli(&daemon, &["token", "create", "acme"]);
    let listed = cli(&daemon, &["token", "ls", "acme"]);
    assert!(!listed.contains(&secret), "{listed}");
    let ids: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    for id in ids {
        cli(&daemon, &["token", "revoke", "acme", id]);
    }
    let refused = daemon.call_as(Some(&secret), Method::GET, "/v1/jobs", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}
