//! Black-box tests of the built-in plugin `std.http`: every tenant has it
//! without an upload, its request is templated with the run's facts (the
//! timestamp in the job's zone), its answer is the run's output or, with a
//! status outside `expect`, the run's error; it is held to `http_allow`,
//! the tenant's cap and the SSRF wall like any plugin; and it cannot be
//! deleted, uploaded over or counted against a quota. The receiver is a
//! local server on 127.0.0.1, which the daemon is let through to with
//! `--http-allow-private 127.0.0.1/32`.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode as HttpStatus, Uri};
use axum::response::IntoResponse;
use axum::routing::any;
use chrono::DateTime;
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

/// A local HTTP server that records what it is sent. `/status/N` answers
/// N with a text body; `/flaky?try=N` answers 503 to try 1 and 200 after;
/// `/binary` answers bytes that are not UTF-8; anything else 201 with
/// `x-receiver: yes` and `{"ok": true}`.
struct Receiver {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the receiver");
        let port = listener.local_addr().expect("the receiver's address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = Router::new().fallback(any(
            move |method: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
                let record = record.clone();
                async move {
                    let headers = headers
                        .iter()
                        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or_default().to_string()))
                        .collect();
                    let query = uri.query().unwrap_or_default().to_string();
                    record.lock().expect("the receiver's record").push(Seen {
                        method: method.to_string(),
                        path: uri.path().to_string(),
                        query: query.clone(),
                        headers,
                        body: body.to_vec(),
                    });
                    if let Some(code) = uri.path().strip_prefix("/status/") {
                        let status = HttpStatus::from_u16(code.parse().unwrap_or(500)).unwrap_or(HttpStatus::OK);
                        return (status, format!("answer {code}: the receiver says so")).into_response();
                    }
                    match uri.path() {
                        "/flaky" if query.contains("try=1") => {
                            (HttpStatus::SERVICE_UNAVAILABLE, "not yet").into_response()
                        }
                        "/flaky" => format!("fine on {query}").into_response(),
                        "/binary" => vec![0xff_u8, 0xfe, 0x00, 0x41].into_response(),
                        _ => (
                            HttpStatus::CREATED,
                            [("x-receiver", "yes")],
                            axum::Json(json!({"ok": true})),
                        )
                            .into_response(),
                    }
                }
            },
        ));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { port, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("the receiver's record").clone()
    }
}

/// A daemon that may reach 127.0.0.1 (and nothing else private).
fn daemon() -> TestDaemon {
    TestDaemon::start_with(&["--http-allow-private", "127.0.0.1/32"], &[])
}

/// Runs `job` now with `input` and returns the finished run.
async fn run_with(daemon: &TestDaemon, job: &str, input: Value) -> Value {
    daemon.run_job(job, Some(input)).await
}

/// The run's output, parsed.
fn output(run: &Value) -> Value {
    assert_eq!(run["status"], "succeeded", "{run}");
    serde_json::from_str(run["output"].as_str().expect("a text output")).expect("the output is JSON")
}

