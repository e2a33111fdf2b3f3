//! Black-box tests of tenants and tokens: the admin token makes tenants and
//! their tokens; a tenant token sees only its tenant; a revoked token is
//! refused; secrets are shown once.

mod common;

use common::{TestDaemon, plugin_bytes, texts};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn tenants_and_tokens_are_made_listed_and_revoked_by_the_admin_only() {
    let daemon = TestDaemon::start();
    let acme = daemon.new_tenant("acme", json!({})).await;
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
    let acme = daemon.new_tenant("acme", json!({})).await;
    let beta = daemon.new_tenant("beta", json!({})).await;
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

#[tokio::test]
async fn the_cli_creates_tenants_and_manages_their_tokens() {
    let daemon = TestDaemon::start();
    let created = daemon.cli(&["tenant", "create", "acme"]);
    let secret = created
        .lines()
        .find_map(|line| line.strip_prefix("token (shown only now): "))
        .expect("the token is printed")
        .to_string();
    let works = daemon.call_as(Some(&secret), Method::GET, "/v1/jobs", None).await;
    assert_eq!(works.status, StatusCode::OK);
    assert!(daemon.cli(&["tenant", "ls"]).contains("acme"));
    daemon.cli(&["token", "create", "acme"]);
    let listed = daemon.cli(&["token", "ls", "acme"]);
    assert!(!listed.contains(&secret), "{listed}");
    let ids: Vec<&str> = listed
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    assert_eq!(ids.len(), 2, "{listed}");
    for id in ids {
        daemon.cli(&["token", "revoke", "acme", id]);
    }
    let refused = daemon.call_as(Some(&secret), Method::GET, "/v1/jobs", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
}

/// Every route of the API but /healthz, with a body where it takes one.
fn every_route() -> Vec<(Method, &'static str, Option<serde_json::Value>)> {
    vec![
        (Method::POST, "/v1/plugins?name=x", None),
        (Method::GET, "/v1/plugins", None),
        (Method::GET, "/v1/plugins/x", None),
        (Method::DELETE, "/v1/plugins/x", None),
        (Method::POST, "/v1/jobs", Some(json!({"name": "x", "plugin": "x"}))),
        (Method::GET, "/v1/jobs", None),
        (Method::GET, "/v1/jobs/x", None),
        (Method::PUT, "/v1/jobs/x", Some(json!({"plugin": "x"}))),
        (Method::PATCH, "/v1/jobs/x", Some(json!({"enabled": false}))),
        (Method::DELETE, "/v1/jobs/x", None),
        (Method::POST, "/v1/jobs/x/pause", None),
        (Method::POST, "/v1/jobs/x/resume", None),
        (Method::POST, "/v1/jobs/x/run", None),
        (Method::GET, "/v1/runs", None),
        (Method::GET, "/v1/runs/x", None),
        (Method::GET, "/v1/runs/x/logs", None),
        (Method::POST, "/v1/runs/x/cancel", None),
        (Method::POST, "/v1/runs/x/retry", None),
        (
            Method::POST,
            "/v1/schedules/preview",
            Some(json!({"schedule": {"every": "1m"}})),
        ),
        (Method::GET, "/v1/status", None),
        (Method::GET, "/v1/cluster", None),
        (Method::POST, "/v1/scheduler/pause", None),
        (Method::POST, "/v1/scheduler/resume", None),
        (Method::GET, "/v1/secrets", None),
        (Method::PUT, "/v1/secrets/x", Some(json!({"value": "v"}))),
        (Method::GET, "/v1/secrets/x", None),
        (Method::DELETE, "/v1/secrets/x", None),
        (Method::POST, "/v1/tenants", Some(json!({"name": "x"}))),
        (Method::GET, "/v1/tenants", None),
        (Method::GET, "/v1/tenants/acme", None),
        (Method::PATCH, "/v1/tenants/acme", Some(json!({"quotas": {"jobs": 1}}))),
        (Method::POST, "/v1/tenants/acme/tokens", None),
        (Method::GET, "/v1/tenants/acme/tokens", None),
        (Method::DELETE, "/v1/tenants/acme/tokens/x", None),
    ]
}

/// Routes that act on the whole daemon or on tenants.
fn is_admin_route(path: &str) -> bool {
    path.starts_with("/v1/tenants") || path.starts_with("/v1/scheduler") || path == "/v1/cluster"
}

#[tokio::test]
async fn an_admin_token_given_by_env_replaces_the_file() {
    let token = "sc_admin_given_by_env_0123456789abcdef";
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_ADMIN_TOKEN", token)]);
    assert!(!daemon.data_dir().join("admin-token").exists(), "no token file is made");
    let created = daemon
        .call_as(Some(token), Method::POST, "/v1/tenants", Some(json!({"name": "acme"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let short = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(daemon.data_dir().join("other"))
        .env("SANDCRON_ADMIN_TOKEN", "short")
        .output()
        .expect("running the daemon");
    assert!(!short.status.success());
    assert!(
        String::from_utf8_lossy(&short.stderr).contains("admin_token"),
        "{}",
        String::from_utf8_lossy(&short.stderr)
    );
}

#[tokio::test]
async fn every_route_wants_a_live_token_and_admin_routes_the_admin() {
    let daemon = TestDaemon::start();
    let acme = daemon.new_tenant("acme", json!({})).await;
    let second = daemon.call(Method::POST, "/v1/tenants/acme/tokens", None).await;
    let revoked = second.body["token"].as_str().unwrap().to_string();
    let id = second.body["id"].as_str().unwrap();
    daemon
        .call(Method::DELETE, &format!("/v1/tenants/acme/tokens/{id}"), None)
        .await;
    let before = daemon.call(Method::GET, "/v1/tenants/acme", None).await.body;
    for (method, path, body) in every_route() {
        for (who, token) in [
            ("no token", None),
            ("a revoked token", Some(revoked.as_str())),
            ("a wrong token", Some("sc_0000")),
        ] {
            let answer = daemon.call_as(token, method.clone(), path, body.clone()).await;
            assert_eq!(
                (answer.status, answer.code()),
                (StatusCode::UNAUTHORIZED, "unauthorized"),
                "{method} {path} with {who}: {}",
                answer.body
            );
        }
        if is_admin_route(path) {
            let answer = daemon.call_as(Some(&acme), method.clone(), path, body.clone()).await;
            assert_eq!(
                (answer.status, answer.code()),
                (StatusCode::FORBIDDEN, "admin_only"),
                "{method} {path} with a tenant token: {}",
                answer.body
            );
        }
    }
    // None of it changed anything.
    assert_eq!(daemon.call(Method::GET, "/v1/tenants/acme", None).await.body, before);
    let status = daemon.call(Method::GET, "/v1/status", None).await;
    assert_eq!(status.body["scheduler"], "running", "a tenant cannot pause the daemon");
    assert_eq!(
        daemon.call(Method::GET, "/v1/secrets", None).await.body["secrets"],
        json!([])
    );
}

#[tokio::test]
async fn kv_state_and_the_status_counts_are_the_tenants_own() {
    let daemon = TestDaemon::start();
    let acme = daemon.new_tenant("acme", json!({})).await;
    let beta = daemon.new_tenant("beta", json!({})).await;
    let mut outputs = Vec::new();
    for (token, runs) in [(&acme, 2), (&beta, 1)] {
        let upload = daemon.upload_bytes_as(token, "counter", plugin_bytes("counter")).await;
        assert_eq!(upload.status, StatusCode::CREATED);
        let job = json!({"name": "count", "plugin": "counter"});
        let created = daemon.call_as(Some(token), Method::POST, "/v1/jobs", Some(job)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        for _ in 0..runs {
            let run = daemon
                .call_as(Some(token), Method::POST, "/v1/jobs/count/run?wait=60s", None)
                .await;
            outputs.push(run.body["output"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(outputs, ["1", "2", "1"], "same job name, separate kv state");

    // A long run of acme's shows in acme's status and the admin's, not beta's.
    daemon.upload_bytes_as(&acme, "spin", plugin_bytes("spin")).await;
    let spin = json!({"name": "spin", "plugin": "spin", "limits": {"timeout": "3s"}});
    daemon.call_as(Some(&acme), Method::POST, "/v1/jobs", Some(spin)).await;
    let started = daemon
        .call_as(Some(&acme), Method::POST, "/v1/jobs/spin/run", None)
        .await;
    let run_id = started.body["id"].as_str().unwrap().to_string();
    let mut running = false;
    for _ in 0..250 {
        let run = daemon
            .call_as(Some(&acme), Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await;
        if run.body["status"] == "running" {
            running = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(running);
    let status_of = |token: String| {
        let daemon = &daemon;
        async move { daemon.call_as(Some(&token), Method::GET, "/v1/status", None).await.body }
    };
    assert_eq!(status_of(acme.clone()).await["running_runs"], 1);
    assert_eq!(status_of(daemon.token.clone()).await["running_runs"], 1);
    assert_eq!(status_of(beta.clone()).await["running_runs"], 0);
    daemon
        .call_as(Some(&acme), Method::POST, &format!("/v1/runs/{run_id}/cancel"), None)
        .await;
}
