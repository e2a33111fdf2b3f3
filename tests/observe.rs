//! Black-box tests of what the daemon tells its watchers: the Prometheus
//! scrape after known runs, the server-sent event stream (order, resume
//! with Last-Event-ID, one tenant never seeing another's events) and signed
//! webhooks to a receiver on 127.0.0.1.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::sse::{Events, kinds};
use common::webhooks::{Received, receiver, wait_for};
use common::{TestDaemon, plugin_bytes};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `name{label="value",...}` -> value, labels in sorted order.
fn scrape(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line is `series value`");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let mut labels: Vec<&str> = rest
                    .trim_end_matches('}')
                    .split(',')
                    .filter(|pair| !pair.is_empty())
                    .collect();
                labels.sort_unstable();
                (name, labels.join(","))
            }
            None => (series, String::new()),
        };
        samples.insert(format!("{name}{{{labels}}}"), value.parse().expect("a number"));
    }
    samples
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("{key} is not in the scrape: {:#?}", samples.keys().collect::<Vec<_>>()))
}

#[tokio::test]
async fn the_metrics_scrape_counts_known_runs() {
    let daemon = TestDaemon::start();
    // A fuel budget, so the fuel counter has something to count.
    daemon
        .job_with("greet", "hello", json!({"limits": {"fuel": 1_000_000_000u64}}))
        .await;
    daemon.job_with("crash", "trap", json!({})).await;
    for _ in 0..2 {
        assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
    }
    assert_eq!(daemon.run_job("crash", None).await["status"], "failed");
    daemon.call(Method::POST, "/v1/jobs/crash/pause", None).await;
    let answer = reqwest::Client::new()
        .get(format!("{}/metrics", daemon.url))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = answer.text().await.unwrap();
    let samples = scrape(&text);
    let tenant = r#"tenant="default""#;
    assert_eq!(
        sample(
            &samples,
            &format!(r#"sandcron_runs_total{{job="greet",status="succeeded",{tenant}}}"#)
        ),
        2.0
    );
    assert_eq!(
        sample(
            &samples,
            &format!(r#"sandcron_runs_total{{job="crash",status="failed",{tenant}}}"#)
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, &format!("sandcron_run_duration_seconds_count{{{tenant}}}")),
        3.0
    );
    assert_eq!(
        sample(&samples, &format!("sandcron_run_lateness_seconds_count{{{tenant}}}")),
        3.0
    );
    assert!(sample(&samples, &format!("sandcron_fuel_consumed_total{{{tenant}}}")) > 0.0);
    assert_eq!(
        sample(&samples, r#"sandcron_jobs{state="active",tenant="default"}"#),
        1.0
    );
    assert_eq!(
        sample(&samples, r#"sandcron_jobs{state="paused",tenant="default"}"#),
        1.0
    );
    assert_eq!(sample(&samples, r#"sandcron_queue_depth{priority="normal"}"#), 0.0);
    assert_eq!(sample(&samples, "sandcron_running_runs{}"), 0.0);
    // Two uploads compiled unmetered, and hello once more for the metered
    // engines at greet's first run.
    assert_eq!(
        sample(&samples, r#"sandcron_plugin_cache_total{result="compiled"}"#),
        3.0
    );
    assert!(sample(&samples, r#"sandcron_plugin_cache_total{result="memory"}"#) >= 2.0);
    assert_eq!(sample(&samples, "sandcron_plugin_compile_seconds_count{}"), 3.0);
    assert_eq!(
        sample(
            &samples,
            r#"sandcron_http_requests_total{method="POST",route="/v1/jobs/{id}/run",status="200"}"#
        ),
        3.0
    );
    assert_eq!(
        sample(
            &samples,
            r#"sandcron_http_requests_total{method="POST",route="/v1/plugins",status="201"}"#
        ),
        2.0
    );
    // A deleted job's run counters go with it; the others stay.
    let deleted = daemon.call(Method::DELETE, "/v1/jobs/crash", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let after = scrape(&daemon.metrics_text().await);
    assert!(
        !after.keys().any(|series| series.contains(r#"job="crash""#)),
        "{:#?}",
        after.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        sample(
            &after,
            &format!(r#"sandcron_runs_total{{job="greet",status="succeeded",{tenant}}}"#)
        ),
        2.0
    );
    // Tenant tokens do not see the daemon-wide scrape.
    let created = daemon
        .call(Method::POST, "/v1/tenants", Some(json!({"name": "acme"})))
        .await;
    let token = created.body["token"].as_str().unwrap();
    let refused = daemon.call_as(Some(token), Method::GET, "/metrics", None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "admin_only"));
}

#[tokio::test]
async fn the_event_stream_is_in_order_resumes_and_shows_only_the_tenants_own() {
    let daemon = TestDaemon::start();
    let tokens = [
        daemon.new_tenant("acme", json!({})).await,
        daemon.new_tenant("beta", json!({})).await,
    ];
    let (acme, beta) = (tokens[0].clone(), tokens[1].clone());
    for token in [&acme, &beta] {
        let upload = daemon.upload_bytes_as(token, "hello", plugin_bytes("hello")).await;
        assert_eq!(upload.status, StatusCode::CREATED);
    }
    let mut acme_events = Events::open(&daemon, &acme, "", None).await;
    let mut beta_events = Events::open(&daemon, &beta, "", None).await;

    let job = json!({"name": "greet", "plugin": "hello"});
    let created = daemon.call_as(Some(&acme), Method::POST, "/v1/jobs", Some(job)).await;
    let job_id = created.body["id"].as_str().unwrap().to_string();
    let run = daemon
        .call_as(Some(&acme), Method::POST, "/v1/jobs/greet/run?wait=60s", None)
        .await;
    let run_id = run.body["id"].as_str().unwrap().to_string();
    daemon
        .call_as(Some(&acme), Method::POST, "/v1/jobs/greet/pause", None)
        .await;

    let frames = acme_events.take(5, Duration::from_secs(10)).await;
    assert_eq!(
        kinds(&frames),
        ["job.created", "run.queued", "run.started", "run.finished", "job.paused"]
    );
    let ids: Vec<u64> = frames.iter().map(|frame| frame.id.unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids grow: {ids:?}");
    assert_eq!(frames[0].data["data"]["job_id"], job_id);
    let finished = &frames[3].data["data"];
    assert_eq!(finished["run_id"], run_id);
    assert_eq!(finished["status"], "succeeded");
    assert!(finished["duration_ms"].is_u64(), "{finished}");

    // beta saw none of it.
    assert!(beta_events.next(Duration::from_millis(300)).await.is_none());
    let job = json!({"name": "mine", "plugin": "hello"});
    daemon.call_as(Some(&beta), Method::POST, "/v1/jobs", Some(job)).await;
    let own = beta_events
        .next(Duration::from_secs(5))
        .await
        .expect("beta's own event");
    assert_eq!(
        (own.event.as_str(), &own.data["data"]["name"]),
        ("job.created", &json!("mine"))
    );
    assert!(
        acme_events.next(Duration::from_millis(300)).await.is_none(),
        "acme does not see beta's"
    );

    // Resuming after the queued event gives what came after it, in order.
    let mut resumed = Events::open(&daemon, &acme, "", Some(ids[1])).await;
    let replayed = resumed.take(3, Duration::from_secs(5)).await;
    assert_eq!(kinds(&replayed), ["run.started", "run.finished", "job.paused"]);
    assert_eq!(replayed[0].id, Some(ids[2]));
    // A filtered stream: only finished runs of the job, by name.
    let mut filtered = Events::open(&daemon, &acme, "?job=greet&types=run.finished", Some(ids[0] - 1)).await;
    let only = filtered.take(2, Duration::from_millis(500)).await;
    assert_eq!(kinds(&only), ["run.finished"]);

    // Bad filters are refused; another tenant's job is not found.
    for (query, status) in [
        ("?types=run.exploded", StatusCode::BAD_REQUEST),
        ("?job=greet", StatusCode::NOT_FOUND),
        ("?colour=red", StatusCode::BAD_REQUEST),
    ] {
        let answer = daemon
            .call_as(Some(&beta), Method::GET, &format!("/v1/events{query}"), None)
            .await;
        assert_eq!(answer.status, status, "{query}: {}", answer.body);
    }
}

fn verify(secret: &str, received: &Received) {
    use hmac::Mac;
    let timestamp = &received.headers["x-sandcron-timestamp"];
    let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&received.body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        received.headers["x-sandcron-signature"], expected,
        "the signature verifies"
    );
}

#[tokio::test]
async fn webhooks_arrive_signed_are_retried_and_never_hold_up_a_run() {
    let (port, got) = receiver().await;
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    let secret = daemon.call(Method::GET, "/v1/webhooks/secret", None).await.body["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let hook = |path: &str, on: Value| json!({"url": format!("http://127.0.0.1:{port}{path}"), "on": on});
    daemon
        .job_with(
            "greet",
            "hello",
            json!({"webhooks": [hook("/hook", json!(["started", "succeeded", "failed"])), hook("/slow", json!([]))]}),
        )
        .await;
    daemon
        .job_with(
            "crash",
            "trap",
            json!({"webhooks": [hook("/flaky", json!(["failed"]))]}),
        )
        .await;

    let started = std::time::Instant::now();
    let run = daemon.run_job("greet", None).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a slow receiver does not hold up the run"
    );
    let hooks = wait_for(&got, "/hook", 2, Duration::from_secs(5)).await;
    // Each delivery goes on its own: the two may arrive in either order.
    let mut events: Vec<&str> = hooks
        .iter()
        .map(|got| got.headers["x-sandcron-event"].as_str())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["run.started", "run.succeeded"]);
    for received in &hooks {
        verify(&secret, received);
        let body: Value = serde_json::from_slice(&received.body).unwrap();
        assert_eq!(body["run"]["run_id"], run["id"]);
        assert_eq!(body["tenant"], "default");
        assert_eq!(received.headers["content-type"], "application/json");
    }
    let succeeded = hooks
        .iter()
        .find(|got| got.headers["x-sandcron-event"] == "run.succeeded")
        .expect("the run.succeeded delivery");
    let body: Value = serde_json::from_slice(&succeeded.body).unwrap();
    assert_eq!(
        (body["event"].as_str(), body["run"]["status"].as_str()),
        (Some("run.succeeded"), Some("succeeded"))
    );

    // A failed delivery is retried (after ~1 s) with the same delivery id.
    let crash = daemon.run_job("crash", None).await;
    assert_eq!(crash["status"], "failed");
    let flaky = wait_for(&got, "/flaky", 2, Duration::from_secs(6)).await;
    assert_eq!(flaky.len(), 2, "one refused attempt, one retry");
    assert_eq!(
        flaky[0].headers["x-sandcron-delivery"],
        flaky[1].headers["x-sandcron-delivery"]
    );
    assert_eq!(
        (
            flaky[0].headers["x-sandcron-attempt"].as_str(),
            flaky[1].headers["x-sandcron-attempt"].as_str()
        ),
        ("1", "2")
    );
    verify(&secret, &flaky[1]);
    assert_eq!(
        serde_json::from_slice::<Value>(&flaky[1].body).unwrap()["event"],
        "run.failed"
    );
    // Another tenant signs with another secret.
    let created = daemon
        .call(Method::POST, "/v1/tenants", Some(json!({"name": "acme"})))
        .await;
    let token = created.body["token"].as_str().unwrap();
    let other = daemon
        .call_as(Some(token), Method::GET, "/v1/webhooks/secret", None)
        .await;
    assert_ne!(other.body["secret"].as_str().unwrap(), secret);
}

#[tokio::test]
async fn a_webhook_added_or_removed_applies_from_the_next_run() {
    let (port, got) = receiver().await;
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    daemon.job_with("greet", "hello", json!({})).await;
    // Runs without webhooks first: the notifier remembers there are none.
    for _ in 0..2 {
        assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
    }
    let hook = json!({"url": format!("http://127.0.0.1:{port}/hook"), "on": ["succeeded"]});
    let patched = daemon
        .call(Method::PATCH, "/v1/jobs/greet", Some(json!({"webhooks": [hook]})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let run = daemon.run_job("greet", None).await;
    let hooks = wait_for(&got, "/hook", 1, Duration::from_secs(5)).await;
    assert_eq!(hooks.len(), 1, "the new webhook was called");
    let body: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(body["run"]["run_id"], run["id"]);
    let patched = daemon
        .call(Method::PATCH, "/v1/jobs/greet", Some(json!({"webhooks": []})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "the removed webhook was not called");
}

#[tokio::test]
async fn a_webhook_to_a_refused_address_is_not_delivered() {
    let (port, got) = receiver().await;
    // No http_allow_private: the receiver on 127.0.0.1 is behind the wall.
    let daemon = TestDaemon::start();
    let hook = json!({"url": format!("http://127.0.0.1:{port}/hook"), "on": ["succeeded"]});
    daemon.job_with("greet", "hello", json!({"webhooks": [hook]})).await;
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(got.lock().unwrap().is_empty(), "the wall refused the delivery");
    let bad = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "bad", "plugin": "hello", "webhooks": [{"url": "ftp://x/"}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().starts_with("webhooks[0].url"), "{}", bad.message());
}

#[tokio::test]
async fn old_and_excess_runs_are_deleted_in_the_background() {
    let daemon = TestDaemon::start_with(&["--retention", "3s", "--max-runs-per-job", "2"], &[]);
    daemon.job_with("greet", "hello", json!({})).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(daemon.run_job("greet", None).await["id"].as_str().unwrap().to_string());
    }
    let listed = || async {
        let runs = daemon.call(Method::GET, "/v1/runs?job=greet", None).await.body["runs"].clone();
        runs.as_array()
            .unwrap()
            .iter()
            .map(|run| run["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    // First the cap: only the newest two stay.
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen = listed().await;
        if seen.len() <= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen, [ids[4].clone(), ids[3].clone()], "the newest two are kept");
    let oldest = daemon
        .call(Method::GET, &format!("/v1/runs/{}/logs", ids[0]), None)
        .await;
    assert_eq!(oldest.status, StatusCode::NOT_FOUND, "its log went with it");
    // Then the age: past 3 s nothing is left.
    for _ in 0..120 {
        seen = listed().await;
        if seen.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.is_empty(), "{seen:?}");
    let gone = daemon.call(Method::GET, &format!("/v1/runs/{}", ids[4]), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // The job itself stays and runs on.
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
}

#[tokio::test]
async fn once_runs_pass_the_cap_they_are_deleted_every_few_seconds_not_once_a_minute() {
    // The default retention (30 days) alone sweeps once a minute: before,
    // runs past the cap of an every-second job piled up for a minute
    // between sweeps, and went in one large batch.
    let daemon = TestDaemon::start_with(&["--max-runs-per-job", "2"], &[]);
    daemon
        .job_with("tick", "noop", json!({"schedule": {"every": "1s"}}))
        .await;
    let listed = || async {
        let runs = daemon.call(Method::GET, "/v1/runs?job=tick&limit=500", None).await.body["runs"].clone();
        runs.as_array().map_or(0, Vec::len)
    };
    // Runs pile up past the cap until a sweep finds them (within the
    // first minute and a few seconds).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(100);
    let mut most = 0;
    loop {
        let kept = listed().await;
        most = most.max(kept);
        if most > 4 && kept <= 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no sweep deleted the runs past the cap"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // From then on the sweeps come every few seconds: the cap and a few
    // seconds' runs at most, where a minute's would pile up again.
    let watch_until = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut most = 0;
    while tokio::time::Instant::now() < watch_until {
        most = most.max(listed().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(most <= 2 + 8, "{most} runs kept within 20 s of a sweep");
}

/// Seconds since the epoch of an RFC 3339 instant in a JSON field.
fn epoch_seconds(value: &Value) -> f64 {
    let at: chrono::DateTime<chrono::Utc> = value.as_str().expect("an instant").parse().expect("RFC 3339");
    at.timestamp_millis() as f64 / 1000.0
}

/// promtool on PATH, installed by `scripts/install-promtool` if missing.
fn promtool() -> std::process::Command {
    let found = |name: &str| std::process::Command::new(name).arg("--version").output().is_ok();
    if !found("promtool") {
        let script = common::repo_root().join("scripts").join("install-promtool");
        let output = std::process::Command::new(&script)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running scripts/install-promtool");
        assert!(
            found("promtool"),
            "no promtool, and {} did not install it: {output:?}",
            script.display()
        );
    }
    let mut command = std::process::Command::new("promtool");
    command.current_dir(common::repo_root().join("deploy").join("prometheus"));
    command
}

/// Dead-man gauges: each job's next fire and last success (0 before any;
/// read from the store after a restart), and the shipped alert rules:
/// valid, each alert right on series shaped as these (`promtool test
/// rules`), and every sandcron metric they name in a real scrape.
#[tokio::test]
async fn jobs_report_their_next_fire_and_last_success_and_the_shipped_alert_rules_hold() {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with("nightly", "noop", json!({"schedule": {"cron": "0 3 * * *"}}))
        .await;
    daemon.create_job(json!({"name": "never", "plugin": "noop"})).await;
    let run = daemon.run_job("nightly", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let job = daemon.call(Method::GET, "/v1/jobs/nightly", None).await.body;
    let tenant = r#"tenant="default""#;
    let gauges = |text: &str| {
        let samples = scrape(text);
        (
            sample(
                &samples,
                &format!(r#"sandcron_job_next_fire_timestamp_seconds{{job="nightly",{tenant}}}"#),
            ),
            sample(
                &samples,
                &format!(r#"sandcron_job_last_success_timestamp_seconds{{job="nightly",{tenant}}}"#),
            ),
            sample(
                &samples,
                &format!(r#"sandcron_job_last_success_timestamp_seconds{{job="never",{tenant}}}"#),
            ),
            samples.contains_key(&format!(
                r#"sandcron_job_next_fire_timestamp_seconds{{job="never",{tenant}}}"#
            )),
        )
    };
    let text = daemon.metrics_text().await;
    let expected = (
        epoch_seconds(&job["next_fire_at"]),
        epoch_seconds(&run["finished_at"]),
        0.0,
        false,
    );
    assert_eq!(gauges(&text), expected, "{text}");
    // After a restart the last success is read from the store.
    daemon.restart();
    assert_eq!(gauges(&daemon.metrics_text().await), expected);

    let checked = promtool()
        .args(["check", "rules", "sandcron-rules.yml"])
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
    let tested = promtool()
        .args(["test", "rules", "sandcron-rules.test.yml"])
        .output()
        .unwrap();
    assert!(tested.status.success(), "{tested:?}");
    let rules = std::fs::read_to_string(common::repo_root().join("deploy/prometheus/sandcron-rules.yml")).unwrap();
    let named: std::collections::BTreeSet<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("sandcron_"))
        .collect();
    assert!(named.len() >= 4, "{named:?}");
    for name in named {
        assert!(text.contains(&format!("# TYPE {name} ")), "{name} is not in a scrape");
    }
}

#[tokio::test]
async fn failed_runs_in_a_row_pause_a_job_a_success_after_them_is_recovered_and_a_handler_gets_the_failed_run() {
    let (port, got) = receiver().await;
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    let token = daemon.token.clone();
    let mut events = Events::open(&daemon, &token, "?types=run.recovered,job.paused", None).await;
    let hook = json!({"url": format!("http://127.0.0.1:{port}/hook"), "on": ["recovered", "paused"]});
    daemon
        .job_with("cleanup", "step", json!({"input": {"note": "handled"}}))
        .await;
    daemon
        .job_with(
            "flaky",
            "step",
            json!({"policy": {"pause_after_failures": 2}, "failure_handler": "cleanup", "webhooks": [hook]}),
        )
        .await;
    let refused = daemon
        .call(
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "x", "plugin": "step", "failure_handler": "nobody"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.message().starts_with("failure_handler"), "{}", refused.body);

    // A failure: counted, and the handler runs with the failed run.
    let failed = daemon.run_job("flaky", Some(json!({"fail": "boom"}))).await;
    assert_eq!(failed["status"], "failed");
    let handled = runs_at_least(&daemon, "cleanup", 1, Duration::from_secs(10)).await;
    assert_eq!(handled[0]["trigger"], "dependency");
    assert!(
        daemon
            .wait_for_status(handled[0]["id"].as_str().unwrap(), "succeeded")
            .await
    );
    let output = daemon
        .call(
            Method::GET,
            &format!("/v1/runs/{}", handled[0]["id"].as_str().unwrap()),
            None,
        )
        .await
        .body;
    let input: Value = serde_json::from_str(output["output"].as_str().unwrap()).unwrap();
    assert_eq!(input["note"], "handled", "the handler's own input is kept: {input}");
    assert_eq!(input["failed_run"]["run_id"], failed["id"], "{input}");
    assert_eq!(input["failed_run"]["error"]["message"], "boom", "{input}");
    assert_eq!(input["failed_run"]["input"], json!({"fail": "boom"}), "{input}");
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/flaky", None).await.body["failures"],
        1
    );

    // A success after it: recovered, over SSE and the webhook.
    let recovered = daemon.run_job("flaky", Some(json!({}))).await;
    assert_eq!(recovered["status"], "succeeded");
    let frame = events
        .next(Duration::from_secs(10))
        .await
        .expect("a run.recovered event");
    assert_eq!(
        (frame.event.as_str(), &frame.data["data"]["run_id"]),
        ("run.recovered", &recovered["id"])
    );
    let hooks = wait_for(&got, "/hook", 1, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&hooks[0].body).unwrap();
    assert_eq!(
        (body["event"].as_str(), &body["run"]["run_id"]),
        (Some("run.recovered"), &recovered["id"])
    );
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/flaky", None).await.body["failures"],
        0
    );
    // A success after a success says nothing.
    daemon.run_job("flaky", Some(json!({}))).await;

    // Two failures in a row: paused, saying why.
    for _ in 0..2 {
        assert_eq!(
            daemon.run_job("flaky", Some(json!({"fail": "again"}))).await["status"],
            "failed"
        );
    }
    let frame = events.next(Duration::from_secs(10)).await.expect("a job.paused event");
    assert_eq!(frame.event, "job.paused", "{frame:?}");
    assert_eq!(
        frame.data["data"]["reason"], "paused after 2 failed runs in a row",
        "{frame:?}"
    );
    let job = daemon.call(Method::GET, "/v1/jobs/flaky", None).await.body;
    assert_eq!(
        (job["state"].as_str(), job["failures"].as_u64()),
        (Some("paused"), Some(2)),
        "{job}"
    );
    let hooks = wait_for(&got, "/hook", 2, Duration::from_secs(10)).await;
    let body: Value = serde_json::from_slice(&hooks[1].body).unwrap();
    assert_eq!(
        (body["event"].as_str(), body["job"]["reason"].as_str()),
        (Some("job.paused"), Some("paused after 2 failed runs in a row")),
        "{body}"
    );
    assert_eq!(
        runs_at_least(&daemon, "cleanup", 3, Duration::from_secs(10))
            .await
            .len(),
        3,
        "a handler run per failure"
    );
    // Resumed: the count starts again.
    let resumed = daemon.call(Method::POST, "/v1/jobs/flaky/resume", None).await.body;
    assert_eq!(
        (resumed["state"].as_str(), resumed["failures"].as_u64()),
        (Some("active"), Some(0)),
        "{resumed}"
    );
    assert!(
        events.next(Duration::from_millis(300)).await.is_none(),
        "nothing else was announced"
    );
}

/// The runs of `job` (newest first) once there are `count`, or those there are after `wait`.
async fn runs_at_least(daemon: &TestDaemon, job: &str, count: usize, wait: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let runs = daemon
            .call(Method::GET, &format!("/v1/runs?job={job}"), None)
            .await
            .body["runs"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if runs.len() >= count || tokio::time::Instant::now() > deadline {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