/// The run's error message, asserting it is a plugin_error.
fn failure(run: &Value) -> String {
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "plugin_error", "{run}");
    run["error"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn the_receiver_gets_the_templated_request_with_the_timestamp_in_the_jobs_zone() {
    let receiver = Receiver::start().await;
    let daemon = daemon();
    let input = json!({
        "url": receiver.url("/hook/{{run_id}}?job={{job}}&try={{attempt}}"),
        "method": "post",
        "headers": {"X-Job": "{{job}}", "X-Attempt": "{{attempt}}"},
        "body": {
            "at": "{{timestamp}}",
            "ms": "{{timestamp_ms}}",
            "attempt": "{{attempt}}",
            "text": "run {{run_id}} of {{job}} ({{unknown}} stays)",
            "count": 3
        }
    });
    daemon
        .create_job(json!({
            "name": "tokyo-ping",
            "plugin": "std.http",
            "schedule": {"cron": "0 9 * * *", "timezone": "Asia/Tokyo"},
            "http_allow": ["127.0.0.1"],
            "input": input,
        }))
        .await;
    let run = daemon.run_job("tokyo-ping", None).await;
    let run_id = run["id"].as_str().expect("a run id");
    assert_eq!(run["plugin"], "std.http@1", "{run}");

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, format!("/hook/{run_id}"));
    assert_eq!(request.query, "job=tokyo-ping&try=1");
    assert_eq!(request.headers["x-job"], "tokyo-ping");
    assert_eq!(request.headers["x-attempt"], "1");
    assert_eq!(request.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&request.body).expect("a JSON body");
    let at = body["at"].as_str().expect("a timestamp");
    let stamped = DateTime::parse_from_rfc3339(at).unwrap_or_else(|error| panic!("{at}: {error}"));
    assert_eq!(stamped.offset().local_minus_utc(), 9 * 3600, "{at} is Tokyo wall time");
    assert!(at.ends_with("+09:00"), "{at}");
    let scheduled = DateTime::parse_from_rfc3339(run["scheduled_at"].as_str().expect("scheduled_at")).unwrap();
    assert_eq!(
        stamped.timestamp_millis(),
        scheduled.timestamp_millis(),
        "{at} is the scheduled instant"
    );
    assert_eq!(body["ms"], scheduled.timestamp_millis().to_string());
    assert_eq!(body["attempt"], "1");
    assert_eq!(
        body["text"],
        format!("run {run_id} of tokyo-ping ({{{{unknown}}}} stays)")
    );
    assert_eq!(body["count"], 3, "non-strings are sent as they are");

    let answer = output(&run);
    assert_eq!(answer["status"], 201, "{answer}");
    assert_eq!(answer["headers"]["x-receiver"], "yes", "{answer}");
    assert_eq!(answer["body"], r#"{"ok":true}"#, "{answer}");
    assert_eq!(
        answer
            .as_object()
            .map(|fields| fields.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["body".to_string(), "headers".to_string(), "status".to_string()])
    );
    assert!(
        daemon.log(run_id).await.contains("POST"),
        "the run's log names the request"
    );

    // A job of another schedule is in UTC; a body that is not UTF-8 comes back as base64.
    daemon
        .create_job(json!({
            "name": "every-ping",
            "plugin": "std.http",
            "schedule": {"every": "1h"},
            "http_allow": ["127.0.0.1"],
            "input": {"url": receiver.url("/binary?at={{timestamp}}")},
        }))
        .await;
    let run = daemon.run_job("every-ping", None).await;
    let request = receiver.seen().pop().expect("the second request");
    assert!(
        request.query.ends_with("%2B00%3A00"),
        "UTC, percent-encoded in a URL: {}",
        request.query
    );
    let answer = output(&run);
    assert_eq!(
        (answer["body"].as_str(), answer["body_encoding"].as_str()),
        (Some("//4AQQ=="), Some("base64"))
    );
}

#[tokio::test]
async fn a_status_outside_expect_fails_the_run_and_expect_admits_what_it_names() {
    let receiver = Receiver::start().await;
    let daemon = daemon();
    daemon
        .create_job(json!({
            "name": "hook",
            "plugin": "std.http",
            "http_allow": ["127.0.0.1"],
            "input": {"url": receiver.url("/")},
        }))
        .await;
    let not_found = run_with(&daemon, "hook", json!({"url": receiver.url("/status/404")})).await;
    let message = failure(&not_found);
    for part in ["404", "[2xx]", "answer 404: the receiver says so"] {
        assert!(message.contains(part), "{part:?} in {message}");
    }
    let expected = run_with(
        &daemon,
        "hook",
        json!({"url": receiver.url("/status/404"), "expect": [404]}),
    )
    .await;
    assert_eq!(output(&expected)["status"], 404);
    let range = run_with(
        &daemon,
        "hook",
        json!({"url": receiver.url("/status/502"), "expect": ["5xx"]}),
    )
    .await;
    assert_eq!(output(&range)["status"], 502);
    let outside = run_with(
        &daemon,
        "hook",
        json!({"url": receiver.url("/status/404"), "expect": ["5xx", 200]}),
    )
    .await;
    assert!(failure(&outside).contains("[5xx, 200]"));
    let server_error = run_with(&daemon, "hook", json!({"url": receiver.url("/status/500")})).await;
    assert!(failure(&server_error).contains("500"));

    // {{attempt}} follows retries: the receiver fails the first try only.
    daemon
        .create_job(json!({
            "name": "flaky",
            "plugin": "std.http",
            "http_allow": ["127.0.0.1"],
            "input": {"url": receiver.url("/flaky?try={{attempt}}")},
            "policy": {"retry": {"max_attempts": 2, "backoff": "100ms", "max_backoff": "200ms"}},
        }))
        .await;
    let answer = daemon
        .call(Method::POST, "/v1/jobs/flaky/run?wait=60s&final_attempt=true", None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["attempt"], 2, "{}", answer.body);
    assert_eq!(output(&answer.body)["body"], "fine on try=2");
}

#[tokio::test]
async fn bad_input_fails_the_run_naming_the_field_and_sends_nothing() {
    let receiver = Receiver::start().await;
    let daemon = daemon();
    daemon
        .create_job(json!({"name": "hook", "plugin": "std.http", "http_allow": ["127.0.0.1"]}))
        .await;
    let url = receiver.url("/");
    for (input, field) in [
        (json!({"method": "POST"}), "input.url"),
        (json!({"url": url, "expect": ["2xx", "9xx"]}), "input.expect[1]"),
        (json!({"url": url, "timeout": "soon"}), "input.timeout"),
        (json!({"url": url, "timeout": "5m"}), "input.timeout"),
        (json!({"url": url, "headers": {"x-n": 5}}), "input.headers.x-n"),
        (json!({"url": url, "hedaers": {}}), "input.hedaers"),
    ] {
        let run = run_with(&daemon, "hook", input.clone()).await;
        let message = failure(&run);
        assert!(message.starts_with(field), "{input}: {message}");
    }
    // No input at all.
    let run = daemon.run_job("hook", None).await;
    assert!(failure(&run).contains("url"), "{run}");
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
}

#[tokio::test]
async fn a_host_outside_the_jobs_http_allow_or_the_wall_is_refused_and_the_receiver_sees_nothing() {
    let receiver = Receiver::start().await;
    let daemon = daemon();
    let input = json!({"url": receiver.url("/"), "method": "POST", "body": "hello"});
    daemon
        .create_job(json!({
            "name": "elsewhere",
            "plugin": "std.http",
            "http_allow": ["hooks.example.com"],
            "input": input,
        }))
        .await;
    let refused = daemon.run_job("elsewhere", None).await;
    assert!(failure(&refused).contains("not in this job's http_allow"), "{refused}");
    daemon
        .create_job(json!({"name": "nowhere", "plugin": "std.http", "input": input}))
        .await;
    let refused = daemon.run_job("nowhere", None).await;
    assert!(failure(&refused).contains("no http_allow"), "{refused}");

    // Allowed by the job, but 127.0.0.2 is not among the daemon's private
    // ranges: the wall refuses it before any connection.
    daemon
        .create_job(json!({
            "name": "walled",
            "plugin": "std.http",
            "http_allow": ["127.0.0.2"],
            "input": {"url": format!("http://127.0.0.2:{}/", receiver.port)},
        }))
        .await;
    let walled = daemon.run_job("walled", None).await;
    assert!(failure(&walled).contains("127.0.0.2 is a loopback address"), "{walled}");

    // The tenant's cap holds whatever the job lists.
    let token = daemon
        .new_tenant("capped", json!({"http_allow": ["hooks.example.com"]}))
        .await;
    let created = daemon
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "hook", "plugin": "std.http", "http_allow": ["127.0.0.1"], "input": input})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let capped = daemon
        .call_as(Some(&token), Method::POST, "/v1/jobs/hook/run?wait=60s", None)
        .await;
    assert!(
        failure(&capped.body).contains("outside the hosts this tenant may reach"),
        "{}",
        capped.body
    );
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
}

