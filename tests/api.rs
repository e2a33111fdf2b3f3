//! Black-box tests of the HTTP API: plugins, jobs, runs, validation, auth.

mod common;

use common::{TestDaemon, texts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn hello_uploaded_created_and_run_returns_the_greeting() {
    let daemon = TestDaemon::start();
    let health = daemon.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK);

    let uploaded = daemon.upload_bytes("hello", common::plugin_bytes("hello")).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    assert_eq!(uploaded.body["version"], 1);
    assert!(uploaded.body["digest"].as_str().unwrap().starts_with("sha256:"));
    assert!(uploaded.body["uploaded_at"].is_string());

    let job = daemon
        .create_job(json!({"name": "greet", "plugin": "hello", "input": {"name": "Ada"}, "labels": {"team": "core"}}))
        .await;
    assert_eq!(job["state"], "active");
    assert_eq!(job["next_fire_at"], Value::Null);
    assert_eq!(job["limits"]["timeout"], "30s");

    let run = daemon.run_job("greet", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["output"], "Hello, Ada!");
    assert_eq!(run["output_encoding"], "utf8");
    assert_eq!(run["error"], Value::Null);
    assert_eq!(run["trigger"], "manual");
    assert_eq!(run["attempt"], 1);
    assert_eq!(run["plugin"], "hello@1");
    for field in [
        "scheduled_at",
        "queued_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "lateness_ms",
        "peak_memory",
        "log_size",
    ] {
        assert!(!run[field].is_null(), "{field} is missing from {run}");
    }
    // No fuel budget asked for: the run is unmetered.
    assert_eq!(job["limits"]["fuel"], Value::Null);
    assert_eq!(run["fuel_consumed"], Value::Null);

    // The input of one run can be replaced; the log holds the plugin's line.
    let run = daemon.run_job("greet", Some(json!({"name": "Grace"}))).await;
    assert_eq!(run["output"], "Hello, Grace!");
    let log = daemon.log(run["id"].as_str().unwrap()).await;
    assert!(log.contains("INFO  greeting Grace"), "{log}");
    assert_eq!(run["log_size"].as_u64().unwrap() as usize, log.len());

    // A plugin error fails the run with kind plugin_error.
    let run = daemon.run_job("greet", Some(json!("not an object"))).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"]["kind"], "plugin_error");
    assert!(run["error"]["message"].as_str().unwrap().contains("input is not"));
}

