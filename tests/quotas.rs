//! Black-box tests of tenant quotas: each quota, when hit, answers its 4xx
//! (or 429) or fails the plugin's write, and a tenant flooding the queue
//! with slow runs holds only its concurrency share.

mod common;

use std::time::Duration;

use common::{TestDaemon, plugin_bytes, texts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn post(daemon: &TestDaemon, token: &str, path: &str, body: Value) -> common::Answer {
    daemon.call_as(Some(token), Method::POST, path, Some(body)).await
}

#[tokio::test]
async fn each_quota_refuses_what_passes_it_with_a_clear_error() {
    let daemon = TestDaemon::start();
    let hello = plugin_bytes("hello");
    let quotas = json!({
        "plugin_bytes": hello.len() + 100,
        "jobs": 2,
        "max_timeout": "2s",
        "max_memory": "32MiB",
        "max_fuel": 2_000_000_000u64,
        "kv_bytes": 1000,
    });
    let token = daemon.new_tenant("acme", json!({"quotas": quotas})).await;
    let shown = daemon.call(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(shown.body["quotas"]["max_timeout"], "2s", "{}", shown.body);
    assert_eq!(
        shown.body["quotas"]["concurrent_runs"], 8,
        "defaults fill the rest: {}",
        shown.body
    );

    // Plugin bytes: hello fits, the same bytes again are free, more do not fit.
    let first = daemon.upload_bytes_as(&token, "hello", hello.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let same = daemon.upload_bytes_as(&token, "hello", hello.clone()).await;
    assert_eq!(same.status, StatusCode::OK, "{}", same.body);
    let more = daemon.upload_bytes_as(&token, "kv_fill", plugin_bytes("kv_fill")).await;
    assert_eq!(
        (more.status, more.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded"),
        "{}",
        more.body
    );
    assert!(more.message().contains("plugin_bytes"), "{}", more.message());
    let listed = daemon.call_as(Some(&token), Method::GET, "/v1/plugins", None).await;
    let uploaded = listed.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|plugin| plugin["builtin"] == false);
    assert_eq!(uploaded.count(), 1, "nothing half-written");
    daemon
        .call(
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"quotas": {"plugin_bytes": null}})),
        )
        .await;
    let more = daemon.upload_bytes_as(&token, "kv_fill", plugin_bytes("kv_fill")).await;
    assert_eq!(more.status, StatusCode::CREATED, "the limit lifted: {}", more.body);

    // Ceilings: a job asking for more is refused naming the field; one
    // asking nothing gets the ceiling, not the daemon's larger default.
    for (limits, field) in [
        (json!({"timeout": "5s"}), "limits.timeout"),
        (json!({"memory": "64MiB"}), "limits.memory"),
        (json!({"fuel": 3_000_000_000u64}), "limits.fuel"),
    ] {
        let body = json!({"name": "big", "plugin": "hello", "limits": limits});
        let answer = post(&daemon, &token, "/v1/jobs", body).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, "invalid_field")
        );
        assert!(answer.message().starts_with(field), "{}", answer.message());
    }
    let job = post(&daemon, &token, "/v1/jobs", json!({"name": "one", "plugin": "hello"})).await;
    assert_eq!(job.status, StatusCode::CREATED, "{}", job.body);
    assert_eq!(job.body["limits"]["timeout"], "2s", "{}", job.body);
    assert_eq!(job.body["limits"]["memory"], 32 << 20);
    assert_eq!(
        job.body["limits"]["fuel"], 2_000_000_000u64,
        "under a fuel ceiling every job is metered: {}",
        job.body
    );

    // Jobs: two fit, a third does not (by POST or PUT) until one goes.
    let fill = json!({"name": "fill", "plugin": "kv_fill", "input": {"key": "k", "bytes": 10}});
    assert_eq!(
        post(&daemon, &token, "/v1/jobs", fill).await.status,
        StatusCode::CREATED
    );
    let third = post(&daemon, &token, "/v1/jobs", json!({"name": "three", "plugin": "hello"})).await;
    assert_eq!(
        (third.status, third.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded"),
        "{}",
        third.body
    );
    assert!(third.message().contains("jobs"), "{}", third.message());
    let put = daemon
        .call_as(
            Some(&token),
            Method::PUT,
            "/v1/jobs/three",
            Some(json!({"plugin": "hello"})),
        )
        .await;
    assert_eq!(put.code(), "quota_exceeded");
    let replace = daemon
        .call_as(
            Some(&token),
            Method::PUT,
            "/v1/jobs/one",
            Some(json!({"plugin": "hello", "input": 2})),
        )
        .await;
    assert_eq!(
        replace.status,
        StatusCode::OK,
        "replacing an existing job is not a new one"
    );
    daemon.call_as(Some(&token), Method::DELETE, "/v1/jobs/one", None).await;
    let third = post(&daemon, &token, "/v1/jobs", json!({"name": "three", "plugin": "hello"})).await;
    assert_eq!(third.status, StatusCode::CREATED);

    // kv bytes: writes within the quota succeed, the one passing it fails
    // inside the plugin with the host's message, and the state stays.
    let run = |bytes: u64| {
        let body = json!({"input": {"key": "k", "bytes": bytes}});
        daemon.call_as(Some(&token), Method::POST, "/v1/jobs/fill/run?wait=60s", Some(body))
    };
    let fits = run(900).await;
    assert_eq!(fits.body["status"], "succeeded", "{}", fits.body);
    let too_much = run(2000).await;
    assert_eq!(too_much.body["status"], "failed", "{}", too_much.body);
    assert_eq!(too_much.body["error"]["kind"], "plugin_error");
    let message = too_much.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("kv_bytes") && message.contains("1000"), "{message}");
    let usage = daemon.call(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(usage.body["usage"]["kv_bytes"], 901, "{}", usage.body);
    // Shrinking a value always works, even over the quota.
    assert_eq!(run(5).await.body["status"], "succeeded");
    // Deleting the job gives its kv bytes back.
    daemon
        .call_as(Some(&token), Method::DELETE, "/v1/jobs/fill", None)
        .await;
    let usage = daemon.call(Method::GET, "/v1/tenants/acme", None).await;
    assert_eq!(usage.body["usage"]["kv_bytes"], 0, "{}", usage.body);

    // Quotas are the admin's: a tenant cannot raise its own.
    let own = daemon
        .call_as(
            Some(&token),
            Method::PATCH,
            "/v1/tenants/acme",
            Some(json!({"quotas": {"jobs": 100}})),
        )
        .await;
    assert_eq!((own.status, own.code()), (StatusCode::FORBIDDEN, "admin_only"));
    for (bad, field) in [
        (json!({"quotas": {"jobs": "many"}}), "quotas.jobs"),
        (json!({"quotas": {"concurrent_runs": 0}}), "quotas.concurrent_runs"),
        (json!({"quotas": {"gpu": 1}}), "quotas"),
        (json!({"http_allow": ["not a host"]}), "http_allow[0]"),
        (json!({"name": "x"}), "name: unknown field"),
    ] {
        let answer = daemon.call(Method::PATCH, "/v1/tenants/acme", Some(bad.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}: {}", answer.body);
        assert!(answer.message().contains(field), "{bad}: {}", answer.message());
    }
}

#[tokio::test]
async fn a_tenant_over_its_request_rate_gets_429_and_others_do_not_notice() {
    let daemon = TestDaemon::start();
    let slow = daemon
        .new_tenant("slow", json!({"quotas": {"requests_per_second": 2}}))
        .await;
    let other = daemon.new_tenant("other", json!({"quotas": {}})).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let answer = daemon.call_as(Some(&slow), Method::GET, "/v1/jobs", None).await;
        statuses.push(answer.status);
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(answer.code(), "rate_limited");
            assert!(answer.message().contains("requests_per_second"), "{}", answer.message());
        }
    }
    let limited = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(limited >= 5, "a burst of 4 passes, the rest wait: {statuses:?}");
    let raw = reqwest::Client::new()
        .get(format!("{}/v1/jobs", daemon.url))
        .bearer_auth(&slow)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = raw.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    for _ in 0..20 {
        let answer = daemon.call_as(Some(&other), Method::GET, "/v1/jobs", None).await;
        assert_eq!(answer.status, StatusCode::OK, "another tenant is not limited");
        assert_eq!(daemon.call(Method::GET, "/v1/jobs", None).await.status, StatusCode::OK);
    }
    // The budget refills.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = daemon.call_as(Some(&slow), Method::GET, "/v1/jobs", None).await;
    assert_eq!(later.status, StatusCode::OK);
}