#[tokio::test]
async fn std_http_is_listed_cannot_be_deleted_or_uploaded_over_and_takes_no_quota() {
    let receiver = Receiver::start().await;
    let mut daemon = daemon();
    // A quota smaller than std.http itself: it does not count.
    let token = daemon
        .new_tenant("small", json!({"quotas": {"plugin_bytes": 1024}}))
        .await;
    let listed = daemon.call_as(Some(&token), Method::GET, "/v1/plugins", None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let plugins = listed.body["plugins"].as_array().expect("a list").clone();
    let builtin = plugins
        .iter()
        .find(|plugin| plugin["name"] == "std.http")
        .unwrap_or_else(|| panic!("std.http is listed: {plugins:?}"));
    assert_eq!(builtin["builtin"], true);
    assert_eq!(builtin["latest"], 1);
    let version = &builtin["versions"][0];
    assert_eq!(version["reference"], "std.http@1");
    assert!(
        version["digest"]
            .as_str()
            .is_some_and(|digest| digest.starts_with("sha256:"))
    );
    assert!(version["size"].as_u64().is_some_and(|size| size > 1024), "{version}");
    assert_eq!(version["uploaded_at"], Value::Null);
    let shown = daemon
        .call_as(Some(&token), Method::GET, "/v1/plugins/std.http", None)
        .await;
    assert_eq!((shown.status, &shown.body["builtin"]), (StatusCode::OK, &json!(true)));
    assert_eq!(shown.body["versions"][0]["digest"], version["digest"]);

    let deleted = daemon
        .call_as(Some(&token), Method::DELETE, "/v1/plugins/std.http", None)
        .await;
    assert_eq!(
        (deleted.status, deleted.code()),
        (StatusCode::FORBIDDEN, "builtin_plugin")
    );
    assert!(deleted.message().contains("built-in"), "{}", deleted.message());
    let hello = common::plugin_bytes("hello");
    for name in ["std.http", "std.mine"] {
        let uploaded = daemon.upload_bytes_as(&token, name, hello.clone()).await;
        assert_eq!(
            (uploaded.status, uploaded.code()),
            (StatusCode::FORBIDDEN, "builtin_plugin"),
            "{name}: {}",
            uploaded.body
        );
        assert!(uploaded.message().contains("built-in"), "{}", uploaded.message());
    }
    let admin_delete = daemon.call(Method::DELETE, "/v1/plugins/std.http", None).await;
    assert_eq!(admin_delete.code(), "builtin_plugin");

    // A job may name it with or without its version, not with another.
    for (reference, status) in [
        ("std.http", StatusCode::CREATED),
        ("std.http@1", StatusCode::CREATED),
        ("std.http@2", StatusCode::BAD_REQUEST),
        ("std.nothing", StatusCode::BAD_REQUEST),
    ] {
        let name = format!("job-{}", reference.replace(['.', '@'], "-"));
        let body = json!({"name": name, "plugin": reference, "http_allow": ["127.0.0.1"], "input": {"url": receiver.url("/")}});
        let created = daemon.call_as(Some(&token), Method::POST, "/v1/jobs", Some(body)).await;
        assert_eq!(created.status, status, "{reference}: {}", created.body);
    }
    let run = daemon
        .call_as(Some(&token), Method::POST, "/v1/jobs/job-std-http-1/run?wait=60s", None)
        .await;
    assert_eq!(output(&run.body)["status"], 201);
    let tenant = daemon.call(Method::GET, "/v1/tenants/small", None).await;
    assert_eq!(tenant.body["usage"]["plugin_bytes"], 0, "{}", tenant.body);

    // Uploads are listed beside it as not built in; the digest stays across a restart.
    let token_plugins = daemon.upload_bytes("hello", hello).await;
    assert_eq!(token_plugins.status, StatusCode::CREATED, "{}", token_plugins.body);
    let listed = daemon.call(Method::GET, "/v1/plugins", None).await;
    let flags: BTreeMap<String, bool> = listed.body["plugins"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|plugin| {
            (
                plugin["name"].as_str().unwrap_or_default().to_string(),
                plugin["builtin"] == true,
            )
        })
        .collect();
    assert_eq!(
        flags,
        BTreeMap::from([("hello".to_string(), false), ("std.http".to_string(), true)])
    );
    daemon.restart();
    let again = daemon.call(Method::GET, "/v1/plugins/std.http", None).await;
    assert_eq!(again.body["versions"][0]["digest"], version["digest"]);
}

#[tokio::test]
async fn the_service_calls_example_applies_and_each_kind_of_schedule_calls_the_service() {
    let receiver = Receiver::start().await;
    let daemon = daemon();
    // The example, pointed at the receiver and its times brought down to
    // seconds; the one-time call fails its first attempt and is retried.
    let example = std::fs::read_to_string(common::repo_root().join("examples").join("service-calls.toml"))
        .expect("the example file");
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(3)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let text = example
        .replace("127.0.0.1:8098", &format!("127.0.0.1:{}", receiver.port))
        .replace("*/20 * * * * *", "*/2 * * * * *")
        .replace("every = \"1m\"", "every = \"2s\"")
        .replace("after = \"30s\"", "after = \"2s\"")
        .replace("2026-12-31T23:00:00Z", &soon)
        .replace("/reports/year-end?attempt={{attempt}}", "/flaky?try={{attempt}}")
        .replace("backoff = \"1m\"", "backoff = \"1s\"");
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("service-calls.toml");
    std::fs::write(&file, text).expect("writing the file");
    let applied = daemon.cli(&["apply", "-f", file.to_str().expect("a UTF-8 path")]);
    assert!(applied.contains("applied: 4 created"), "{applied}");
    let health = daemon.call(Method::GET, "/v1/jobs/health-check", None).await.body;
    assert_eq!(health["policy"]["priority"], "high", "{health}");
    let report = daemon.call(Method::GET, "/v1/jobs/year-end-report", None).await.body;
    assert_eq!(report["policy"]["priority"], "critical", "{report}");

    let count = |seen: &[Seen], path: &str| seen.iter().filter(|request| request.path == path).count();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let seen = receiver.seen();
        let done = count(&seen, "/health") >= 2
            && count(&seen, "/orders/sync") >= 2
            && count(&seen, "/queue/poll") >= 2
            && count(&seen, "/flaky") >= 2;
        if done {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not every job called: {seen:#?}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let seen = receiver.seen();
    let order = seen
        .iter()
        .find(|request| request.path == "/orders/sync")
        .expect("an order sync");
    assert_eq!(order.method, "POST");
    let body: Value = serde_json::from_slice(&order.body).expect("a JSON body");
    assert_eq!(body["job"], "sync-orders", "{body}");
    assert!(
        DateTime::parse_from_rfc3339(body["due"].as_str().unwrap_or_default()).is_ok(),
        "{body}"
    );
    // The one-time call: its first attempt met a 503 and its retry got through.
    let tries: Vec<&str> = seen
        .iter()
        .filter(|request| request.path == "/flaky")
        .map(|request| request.query.as_str())
        .collect();
    assert_eq!(tries, ["try=1", "try=2"], "{seen:#?}");
    let runs = daemon
        .call(Method::GET, "/v1/runs?job=year-end-report", None)
        .await
        .body;
    let statuses: Vec<&str> = runs["runs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|run| run["status"].as_str())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed"], "{runs}");
}

#[tokio::test]
async fn the_minutely_webhook_example_posts_its_local_timestamp_and_its_runs_are_watched_over_sse() {
    use futures_util::StreamExt;
    let receiver = Receiver::start().await;
    let daemon = daemon();
    let example = std::fs::read_to_string(common::repo_root().join("examples").join("webhook-every-minute.json"))
        .expect("the example file");
    let job: Value = serde_json::from_str(&example.replace("127.0.0.1:8098", &format!("127.0.0.1:{}", receiver.port)))
        .expect("the example is JSON");
    let created = daemon.create_job(job).await;
    assert_eq!(created["schedule"]["timezone"], "America/Sao_Paulo");
    assert!(created["next_fire_at"].is_string(), "{created}");

    // Watch the job's events, as `curl -N .../v1/events?job=minutely-webhook` would.
    let events = reqwest::Client::new()
        .get(format!("{}/v1/events?job=minutely-webhook", daemon.url))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .expect("the event stream");
    assert_eq!(events.status(), StatusCode::OK);
    let mut stream = events.bytes_stream();
    // A run now rather than at the next minute; the scheduled ones are the same call.
    let run = daemon.run_job("minutely-webhook", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mut watched = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !watched.contains("event: run.finished") {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(chunk))) => watched.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled ({other:?}): {watched}"),
        }
    }
    assert!(watched.contains("event: run.started"), "{watched}");
    assert!(watched.contains(run["id"].as_str().unwrap_or_default()), "{watched}");

    let tick = receiver
        .seen()
        .into_iter()
        .find(|request| request.path == "/tick")
        .expect("the webhook was called");
    assert_eq!(tick.headers.get("x-job").map(String::as_str), Some("minutely-webhook"));
    let body: Value = serde_json::from_slice(&tick.body).expect("a JSON body");
    let at = body["at"].as_str().unwrap_or_default();
    // São Paulo is UTC-3 all year.
    assert!(at.ends_with("-03:00"), "{body}");
    let instant = DateTime::parse_from_rfc3339(at).expect("RFC 3339");
    assert_eq!(body["at_ms"], instant.timestamp_millis().to_string(), "{body}");
    assert_eq!(body["run"], run["id"], "{body}");
}