#[tokio::test]
async fn identical_bytes_give_back_the_version_and_new_bytes_the_next() {
    let daemon = TestDaemon::start();
    let first = daemon.upload_bytes("tool", common::plugin_bytes("hello")).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = daemon.upload_bytes("tool", common::plugin_bytes("hello")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["version"], 1);
    assert_eq!(again.body["digest"], first.body["digest"]);
    let second = daemon.upload_bytes("tool", common::plugin_bytes("counter")).await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.body["version"], 2);
    let third = daemon.upload_bytes("tool", common::plugin_bytes("noop")).await;
    assert_eq!(third.body["version"], 3);

    let listed = daemon.call(Method::GET, "/v1/plugins/tool", None).await;
    assert_eq!(listed.body["latest"], 3);
    assert_eq!(listed.body["versions"].as_array().unwrap().len(), 3);

    // `tool` runs the latest (noop echoes its input), `tool@1` is pinned to hello.
    daemon
        .create_job(json!({"name": "latest", "plugin": "tool", "input": "x"}))
        .await;
    daemon
        .create_job(json!({"name": "pinned", "plugin": "tool@1", "input": {"name": "pin"}}))
        .await;
    let latest = daemon.run_job("latest", None).await;
    assert_eq!(latest["output"], "\"x\"");
    assert_eq!(latest["plugin"], "tool@3");
    // A new version is what the next run of `tool` takes.
    let fourth = daemon.upload_bytes("tool", common::plugin_bytes("trap")).await;
    assert_eq!(fourth.body["version"], 4);
    assert_eq!(daemon.run_job("latest", None).await["plugin"], "tool@4");
    let pinned = daemon.run_job("pinned", None).await;
    assert_eq!(pinned["output"], "Hello, pin!");
    assert_eq!(pinned["plugin"], "tool@1");

    // Deleting a plugin a job uses is refused; after the jobs go, it works.
    let refused = daemon.call(Method::DELETE, "/v1/plugins/tool", None).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.code(), "plugin_in_use");
    for job in ["latest", "pinned"] {
        assert_eq!(
            daemon
                .call(Method::DELETE, &format!("/v1/jobs/{job}"), None)
                .await
                .status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(
        daemon.call(Method::DELETE, "/v1/plugins/tool", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        daemon.call(Method::GET, "/v1/plugins/tool", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_uploads_are_refused_with_a_code_that_says_why() {
    let daemon = TestDaemon::start_with(&["--max-plugin-bytes", "1MiB"], &[]);
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let random: Vec<u8> = (0..4096u32)
        .map(|index| (index.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut truncated = common::plugin_bytes("hello");
    truncated.truncate(truncated.len() / 2);
    let rows: Vec<(&str, &str, Vec<u8>, StatusCode, &str)> = vec![
        ("empty body", "x", Vec::new(), StatusCode::BAD_REQUEST, "empty_body"),
        ("random bytes", "x", random, StatusCode::BAD_REQUEST, "not_wasm"),
        (
            "a core module",
            "x",
            core_module,
            StatusCode::BAD_REQUEST,
            "not_a_component",
        ),
        (
            "a truncated component",
            "x",
            truncated,
            StatusCode::BAD_REQUEST,
            "invalid_component",
        ),
        (
            "a command, not a job",
            "x",
            common::plugin_bytes("not_a_job"),
            StatusCode::BAD_REQUEST,
            "wrong_world",
        ),
        (
            "a bad name",
            "has%20space",
            common::plugin_bytes("hello"),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "over the size cap",
            "x",
            vec![0u8; 2 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
    ];
    for (what, name, bytes, status, code) in rows {
        let answer = daemon.upload_bytes(name, bytes).await;
        assert_eq!(answer.status, status, "{what}: {}", answer.body);
        assert_eq!(answer.code(), code, "{what}: {}", answer.body);
        assert!(!answer.message().is_empty(), "{what} has a message");
    }
    let no_name = daemon.call(Method::POST, "/v1/plugins", None).await;
    assert_eq!(no_name.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_name.code(), "invalid_name");
    let wrong_world = daemon.upload_bytes("x", common::plugin_bytes("not_a_job")).await;
    assert!(
        wrong_world.message().contains("run"),
        "names the missing export: {}",
        wrong_world.message()
    );
    // Nothing was stored by any of them: the built-ins are all there is.
    let listed = daemon.call(Method::GET, "/v1/plugins", None).await;
    let uploaded: Vec<&Value> = listed.body["plugins"]
        .as_array()
        .expect("a list")
        .iter()
        .filter(|plugin| plugin["builtin"] != true)
        .collect();
    assert!(uploaded.is_empty(), "{}", listed.body);
}

#[tokio::test]
async fn invalid_jobs_are_refused_naming_the_field() {
    let daemon = TestDaemon::start();
    daemon.upload("hello", "hello").await;
    let rows = [
        (json!({"plugin": "hello"}), "invalid_field", "name"),
        (json!({"name": "j", "plugin": "missing"}), "unknown_plugin", "plugin"),
        (json!({"name": "j", "plugin": "hello@7"}), "unknown_plugin", "plugin"),
        (
            json!({"name": "j", "plugin": "hello", "schedule": {"cron": "61 * * * *"}}),
            "invalid_cron",
            "schedule.cron",
        ),
        (
            json!({"name": "j", "plugin": "hello", "schedule": {"cron": "* * * * *", "timezone": "Mars/Base"}}),
            "unknown_timezone",
            "schedule.timezone",
        ),
        (
            json!({"name": "j", "plugin": "hello", "schedule": {"every": "0s"}}),
            "invalid_interval",
            "schedule.every",
        ),
        (
            json!({"name": "j", "plugin": "hello", "schedule": {"at": "2001-01-01T00:00:00Z"}}),
            "invalid_instant",
            "schedule.at",
        ),
        (
            json!({"name": "j", "plugin": "hello", "limits": {"memory": "lots"}}),
            "invalid_field",
            "limits.memory",
        ),
        (
            json!({"name": "j", "plugin": "hello", "policy": {"priority": "urgent"}}),
            "invalid_field",
            "policy.priority",
        ),
        (
            json!({"name": "j", "plugin": "hello", "surprise": 1}),
            "invalid_field",
            "surprise",
        ),
        (json!(["not", "an", "object"]), "invalid_field", "body"),
    ];
    for (body, code, field) in rows {
        let answer = daemon.call(Method::POST, "/v1/jobs", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert_eq!(answer.code(), code, "{body}: {}", answer.body);
        assert!(
            answer.message().contains(field),
            "{body}: {:?} should name {field}",
            answer.message()
        );
    }
    let response = reqwest::Client::new()
        .post(format!("{}/v1/jobs", daemon.url))
        .bearer_auth(&daemon.token)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs", None).await.body["jobs"],
        json!([]),
        "nothing half-written"
    );
}

#[tokio::test]
async fn jobs_are_listed_by_label_patched_paused_and_deleted() {
    let daemon = TestDaemon::start();
    daemon.upload("hello", "hello").await;
    let nightly = daemon
        .create_job(json!({
            "name": "nightly", "plugin": "hello",
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"},
            "labels": {"team": "data", "tier": "1"}
        }))
        .await;
    assert!(nightly["next_fire_at"].is_string(), "{nightly}");
    assert_eq!(
        nightly["schedule"],
        json!({"cron": "0 3 * * *", "timezone": "Europe/Berlin"})
    );
    daemon
        .create_job(json!({"name": "adhoc", "plugin": "hello", "labels": {"team": "web"}}))
        .await;
    let duplicate = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "adhoc", "plugin": "hello"})),
        )
        .await;
    assert_eq!(duplicate.status, StatusCode::CONFLICT);
    assert_eq!(duplicate.code(), "name_taken");

    let names = |answer: &Value| -> Vec<String> {
        answer["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&daemon.call(Method::GET, "/v1/jobs", None).await.body),
        ["nightly", "adhoc"]
    );
    assert_eq!(
        names(&daemon.call(Method::GET, "/v1/jobs?label=team=data", None).await.body),
        ["nightly"]
    );
    assert_eq!(
        names(
            &daemon
                .call(Method::GET, "/v1/jobs?label=team=data&label=tier=2", None)
                .await
                .body
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs?label=team", None).await.code(),
        "invalid_query"
    );

    // By id or by name.
    let id = nightly["id"].as_str().unwrap();
    assert_eq!(
        daemon.call(Method::GET, &format!("/v1/jobs/{id}"), None).await.body["name"],
        "nightly"
    );

    let patched = daemon
        .call(
            Method::PATCH,
            "/v1/jobs/nightly",
            Some(json!({"schedule": {"every": "90s"}, "labels": {"tier": null}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["schedule"], json!({"every": "1m 30s"}));
    assert_eq!(patched.body["labels"], json!({"team": "data"}));
    assert_eq!(patched.body["id"], nightly["id"]);
    let bad_patch = daemon
        .call(
            Method::PATCH,
            "/v1/jobs/nightly",
            Some(json!({"limits": {"timeout": "forever"}})),
        )
        .await;
    assert_eq!(bad_patch.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/nightly", None).await.body["limits"]["timeout"],
        "30s",
        "unchanged"
    );

    let paused = daemon.call(Method::POST, "/v1/jobs/nightly/pause", None).await;
    assert_eq!(paused.body["state"], "paused");
    assert_eq!(paused.body["enabled"], false);
    let resumed = daemon.call(Method::POST, "/v1/jobs/nightly/resume", None).await;
    assert_eq!(resumed.body["state"], "active");

    // PUT upserts by name: 201 the first time, 200 after.
    let put = daemon
        .call(
            Method::PUT,
            "/v1/jobs/weekly",
            Some(json!({"plugin": "hello", "schedule": {"cron": "@weekly"}})),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    let put_again = daemon
        .call(
            Method::PUT,
            "/v1/jobs/weekly",
            Some(json!({"plugin": "hello", "input": {"name": "W"}})),
        )
        .await;
    assert_eq!(put_again.status, StatusCode::OK);
    assert_eq!(put_again.body["id"], put.body["id"]);
    assert_eq!(put_again.body["schedule"], Value::Null);

    assert_eq!(
        daemon.call(Method::DELETE, "/v1/jobs/nightly", None).await.status,
        StatusCode::NO_CONTENT
    );
    let gone = daemon.call(Method::GET, "/v1/jobs/nightly", None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code(), "job_not_found");
}

#[tokio::test]
async fn runs_are_listed_newest_first_with_filters_and_a_cursor() {
    let daemon = TestDaemon::start();
    daemon.job_with("echo", "noop", json!({})).await;
    daemon.job_with("greet", "hello", json!({})).await;
    let mut ids = Vec::new();
    for index in 0..5 {
        ids.push(
            daemon.run_job("echo", Some(json!(index))).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    daemon.run_job("greet", Some(json!(42))).await;

    let page = daemon.call(Method::GET, "/v1/runs?job=echo&limit=2", None).await;
    assert_eq!(texts(&page.body["runs"], "id"), [ids[4].as_str(), ids[3].as_str()]);
    let cursor = page.body["next_cursor"].as_str().unwrap();
    let next = daemon
        .call(Method::GET, &format!("/v1/runs?job=echo&limit=2&cursor={cursor}"), None)
        .await;
    assert_eq!(texts(&next.body["runs"], "id"), [ids[2].as_str(), ids[1].as_str()]);

    let failed = daemon.call(Method::GET, "/v1/runs?status=failed", None).await;
    assert_eq!(
        failed.body["runs"].as_array().unwrap().len(),
        1,
        "hello refuses a number as input"
    );
    assert_eq!(failed.body["runs"][0]["job_name"], "greet");
    let all = daemon.call(Method::GET, "/v1/runs", None).await;
    assert_eq!(all.body["runs"].as_array().unwrap().len(), 6);
    assert_eq!(all.body["next_cursor"], Value::Null);

    for (query, code) in [
        ("status=done", "invalid_query"),
        ("limit=0", "invalid_query"),
        ("limit=100000", "invalid_query"),
        ("cursor=zz", "invalid_query"),
        ("color=red", "invalid_query"),
    ] {
        let answer = daemon.call(Method::GET, &format!("/v1/runs?{query}"), None).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, code),
            "{query}"
        );
    }
    assert_eq!(
        daemon.call(Method::GET, "/v1/runs/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn counter_keeps_state_per_job_in_kv() {
    let daemon = TestDaemon::start();
    daemon.job_with("count-a", "counter", json!({})).await;
    daemon.create_job(json!({"name": "count-b", "plugin": "counter"})).await;
    assert_eq!(daemon.run_job("count-a", None).await["output"], "1");
    assert_eq!(daemon.run_job("count-a", None).await["output"], "2");
    assert_eq!(
        daemon.run_job("count-b", None).await["output"],
        "1",
        "each job has its own kv"
    );
    // Deleting a job deletes its kv; a new job of the same name starts over.
    daemon.call(Method::DELETE, "/v1/jobs/count-a", None).await;
    daemon.create_job(json!({"name": "count-a", "plugin": "counter"})).await;
    assert_eq!(daemon.run_job("count-a", None).await["output"], "1");
}

#[tokio::test]
async fn requests_without_a_valid_token_get_401_and_unknown_routes_404() {
    let daemon = TestDaemon::start();
    for path in ["/v1/jobs", "/v1/plugins", "/v1/runs"] {
        let missing = daemon.call_as(None, Method::GET, path, None).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(missing.code(), "unauthorized");
        let wrong = daemon.call_as(Some("sc_admin_wrong"), Method::GET, path, None).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let unknown = daemon.call(Method::GET, "/v1/nothing", None).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "route_not_found")
    );
    let method = daemon.call(Method::DELETE, "/v1/runs", None).await;
    assert_eq!(
        (method.status, method.code()),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn schedule_preview_lists_fires_across_dst() {
    let daemon = TestDaemon::start();
    let answer = daemon
        .call(
            Method::POST,
            "/v1/schedules/preview",
            Some(json!({"schedule": {"cron": "30 2 * * *", "timezone": "America/New_York"}, "from": "2026-03-07T12:00:00-05:00", "count": 2})),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(
        answer.body["fires"],
        json!(["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"])
    );
    let bad = daemon
        .call(
            Method::POST,
            "/v1/schedules/preview",
            Some(json!({"schedule": {"cron": "* * * *"}})),
        )
        .await;
    assert_eq!((bad.status, bad.code()), (StatusCode::BAD_REQUEST, "invalid_cron"));
}

/// A Spring `@Scheduled` line pastes as it is, and the Quartz day forms
/// preview on the days they name; a form that cannot be is refused with
/// the field named.
#[tokio::test]
async fn quartz_and_spring_cron_lines_are_accepted_and_previewed() {
    let daemon = TestDaemon::start();
    let preview = |cron: &str, from: &str| json!({"schedule": {"cron": cron, "timezone": "Europe/Berlin"}, "from": from, "count": 3});
    let rows = [
        // Last weekday: Jan 31 2026 is a Saturday, Feb 28 a Saturday.
        (
            "0 0 12 LW * ?",
            ["2026-01-30T11:00:00Z", "2026-02-27T11:00:00Z", "2026-03-31T10:00:00Z"],
        ),
        // The third Friday.
        (
            "0 0 9 ? * FRI#3",
            ["2026-01-16T08:00:00Z", "2026-02-20T08:00:00Z", "2026-03-20T08:00:00Z"],
        ),
        // Spring's every day at noon.
        (
            "0 0 12 * * ?",
            ["2026-01-01T11:00:00Z", "2026-01-02T11:00:00Z", "2026-01-03T11:00:00Z"],
        ),
    ];
    for (cron, fires) in rows {
        let answer = daemon
            .call(
                Method::POST,
                "/v1/schedules/preview",
                Some(preview(cron, "2026-01-01T00:00:00Z")),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{cron}: {}", answer.body);
        assert_eq!(answer.body["fires"], json!(fires), "{cron}");
    }
    daemon
        .job_with("month-end", "noop", json!({"schedule": {"cron": "0 0 18 L * ?"}}))
        .await;
    let bad = daemon
        .call(
            Method::POST,
            "/v1/schedules/preview",
            Some(preview("0 0 12 ? * MON#6", "2026-01-01T00:00:00Z")),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_cron"),
        "{}",
        bad.body
    );
    assert!(bad.message().contains("day-of-week"), "{}", bad.body);
}

#[tokio::test]
async fn malformed_requests_get_a_4xx_with_a_code_and_the_daemon_stays_healthy() {
    let daemon = TestDaemon::start();
    daemon.job_with("ok", "noop", json!({})).await;
    let deep = format!("{}{}", "[".repeat(300), "]".repeat(300));
    let huge = "x".repeat(3 << 20);
    let job = |extra: Value| {
        let mut body = json!({"name": "j", "plugin": "noop"});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body.to_string()
    };
    let cases: Vec<(Method, String, Option<String>)> = vec![
        // Not JSON, wrong shapes, wrong types.
        (Method::POST, "/v1/jobs".into(), Some("{".into())),
        (Method::POST, "/v1/jobs".into(), Some("[]".into())),
        (Method::POST, "/v1/jobs".into(), Some("null".into())),
        (Method::POST, "/v1/jobs".into(), Some("\"job\"".into())),
        (Method::POST, "/v1/jobs".into(), Some(deep.clone())),
        (Method::POST, "/v1/jobs".into(), Some(format!("{{\"input\": {deep}}}"))),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(format!("{{\"name\": \"{huge}\"}}")),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": 5, "plugin": "noop"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"plugin": "noop"}).to_string()),
        ),
        (Method::POST, "/v1/jobs".into(), Some(json!({"name": "j"}).to_string())),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"colour": "red"})))),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"enabled": "yes"})))),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"labels": ["a"]})))),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"labels": {"bad key": "v"}}))),
        ),
        // Names: traversal, control characters, length.
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": "../../etc/passwd", "plugin": "noop"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": "a/b", "plugin": "noop"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": "a\u{0}b", "plugin": "noop"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": "x".repeat(65), "plugin": "noop"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(json!({"name": "", "plugin": "noop"}).to_string()),
        ),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"plugin": "../noop"})))),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"plugin": "noop@0"})))),
        (Method::POST, "/v1/jobs".into(), Some(job(json!({"plugin": "missing"})))),
        // Schedules.
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"cron": "61 * * * *"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"cron": "5-1 * * * *"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"cron": "* * * *"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"cron": "0 0 L-31 * *"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"cron": "@reboot"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(
                json!({"schedule": {"cron": "0 3 * * *", "timezone": "Mars/Olympus"}}),
            )),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"every": "0s"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"every": "-5s"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"every": "soon"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"at": "yesterday"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"at": "2001-01-01T00:00:00Z"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"schedule": {"every": "1s", "cron": "* * * * *"}}))),
        ),
        // Limits and policies.
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"limits": {"memory": "1TiB"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"limits": {"timeout": "100d"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"limits": {"fuel": -1}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"policy": {"overlap": "sometimes"}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"policy": {"retry": {"max_attempts": 0}}}))),
        ),
        (
            Method::POST,
            "/v1/jobs".into(),
            Some(job(json!({"policy": {"priority": 9}}))),
        ),
        // Ids, queries, previews.
        (Method::GET, "/v1/jobs/%2e%2e%2f%2e%2e".into(), None),
        (Method::GET, "/v1/runs/not-a-run".into(), None),
        (Method::GET, "/v1/runs?limit=0".into(), None),
        (Method::GET, "/v1/runs?limit=1000000".into(), None),
        (Method::GET, "/v1/runs?status=sleeping".into(), None),
        (Method::GET, "/v1/jobs?label=nokey".into(), None),
        (Method::POST, "/v1/runs/nope/cancel".into(), None),
        (Method::PATCH, "/v1/jobs/ok".into(), Some("[1]".into())),
        (
            Method::PATCH,
            "/v1/jobs/ok".into(),
            Some(json!({"schedule": {"cron": "bad"}}).to_string()),
        ),
        (Method::POST, "/v1/jobs/ok/run?wait=forever".into(), None),
        (
            Method::POST,
            "/v1/schedules/preview".into(),
            Some(json!({"schedule": {"cron": "* * *"}}).to_string()),
        ),
        (
            Method::POST,
            "/v1/schedules/preview".into(),
            Some(json!({"schedule": {"every": "1s"}, "count": 100000}).to_string()),
        ),
        (
            Method::POST,
            "/v1/schedules/preview".into(),
            Some(json!({"schedule": {"every": "1s"}, "from": "noon"}).to_string()),
        ),
        (
            Method::POST,
            "/v1/plugins?name=..%2Fescape".into(),
            Some("\0asm".into()),
        ),
        (
            Method::POST,
            "/v1/tenants".into(),
            Some(json!({"name": "t"}).to_string()),
        ),
    ];
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let client = reqwest::Client::new();
    let beta = {
        let answer = daemon
            .call(Method::POST, "/v1/tenants", Some(json!({"name": "beta"})))
            .await;
        answer.body["token"].as_str().unwrap().to_string()
    };
    for (method, path, body) in &cases {
        // The tenants route is admin-only: it goes with a tenant token.
        let token = if path == "/v1/tenants" { &beta } else { &daemon.token };
        let mut request = client
            .request(method.clone(), format!("{}{path}", daemon.url))
            .bearer_auth(token)
            .header("content-type", "application/json");
        if let Some(body) = body {
            request = request.body(body.clone());
        }
        let response = request.send().await.expect("the daemon answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let shown: String = body.as_deref().unwrap_or("").chars().take(80).collect();
        assert!(status.is_client_error(), "{method} {path} {shown}: {status} {text}");
        let error: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{method} {path}: not JSON: {text}"));
        assert!(
            !error["error"]["code"].as_str().unwrap_or("").is_empty()
                && !error["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{method} {path} {shown}: {text}"
        );
    }
    // Nothing was half-written, and the daemon still works.
    let jobs = daemon.call(Method::GET, "/v1/jobs", None).await;
    assert_eq!(jobs.body["jobs"].as_array().unwrap().len(), 1, "{}", jobs.body);
    let run = daemon.run_job("ok", None).await;
    assert_eq!(run["status"], "succeeded");
}

#[tokio::test]
async fn loose_input_is_refused_naming_the_problem() {
    let daemon = TestDaemon::start();
    daemon.job_with("ok", "noop", json!({})).await;
    let raw = |method: Method, path: &str, body: &str| {
        reqwest::Client::new()
            .request(method, format!("{}{path}", daemon.url))
            .bearer_auth(&daemon.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    // A key given twice: which one counts would depend on the reader.
    let twice = raw(
        Method::POST,
        "/v1/jobs",
        r#"{"name": "a", "plugin": "noop", "name": "b"}"#,
    )
    .await
    .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    let body: Value = twice.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("\"name\" appears twice"),
        "{body}"
    );
    // A cron line no day of any year matches.
    let never = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "feb30", "plugin": "noop", "schedule": {"cron": "0 0 30 2 *"}})),
        )
        .await;
    assert_eq!(
        (never.status, never.code()),
        (StatusCode::BAD_REQUEST, "invalid_cron"),
        "{}",
        never.body
    );
    assert!(never.message().contains("never fires"), "{}", never.message());
    // A run's body is an object, not a list filled in by position.
    let list = raw(Method::POST, "/v1/jobs/ok/run", "[1]").await.unwrap();
    assert_eq!(list.status(), StatusCode::BAD_REQUEST);
    let body: Value = list.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_field", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("array"), "{body}");
    // Runs of a job that never existed: 404, not an empty list.
    let unknown = daemon.call(Method::GET, "/v1/runs?job=nope", None).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "job_not_found"),
        "{}",
        unknown.body
    );
    // A deleted job's runs are still found by its id.
    let run = daemon.run_job("ok", None).await;
    let job_id = run["job_id"].as_str().unwrap().to_string();
    let deleted = daemon.call(Method::DELETE, "/v1/jobs/ok", None).await;
    assert!(deleted.status.is_success(), "{}", deleted.body);
    let kept = daemon.call(Method::GET, &format!("/v1/runs?job={job_id}"), None).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    assert_eq!(kept.body["runs"].as_array().unwrap().len(), 1, "{}", kept.body);
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/ok", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(daemon.call(Method::GET, "/healthz", None).await.status, StatusCode::OK);
}