/// The runs of `job` (as `token`), oldest first.
async fn runs_of(daemon: &TestDaemon, token: &str, job: &str) -> Vec<Value> {
    let answer = daemon
        .call_as(Some(token), Method::GET, &format!("/v1/runs?job={job}&limit=500"), None)
        .await;
    let mut runs = answer.body["runs"].as_array().cloned().unwrap_or_default();
    runs.reverse();
    runs
}

#[tokio::test]
async fn a_tenant_flooding_the_queue_holds_only_its_share_and_others_run_on_time() {
    // Two slots in all. Without a per-tenant share the flood would take both
    // and the every-second job would wait for a spin run to end (2 s).
    let daemon = TestDaemon::start_with(&["--max-concurrent-runs", "2"], &[]);
    let greedy = daemon
        .new_tenant("greedy", json!({"quotas": {"concurrent_runs": 1}}))
        .await;
    let calm = daemon
        .new_tenant("calm", json!({"quotas": {"concurrent_runs": 1}}))
        .await;
    assert_eq!(
        daemon
            .upload_bytes_as(&greedy, "spin", plugin_bytes("spin"))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        daemon
            .upload_bytes_as(&calm, "hello", plugin_bytes("hello"))
            .await
            .status,
        StatusCode::CREATED
    );
    let spin = json!({"name": "spin", "plugin": "spin", "limits": {"timeout": "2s"}, "policy": {"overlap": "allow"}});
    assert_eq!(
        post(&daemon, &greedy, "/v1/jobs", spin).await.status,
        StatusCode::CREATED
    );
    // The flood: 8 runs of 2 s each, queued at once.
    for _ in 0..8 {
        let queued = post(&daemon, &greedy, "/v1/jobs/spin/run", json!({})).await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    }
    let every = json!({"name": "tick", "plugin": "hello", "schedule": {"every": "1s"}});
    assert_eq!(
        post(&daemon, &calm, "/v1/jobs", every).await.status,
        StatusCode::CREATED
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    let ticks: Vec<Value> = runs_of(&daemon, &calm, "tick")
        .await
        .into_iter()
        .filter(|run| run["status"] == "succeeded")
        .collect();
    assert!(ticks.len() >= 4, "the every-second job kept firing: {ticks:?}");
    for tick in &ticks {
        let lateness = tick["lateness_ms"].as_i64().unwrap();
        assert!(
            lateness < 1000,
            "no tick waited behind the flood for a fire's length: {tick}"
        );
    }
    // The flood ran one at a time: each spin run started after the one
    // before it ended. The rest wait their turn; none failed for it.
    let spins = runs_of(&daemon, &greedy, "spin").await;
    assert_eq!(spins.len(), 8);
    let mut ran: Vec<(String, String)> = spins
        .iter()
        .filter(|run| run["finished_at"].is_string())
        .map(|run| {
            (
                run["started_at"].as_str().unwrap().to_string(),
                run["finished_at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    ran.sort();
    assert!(ran.len() >= 2, "{spins:?}");
    for pair in ran.windows(2) {
        let started = chrono::DateTime::parse_from_rfc3339(&pair[1].0).unwrap();
        let previous_end = chrono::DateTime::parse_from_rfc3339(&pair[0].1).unwrap();
        assert!(started >= previous_end, "two spin runs overlapped: {pair:?}");
    }
    assert!(
        spins
            .iter()
            .all(|run| run["status"] != "failed" || run["error"]["kind"] == "timeout"),
        "{spins:?}"
    );
    let waiting = spins.iter().filter(|run| run["status"] == "queued").count();
    assert!(waiting >= 4, "most of the flood is still queued: {spins:?}");
}

/// A port that takes connections and never answers: a `fetch` run to it
/// holds its slot, without using a core, until its timeout.
fn silent_port() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A job `name` of `fetch` calling the silent `port`, for `seconds` at most.
fn hanging_job(name: &str, port: u16, seconds: u64) -> Value {
    json!({
        "name": name,
        "plugin": "fetch",
        "limits": {"timeout": format!("{seconds}s")},
        "policy": {"overlap": "allow"},
        "http_allow": [format!("127.0.0.1:{port}")],
        "input": {"url": format!("http://127.0.0.1:{port}/"), "timeout_ms": seconds * 1000},
    })
}

/// Uploads the built plugins `names` as `token`.
async fn upload_all(daemon: &TestDaemon, token: &str, names: &[&str]) {
    for name in names {
        let uploaded = daemon.upload_bytes_as(token, name, plugin_bytes(name)).await;
        assert!(uploaded.status.is_success(), "{name}: {}", uploaded.body);
    }
}

/// Polls `GET path` as `token` until `done` holds of its body (10 s at most).
async fn poll_until(daemon: &TestDaemon, token: &str, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = daemon.call_as(Some(token), Method::GET, path, None).await;
        if done(&answer.body) {
            return answer.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "GET {path} never came to what was awaited: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant as the admin sees it, with its quotas and usage.
async fn tenant(daemon: &TestDaemon, name: &str) -> Value {
    daemon
        .call(Method::GET, &format!("/v1/tenants/{name}"), None)
        .await
        .body
}

#[tokio::test]
async fn a_tenant_at_its_queued_runs_quota_gets_429_and_its_fires_are_skipped_not_lost() {
    let (_silent, port) = silent_port();
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    let busy = daemon
        .new_tenant("busy", json!({"quotas": {"concurrent_runs": 1, "queued_runs": 2}}))
        .await;
    upload_all(&daemon, &busy, &["fetch", "hello"]).await;
    let created = post(&daemon, &busy, "/v1/jobs", hanging_job("hang", port, 30)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let queue = || post(&daemon, &busy, "/v1/jobs/hang/run", json!({}));

    // One run holds the tenant's slot; two more wait; the next is refused.
    let first = queue().await;
    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let first = first.body["id"].as_str().unwrap().to_string();
    poll_until(&daemon, &busy, &format!("/v1/runs/{first}"), |run| {
        run["status"] == "running"
    })
    .await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let queued = queue().await;
        assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
        waiting.push(queued.body["id"].as_str().unwrap().to_string());
    }
    let refused = queue().await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
        "{}",
        refused.body
    );
    assert!(
        refused.message().contains("queued_runs") && refused.message().contains('2'),
        "{}",
        refused.message()
    );
    let shown = tenant(&daemon, "busy").await;
    assert_eq!(shown["quotas"]["queued_runs"], 2, "{shown}");
    assert_eq!(shown["usage"]["queued_runs"], 2, "{shown}");
    assert_eq!(
        runs_of(&daemon, &busy, "hang").await.len(),
        3,
        "the refused run was not written"
    );

    // A retry asked for over the API counts the same way.
    let cancelled = post(&daemon, &busy, &format!("/v1/runs/{}/cancel", waiting[0]), json!({})).await;
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    let again = queue().await;
    assert_eq!(
        again.status,
        StatusCode::ACCEPTED,
        "the cancel made room: {}",
        again.body
    );
    waiting[0] = again.body["id"].as_str().unwrap().to_string();
    let cancelled_id = cancelled.body["id"].as_str().unwrap().to_string();
    let retry = post(&daemon, &busy, &format!("/v1/runs/{cancelled_id}/retry"), json!({})).await;
    assert_eq!(
        (retry.status, retry.code()),
        (StatusCode::TOO_MANY_REQUESTS, "queue_full"),
        "{}",
        retry.body
    );

    // Other tenants do not notice.
    daemon.job_with("greet", "hello", json!({})).await;
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");

    // A schedule of the full tenant skips its fires and moves on.
    let tick = json!({"name": "tick", "plugin": "hello", "schedule": {"every": "1s"}});
    assert_eq!(post(&daemon, &busy, "/v1/jobs", tick).await.status, StatusCode::CREATED);
    let skipping = poll_until(&daemon, &busy, "/v1/jobs/tick", |job| {
        job["skipped_fires"].as_u64().unwrap_or(0) >= 2
    })
    .await;
    assert!(skipping["next_fire_at"].is_string(), "{skipping}");
    assert!(runs_of(&daemon, &busy, "tick").await.is_empty());
    assert_eq!(tenant(&daemon, "busy").await["usage"]["queued_runs"], 2);

    // Room again: the schedule's next fire is queued.
    for id in &waiting {
        let cancelled = post(&daemon, &busy, &format!("/v1/runs/{id}/cancel"), json!({})).await;
        assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    }
    poll_until(&daemon, &busy, "/v1/runs?job=tick", |runs| {
        runs["runs"].as_array().is_some_and(|runs| !runs.is_empty())
    })
    .await;
}

/// Runs `job` (as `token`) with a text input of `size` bytes and waits for
/// it; its id.
async fn run_with_input(daemon: &TestDaemon, token: &str, job: &str, size: usize) -> String {
    let body = json!({"input": "x".repeat(size)});
    let answer = post(daemon, token, &format!("/v1/jobs/{job}/run?wait=60s"), body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["status"], "succeeded", "{}", answer.body);
    answer.body["id"].as_str().unwrap().to_string()
}

/// The ids of the runs of `job` (as `token`), oldest first.
async fn run_ids(daemon: &TestDaemon, token: &str, job: &str) -> Vec<String> {
    texts(&Value::Array(runs_of(daemon, token, job).await), "id")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn a_run_whose_input_passes_the_run_bytes_quota_gets_403_and_others_make_room_from_the_oldest() {
    let daemon = TestDaemon::start();
    let small = daemon
        .new_tenant("small", json!({"quotas": {"run_bytes": "8KiB"}}))
        .await;
    upload_all(&daemon, &small, &["noop"]).await;
    let echo = json!({"name": "echo", "plugin": "noop"});
    assert_eq!(
        post(&daemon, &small, "/v1/jobs", echo).await.status,
        StatusCode::CREATED
    );

    let too_big = post(
        &daemon,
        &small,
        "/v1/jobs/echo/run",
        json!({"input": "x".repeat(10_000)}),
    )
    .await;
    assert_eq!(
        (too_big.status, too_big.code()),
        (StatusCode::FORBIDDEN, "quota_exceeded"),
        "{}",
        too_big.body
    );
    assert!(
        too_big.message().starts_with("run_bytes:") && too_big.message().contains("8192"),
        "{}",
        too_big.message()
    );
    assert!(
        run_ids(&daemon, &small, "echo").await.is_empty(),
        "nothing half-written"
    );

    // Each run keeps ~1 KB of input and echoes it as output: the fifth
    // does not fit beside the four before it, and the oldest make room.
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(run_with_input(&daemon, &small, "echo", 1000).await);
    }
    let shown = tenant(&daemon, "small").await;
    assert_eq!(shown["quotas"]["run_bytes"], 8192, "{shown}");
    let settled = poll_until(&daemon, &daemon.token, "/v1/tenants/small", |tenant| {
        tenant["usage"]["run_bytes"].as_u64().is_some_and(|used| used <= 8192)
    })
    .await;
    assert!(settled["usage"]["run_bytes"].as_u64().unwrap() > 4000, "{settled}");
    let kept = run_ids(&daemon, &small, "echo").await;
    assert!((2..5).contains(&kept.len()), "{kept:?}");
    assert_eq!(kept, ids[ids.len() - kept.len()..], "the newest are kept");
}

#[tokio::test]
async fn retention_trims_a_tenant_past_its_run_bytes_quota_oldest_first() {
    let daemon = TestDaemon::start();
    let trim = daemon.new_tenant("trim", json!({})).await;
    upload_all(&daemon, &trim, &["noop"]).await;
    let echo = json!({"name": "echo", "plugin": "noop"});
    assert_eq!(post(&daemon, &trim, "/v1/jobs", echo).await.status, StatusCode::CREATED);
    let mut ids = Vec::new();
    for _ in 0..6 {
        ids.push(run_with_input(&daemon, &trim, "echo", 1000).await);
    }
    let used = tenant(&daemon, "trim").await["usage"]["run_bytes"].as_u64().unwrap();
    assert!(used > 12_000, "six runs of ~2 KB each: {used}");

    // The admin halves the quota (with the CLI); retention trims.
    let quota = used / 2;
    daemon.cli(&["tenant", "set", "trim", "--quota", &format!("run_bytes={quota}")]);
    let trimmed = poll_until(&daemon, &daemon.token, "/v1/tenants/trim", |tenant| {
        tenant["usage"]["run_bytes"].as_u64().is_some_and(|used| used <= quota)
    })
    .await;
    assert_eq!(trimmed["quotas"]["run_bytes"], quota);
    let kept = run_ids(&daemon, &trim, "echo").await;
    assert!((2..=3).contains(&kept.len()), "{kept:?}");
    assert_eq!(kept, ids[ids.len() - kept.len()..], "the oldest went first");
    let oldest = daemon
        .call_as(Some(&trim), Method::GET, &format!("/v1/runs/{}", ids[0]), None)
        .await;
    assert_eq!(oldest.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn run_bytes_and_queued_runs_are_right_after_a_kill_and_do_not_drift() {
    let (_silent, port) = silent_port();
    let mut daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    let keep = daemon
        .new_tenant("keep", json!({"quotas": {"concurrent_runs": 1, "run_bytes": "1MiB"}}))
        .await;
    upload_all(&daemon, &keep, &["noop", "fetch"]).await;
    let echo = json!({"name": "echo", "plugin": "noop"});
    assert_eq!(post(&daemon, &keep, "/v1/jobs", echo).await.status, StatusCode::CREATED);
    let hang = post(&daemon, &keep, "/v1/jobs", hanging_job("hang", port, 5)).await;
    assert_eq!(hang.status, StatusCode::CREATED, "{}", hang.body);
    for size in [10, 1000, 5000] {
        run_with_input(&daemon, &keep, "echo", size).await;
    }
    let usage = |body: &Value| body["usage"].clone();
    let before = usage(&tenant(&daemon, "keep").await);
    daemon.restart();
    assert_eq!(usage(&tenant(&daemon, "keep").await), before, "as it was at the kill");

    // Killed with a run running and one waiting behind it.
    let running = post(&daemon, &keep, "/v1/jobs/hang/run", json!({})).await;
    let running = running.body["id"].as_str().unwrap().to_string();
    poll_until(&daemon, &keep, &format!("/v1/runs/{running}"), |run| {
        run["status"] == "running"
    })
    .await;
    let queued = post(&daemon, &keep, "/v1/jobs/echo/run", json!({"input": "y".repeat(700)})).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.body);
    let queued = queued.body["id"].as_str().unwrap().to_string();
    let busy = usage(&tenant(&daemon, "keep").await);
    assert_eq!(busy["queued_runs"], 1, "{busy}");
    assert!(busy["run_bytes"].as_u64() > before["run_bytes"].as_u64(), "{busy}");
    // Long enough for the running mark to be durable: the restart fails
    // the run (`host_restart`) instead of running it again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.restart();
    poll_until(&daemon, &keep, &format!("/v1/runs/{queued}"), |run| {
        run["status"] == "succeeded"
    })
    .await;
    poll_until(&daemon, &keep, &format!("/v1/runs/{running}"), |run| {
        run["status"] == "failed"
    })
    .await;
    assert_eq!(tenant(&daemon, "keep").await["usage"]["queued_runs"], 0);

    // No drift: with every run deleted the count is back to exactly zero.
    let zero = daemon
        .call(
            Method::PATCH,
            "/v1/tenants/keep",
            Some(json!({"quotas": {"run_bytes": 0}})),
        )
        .await;
    assert_eq!(zero.status, StatusCode::OK, "{}", zero.body);
    poll_until(&daemon, &daemon.token, "/v1/tenants/keep", |tenant| {
        tenant["usage"]["run_bytes"] == 0
    })
    .await;
    let left = daemon.call_as(Some(&keep), Method::GET, "/v1/runs", None).await;
    assert_eq!(left.body["runs"], json!([]), "{}", left.body);
}
