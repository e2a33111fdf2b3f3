//! The examples of `examples/`, each run as its README says against a real
//! daemon: the plugin made with `sandcron new` and the example's code, built
//! with `sandcron build`, pushed, its jobs made from the example's files,
//! with local receivers (HTTP on 127.0.0.1, an SMTP sink) in place of the
//! services they call. Where an example names 127.0.0.1:8098 (its service)
//! or :8099 (its webhook), the test's own receiver's port stands in.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::StatusCode as HttpStatus;
use axum::routing::{get, post};
use chrono::{DateTime, SubsecRound, Utc};
use common::TestDaemon;
use common::smtp::{mails_matching, smtp_sink};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A request a receiver kept: when it came, and its JSON body.
type Received = (DateTime<Utc>, Value);

/// Serves `app` on a free port of 127.0.0.1; the port.
async fn serve(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let port = listener.local_addr().expect("an address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// An example's file as JSON, with its service's port replaced.
fn example_json(path: &str, replacements: &[(&str, &str)]) -> Value {
    let mut text =
        std::fs::read_to_string(common::repo_root().join("examples").join(path)).expect("the example's file");
    for (from, to) in replacements {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).expect("the example's JSON")
}

/// Waits (up to 60 s) until `done` holds of what `poll` returns; that.
async fn eventually<T, F, Fut>(what: &str, mut poll: F, done: impl Fn(&T) -> bool) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
    T: std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let value = poll().await;
        if done(&value) {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {value:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The runs of a job, newest first.
async fn runs_of(daemon: &TestDaemon, job: &str) -> Vec<Value> {
    let runs = daemon
        .call(Method::GET, &format!("/v1/runs?job={job}"), None)
        .await
        .body;
    runs["runs"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn the_reminder_example_posts_once_at_its_instant_even_when_the_daemon_was_down_then() {
    let work = tempfile::tempdir().expect("a temp dir");
    let component = common::build_example("python", "reminder", &work.path().join("reminder"), "reminder", &[]);

    // The chat's webhook: keeps each message and when it came.
    let posts: Arc<Mutex<Vec<Received>>> = Arc::default();
    let kept = posts.clone();
    let port = serve(Router::new().route(
        "/hooks/standup",
        post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                kept.lock().expect("lock").push((Utc::now(), body));
                "ok"
            }
        }),
    ))
    .await;
    let posted = |text: &str| {
        posts
            .lock()
            .expect("lock")
            .iter()
            .filter(|(_, body)| body["text"] == text)
            .map(|(at, _)| *at)
            .collect::<Vec<_>>()
    };

    let mut daemon = TestDaemon::start_with(&["--http-allow-private", "127.0.0.1/32"], &[]);
    daemon.cli(&[
        "plugin",
        "push",
        component.to_str().expect("a UTF-8 path"),
        "--name",
        "reminder",
    ]);
    let example = example_json("reminder/job.json", &[("127.0.0.1:8098", &format!("127.0.0.1:{port}"))]);
    // Two reminders: one due while the daemon is down, one after it is back.
    let now = Utc::now().trunc_subsecs(0);
    let missed_at = now + chrono::Duration::seconds(5);
    let kept_at = now + chrono::Duration::seconds(15);
    for (name, at) in [("missed", missed_at), ("on-time", kept_at)] {
        let mut job = example.clone();
        job["name"] = json!(name);
        job["schedule"]["at"] = json!(at.to_rfc3339());
        job["input"]["text"] = json!(format!("the {name} reminder"));
        daemon.create_job(job).await;
    }
    // Killed (no clean shutdown) past the first instant, then started again.
    daemon.kill();
    let until_missed = (missed_at + chrono::Duration::milliseconds(1500) - Utc::now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(until_missed).await;
    assert!(
        posts.lock().expect("lock").is_empty(),
        "nothing runs while the daemon is down"
    );
    daemon.start_again();

    // The missed one is posted once it is back, late; the other at its instant.
    let both = eventually(
        "the reminders were not posted",
        || async { (posted("the missed reminder"), posted("the on-time reminder")) },
        |(missed, on_time)| !missed.is_empty() && !on_time.is_empty(),
    )
    .await;
    assert!(both.1[0] >= kept_at, "posted before its instant: {both:?}");
    let missed = runs_of(&daemon, "missed").await;
    assert_eq!(missed.len(), 1, "{missed:?}");
    assert_eq!(missed[0]["status"], "succeeded", "{missed:?}");
    assert_eq!(missed[0]["trigger"], "schedule", "{missed:?}");
    assert!(
        missed[0]["lateness_ms"].as_u64().unwrap_or_default() > 1000,
        "{missed:?}"
    );
    let scheduled =
        DateTime::parse_from_rfc3339(missed[0]["scheduled_at"].as_str().unwrap_or_default()).expect("an instant");
    assert_eq!(scheduled, missed_at, "{missed:?}");
    let log = daemon.log(missed[0]["id"].as_str().expect("a run id")).await;
    assert!(log.contains("posted 'the missed reminder'"), "{log}");
    for name in ["missed", "on-time"] {
        let job = daemon.call(Method::GET, &format!("/v1/jobs/{name}"), None).await.body;
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(runs_of(&daemon, name).await.len(), 1, "{name} ran once");
    }
    // A retry of the run (as after a crash) does not post it again.
    let retry_path = format!("/v1/runs/{}/retry", missed[0]["id"].as_str().expect("a run id"));
    let retry = daemon.call(Method::POST, &retry_path, None).await;
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    let retry_path = format!("/v1/runs/{}", retry.body["id"].as_str().expect("a run id"));
    let retried = eventually(
        "the retry did not finish",
        || daemon.call(Method::GET, &retry_path, None),
        |answer| answer.body["status"] == "succeeded",
    )
    .await;
    let output: Value = serde_json::from_str(retried.body["output"].as_str().unwrap_or_default()).expect("JSON output");
    assert_eq!(output, json!({"posted": false}), "{}", retried.body);
    assert_eq!(posted("the missed reminder").len(), 1);
    assert_eq!(posted("the on-time reminder").len(), 1);
}

#[tokio::test]
async fn the_lookups_example_runs_urgent_lookups_first_posts_notices_and_mails_a_digest() {
    // The API: answers /lookup/{key}; the first lookup is held until the
    // test lets it go (the others queue meanwhile); "flaky" fails once.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (kept, held) = (seen.clone(), gate.clone());
    let api = serve(Router::new().route(
        "/lookup/{key}",
        get(move |Path(key): Path<String>| {
            let (kept, held) = (kept.clone(), held.clone());
            async move {
                let (first, flaky_before) = {
                    let mut seen = kept.lock().expect("lock");
                    let flaky_before = seen.iter().any(|seen| seen == "flaky");
                    seen.push(key.clone());
                    (seen.len() == 1, flaky_before)
                };
                if first {
                    held.acquire().await.expect("the gate").forget();
                }
                match key.as_str() {
                    "nobody" => (HttpStatus::NOT_FOUND, axum::Json(json!({}))),
                    "flaky" if !flaky_before => (HttpStatus::SERVICE_UNAVAILABLE, axum::Json(json!({}))),
                    _ => (HttpStatus::OK, axum::Json(json!({"name": key.to_uppercase()}))),
                }
            }
        }),
    ))
    .await;
    // The webhook: keeps (event, run id) of each notice.
    let notices: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let kept = notices.clone();
    let hook = serve(Router::new().route(
        "/notices",
        post(move |axum::Json(body): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let notice = (
                    body["event"].as_str().unwrap_or_default().to_string(),
                    body["run"]["run_id"].as_str().unwrap_or_default().to_string(),
                );
                kept.lock().expect("lock").push(notice);
                "ok"
            }
        }),
    ))
    .await;
    let (smtp, mails) = smtp_sink().await;

    let api_host = format!("127.0.0.1:{api}");
    let hook_host = format!("127.0.0.1:{hook}");
    let replacements = [
        ("127.0.0.1:8098", api_host.as_str()),
        ("127.0.0.1:8099", hook_host.as_str()),
    ];
    let work = tempfile::tempdir().expect("a temp dir");
    let component = common::build_example("js", "lookup", &work.path().join("lookup"), "lookups", &replacements);
    let smtp_url = format!("smtp://127.0.0.1:{smtp}");
    let daemon = TestDaemon::start_with(
        &["--http-allow-private", "127.0.0.1/32"],
        &[
            ("SANDCRON_SMTP_URL", smtp_url.as_str()),
            ("SANDCRON_SMTP_FROM", "jobs@example.com"),
        ],
    );
    // The API takes one lookup at a time.
    let quota = daemon
        .call(
            Method::PATCH,
            "/v1/tenants/default",
            Some(json!({"quotas": {"concurrent_runs": 1}})),
        )
        .await;
    assert_eq!(quota.status, StatusCode::OK, "{}", quota.body);
    daemon.cli(&[
        "plugin",
        "push",
        component.to_str().expect("a UTF-8 path"),
        "--name",
        "lookup",
    ]);
    let mut jobs =
        std::fs::read_to_string(common::repo_root().join("examples/lookups/jobs.toml")).expect("the jobs file");
    for (from, to) in replacements {
        jobs = jobs.replace(from, to);
    }
    let jobs_file = work.path().join("jobs.toml");
    std::fs::write(&jobs_file, jobs).expect("writing the jobs file");
    daemon.cli(&["apply", "-f", jobs_file.to_str().expect("a UTF-8 path")]);
    let digest = daemon
        .call(
            Method::PUT,
            "/v1/digest",
            Some(example_json("lookups/digest.json", &[])),
        )
        .await;
    assert_eq!(digest.status, StatusCode::OK, "{}", digest.body);
    let next = DateTime::parse_from_rfc3339(digest.body["next_at"].as_str().unwrap_or_default()).expect("an instant");
    let local = next.with_timezone(&chrono_tz::Europe::Madrid);
    assert_eq!(local.format("%H:%M:%S").to_string(), "19:00:00", "{}", digest.body);

    let ask = |job: &'static str, key: &'static str| {
        let daemon = &daemon;
        async move {
            let path = format!("/v1/jobs/{job}/run");
            let asked = daemon
                .call(Method::POST, &path, Some(json!({"input": {"key": key}})))
                .await;
            assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.body);
            asked.body["id"].as_str().expect("a run id").to_string()
        }
    };
    let mut ids = vec![ask("lookup-batch", "first").await];
    eventually(
        "the first lookup did not reach the API",
        || async { seen.lock().expect("lock").len() },
        |count| *count == 1,
    )
    .await;
    for key in ["b1", "b2", "nobody"] {
        ids.push(ask("lookup-batch", key).await);
    }
    for key in ["vip", "flaky"] {
        ids.push(ask("lookup-urgent", key).await);
    }
    gate.add_permits(1);

    // Urgent lookups go first; the flaky one's retry comes seconds later.
    let order = eventually(
        "the lookups did not all reach the API",
        || async { seen.lock().expect("lock").clone() },
        |seen| seen.len() == 7,
    )
    .await;
    assert_eq!(order, ["first", "vip", "flaky", "b1", "b2", "nobody", "flaky"]);
    let runs = eventually(
        "the lookups did not all finish",
        || async {
            let mut runs = runs_of(&daemon, "lookup-batch").await;
            runs.extend(runs_of(&daemon, "lookup-urgent").await);
            runs
        },
        |runs| {
            runs.len() == 7
                && runs
                    .iter()
                    .all(|run| run["status"] == "succeeded" || run["status"] == "failed")
        },
    )
    .await;
    let failed: Vec<&Value> = runs.iter().filter(|run| run["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{runs:?}");
    assert_eq!(failed[0]["error"]["message"], "flaky: the API answered 503", "{runs:?}");
    let nobody = daemon
        .call(Method::GET, &format!("/v1/runs/{}", ids[3]), None)
        .await
        .body;
    let output: Value = serde_json::from_str(nobody["output"].as_str().unwrap_or_default()).expect("JSON output");
    assert_eq!(output, json!({"key": "nobody", "found": false}));

    // Every run's start and end reached the webhook.
    let notices = eventually(
        "notices are missing",
        || async { notices.lock().expect("lock").clone() },
        |notices| notices.len() == 14,
    )
    .await;
    for run in &runs {
        let id = run["id"].as_str().expect("a run id");
        let end = format!("run.{}", run["status"].as_str().expect("a status"));
        for event in ["run.started", end.as_str()] {
            let count = notices.iter().filter(|(kind, run)| kind == event && run == id).count();
            assert_eq!(count, 1, "{event} of {id}: {notices:?}");
        }
    }

    // The digest (sent now rather than at 19:00) sums the day's lookups.
    let sent = daemon.call(Method::POST, "/v1/digest/send", None).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let digests = mails_matching(&mails, Duration::from_secs(20), |mail| {
        mail.to == ["support-lead@example.com"] && mail.body().contains("Runs: 7 (failed 1, succeeded 6)")
    })
    .await;
    assert!(!digests.is_empty(), "{:#?}", mails.lock().expect("lock"));
    let body = digests[0].body();
    assert!(
        body.contains("lookup-batch") && body.contains("lookup-urgent"),
        "{body}"
    );
}

#[tokio::test]
async fn the_cache_warmup_example_runs_at_start_and_every_30_minutes_with_its_next_run_on_status() {
    let work = tempfile::tempdir().expect("a temp dir");
    let component = common::build_example(
        "python",
        "cache-warmup",
        &work.path().join("cache-warmup"),
        "cache-warmup",
        &[],
    );
    let component = component.to_str().expect("a UTF-8 path");

    // The service to warm: counts the pages asked for.
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let port = serve(Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "warm"
        }
    }))
    .await;
    let wait_for_hits = |least: usize| {
        let hits = hits.clone();
        async move {
            let what = format!("fewer than {least} pages were warmed");
            eventually(&what, || async { hits.load(Ordering::SeqCst) }, |count| *count >= least).await;
        }
    };

    let mut daemon = TestDaemon::start_with(&["--http-allow-private", "127.0.0.1/32"], &[]);
    daemon.cli(&["plugin", "push", component, "--name", "cache-warmup"]);
    let job = example_json(
        "cache-warmup/job.json",
        &[("127.0.0.1:8098", &format!("127.0.0.1:{port}"))],
    );
    daemon.create_job(job).await;
    // Made: it runs at once (two pages), and its next run is half an hour on.
    wait_for_hits(2).await;
    let status = daemon.call(Method::GET, "/v1/status", None).await.body;
    let next = status["next_fires"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|fire| fire["job"] == "cache-warmup")
        .unwrap_or_else(|| panic!("no next fire on /v1/status: {status}"));
    let at = chrono::DateTime::parse_from_rfc3339(next["at"].as_str().unwrap_or_default()).expect("an instant");
    let ahead = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(29) && ahead <= chrono::Duration::minutes(30),
        "{status}"
    );
    // A restart warms the caches again.
    daemon.restart();
    wait_for_hits(4).await;
    let runs = runs_of(&daemon, "cache-warmup").await;
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert_eq!(run["trigger"], "start", "{run}");
    }
}
