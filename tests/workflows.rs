//! Workflows against the real daemon: a graph of steps, each a sandboxed
//! run of an existing job, with data passed between steps, bounded
//! parallelism, stop-or-continue after a failure, per-step retries,
//! cancel, retry from the failed steps, and `kill -9` in the middle.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The `step` plugin as jobs: `emit` returns `{"rows": 3}`, `echo` returns
/// what it is handed, `fail` fails, `nap` takes 400 ms.
async fn jobs(daemon: &TestDaemon) {
    daemon.upload("step", "step").await;
    for (name, input) in [
        ("emit", json!({"output": {"rows": 3}})),
        ("echo", Value::Null),
        ("fail", json!({"fail": "boom"})),
        ("nap", json!({"sleep_ms": 400, "output": "napped"})),
    ] {
        daemon
            .create_job(json!({"name": name, "plugin": "step", "input": input}))
            .await;
    }
}

async fn define(daemon: &TestDaemon, body: Value) -> Value {
    let answer = daemon.call(Method::POST, "/v1/workflows", Some(body.clone())).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{body}: {}", answer.body);
    answer.body
}

/// Runs a workflow and waits for it to end.
async fn run(daemon: &TestDaemon, name: &str) -> Value {
    let answer = daemon
        .call(Method::POST, &format!("/v1/workflows/{name}/run?wait=60s"), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// A step's latest run, with its output.
async fn step_run(daemon: &TestDaemon, workflow_run: &Value, step: &str) -> Value {
    let run_id = workflow_run["steps"][step]["run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("step {step} has no run: {workflow_run}"));
    daemon.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body
}

fn status(workflow_run: &Value, step: &str) -> String {
    workflow_run["steps"][step]["status"].as_str().unwrap_or("").to_string()
}

fn instant(run: &Value, field: &str) -> DateTime<Utc> {
    run[field].as_str().unwrap().parse().unwrap()
}

/// Polls a workflow run until `done` holds (up to 20 s).
async fn until(daemon: &TestDaemon, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let run = daemon
            .call(Method::GET, &format!("/v1/workflow-runs/{id}"), None)
            .await
            .body;
        if done(&run) {
            return run;
        }
        assert!(std::time::Instant::now() < deadline, "never came: {run}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_diamond_hands_outputs_down_and_merges_them() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "diamond", "steps": [
            {"id": "extract", "job": "emit"},
            {"id": "left", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
            {"id": "right", "job": "echo", "needs": ["extract"], "input": {"value": {"side": "right"}}},
            {"id": "load", "job": "echo", "needs": ["left", "right"], "input": {"merge": ["left", "right"]}},
            {"id": "big", "job": "echo", "needs": ["left"], "if": {"from": "left", "pointer": "/rows", "gt": 10}},
        ]}),
    )
    .await;
    let done = run(&daemon, "diamond").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(status(&done, "big"), "skipped", "rows 3 is not > 10");
    let left = step_run(&daemon, &done, "left").await;
    assert_eq!(left["output"], r#"{"rows":3}"#, "left got extract's output bytes");
    let load = step_run(&daemon, &done, "load").await;
    let merged: Value = serde_json::from_str(load["output"].as_str().unwrap()).unwrap();
    assert_eq!(merged, json!({"left": {"rows": 3}, "right": {"side": "right"}}));
    assert_eq!(load["trigger"], "dependency");
    assert_eq!(load["workflow_run"], done["id"]);
    assert_eq!(load["step"], "load");
    // Each step started after the steps it needs had finished.
    let right = step_run(&daemon, &done, "right").await;
    for needed in [&left, &right] {
        assert!(
            instant(&load, "started_at") >= instant(needed, "finished_at"),
            "{load} {needed}"
        );
    }
    let extract = step_run(&daemon, &done, "extract").await;
    assert!(instant(&left, "started_at") >= instant(&extract, "finished_at"));
    let listed = daemon
        .call(Method::GET, "/v1/workflow-runs?workflow=diamond", None)
        .await;
    assert_eq!(listed.body["workflow_runs"][0]["id"], done["id"], "{}", listed.body);
}

#[tokio::test]
async fn max_parallel_one_never_overlaps_steps_and_three_does() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    for (name, max_parallel) in [("serial", 1), ("wide", 3)] {
        let steps: Vec<Value> = (0..3).map(|at| json!({"id": format!("s{at}"), "job": "nap"})).collect();
        define(
            &daemon,
            json!({"name": name, "max_parallel": max_parallel, "steps": steps}),
        )
        .await;
        let done = run(&daemon, name).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        let mut spans = Vec::new();
        for step in ["s0", "s1", "s2"] {
            let run = step_run(&daemon, &done, step).await;
            spans.push((instant(&run, "started_at"), instant(&run, "finished_at")));
        }
        let overlapping = (0..3)
            .flat_map(|a| (0..3).map(move |b| (a, b)))
            .filter(|(a, b)| a < b)
            .filter(|(a, b)| spans[*a].0 < spans[*b].1 && spans[*b].0 < spans[*a].1)
            .count();
        if max_parallel == 1 {
            assert_eq!(overlapping, 0, "{spans:?}");
        } else {
            assert!(overlapping > 0, "three 400 ms steps at once overlap: {spans:?}");
        }
    }
}

#[tokio::test]
async fn stop_skips_the_rest_after_a_failure_continue_runs_it_and_a_handler_runs_in_both() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    let steps = json!([
        {"id": "a", "job": "fail"},
        {"id": "b", "job": "emit", "needs": ["a"], "when": "always"},
        {"id": "after_b", "job": "echo", "needs": ["b"]},
        {"id": "handler", "job": "echo", "needs": ["a"], "when": "failure"},
        {"id": "on_success", "job": "echo", "needs": ["a"]},
    ]);
    for (on_failure, after_b) in [("stop", "skipped"), ("continue", "succeeded")] {
        let name = format!("chain-{on_failure}");
        define(&daemon, json!({"name": name, "on_failure": on_failure, "steps": steps})).await;
        let done = run(&daemon, &name).await;
        assert_eq!(status(&done, "a"), "failed", "{done}");
        assert_eq!(status(&done, "b"), "succeeded", "always runs: {done}");
        assert_eq!(status(&done, "after_b"), after_b, "{on_failure}: {done}");
        assert_eq!(status(&done, "handler"), "succeeded", "{done}");
        assert_eq!(status(&done, "on_success"), "skipped", "{done}");
        assert!(done["steps"]["on_success"]["run_id"].is_null());
        assert_eq!(done["status"], "succeeded", "the failure was handled: {done}");
    }
    // Without a handler the failure fails the workflow run.
    define(
        &daemon,
        json!({"name": "unhandled", "steps": [{"id": "a", "job": "fail"}]}),
    )
    .await;
    let done = run(&daemon, "unhandled").await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"], "step \"a\" failed");
}

#[tokio::test]
async fn a_step_retries_by_its_own_policy_and_its_status_is_its_last_attempts() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "flaky", "steps": [
            {"id": "once", "job": "echo", "input": {"value": {"fail": "first", "fail_before_attempt": 2}}},
            {"id": "thrice", "job": "echo", "input": {"value": {"fail": "first two", "fail_before_attempt": 3}},
             "retry": {"max_attempts": 3, "backoff": "10ms"}},
        ], "on_failure": "continue"}),
    )
    .await;
    let done = run(&daemon, "flaky").await;
    assert_eq!(status(&done, "once"), "failed", "the job's policy: one attempt: {done}");
    assert_eq!(status(&done, "thrice"), "succeeded", "{done}");
    assert_eq!(done["steps"]["thrice"]["attempt"], 3);
    let last = step_run(&daemon, &done, "thrice").await;
    assert_eq!(last["attempt"], 3);
    assert!(last["retry_of"].as_str().is_some(), "{last}");
    assert_eq!(done["status"], "failed");
}

#[tokio::test]
async fn a_cancel_stops_the_running_step_and_starts_nothing_new() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "long", "steps": [
            {"id": "slow", "job": "echo", "input": {"value": {"sleep_ms": 30000}}},
            {"id": "next", "job": "echo", "needs": ["slow"], "when": "always"},
        ]}),
    )
    .await;
    let started = daemon.call(Method::POST, "/v1/workflows/long/run", None).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    let id = started.body["id"].as_str().unwrap().to_string();
    until(&daemon, &id, |run| status(run, "slow") == "running").await;
    let cancelled = daemon
        .call(Method::POST, &format!("/v1/workflow-runs/{id}/cancel"), None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    let done = until(&daemon, &id, |run| run["status"] != "running").await;
    assert_eq!(done["status"], "cancelled", "{done}");
    assert_eq!(status(&done, "slow"), "cancelled");
    assert_eq!(status(&done, "next"), "cancelled", "{done}");
    assert!(done["steps"]["next"]["run_id"].is_null(), "never started");
    let again = daemon
        .call(Method::POST, &format!("/v1/workflow-runs/{id}/cancel"), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn a_retry_runs_the_failed_steps_again_and_keeps_what_succeeded() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    daemon
        .create_job(json!({"name": "gate", "plugin": "step", "input": {"fail": "closed"}}))
        .await;
    define(
        &daemon,
        json!({"name": "gated", "steps": [
            {"id": "first", "job": "emit"},
            {"id": "gate", "job": "gate", "needs": ["first"]},
            {"id": "last", "job": "echo", "needs": ["first", "gate"], "input": {"merge": ["first", "gate"]}},
        ]}),
    )
    .await;
    let failed = run(&daemon, "gated").await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(status(&failed, "last"), "skipped");
    let first_run = failed["steps"]["first"]["run_id"].clone();
    let patched = daemon
        .call(
            Method::PATCH,
            "/v1/jobs/gate",
            Some(json!({"input": {"output": "open"}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let id = failed["id"].as_str().unwrap();
    let retried = daemon
        .call(Method::POST, &format!("/v1/workflow-runs/{id}/retry?wait=60s"), None)
        .await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.body);
    let done = retried.body;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"]["first"]["run_id"], first_run, "not run again");
    assert_ne!(done["steps"]["gate"]["run_id"], failed["steps"]["gate"]["run_id"]);
    let last = step_run(&daemon, &done, "last").await;
    let merged: Value = serde_json::from_str(last["output"].as_str().unwrap()).unwrap();
    assert_eq!(merged, json!({"first": {"rows": 3}, "gate": "open"}));
    let runs_of_first = daemon.call(Method::GET, "/v1/runs?job=emit", None).await;
    assert_eq!(runs_of_first.body["runs"].as_array().unwrap().len(), 1);
    let again = daemon
        .call(Method::POST, &format!("/v1/workflow-runs/{id}/retry"), None)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
}

#[tokio::test]
async fn bad_definitions_are_refused_naming_the_field() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    let many: Vec<Value> = (0..101)
        .map(|at| json!({"id": format!("s{at}"), "job": "echo"}))
        .collect();
    let cases = [
        (
            json!({"name": "w", "steps": [{"id": "a", "job": "nope"}]}),
            "steps[0].job",
        ),
        (
            json!({"name": "w", "steps": [
                {"id": "a", "job": "echo", "needs": ["b"]}, {"id": "b", "job": "echo", "needs": ["a"]}]}),
            "steps: needs form a cycle",
        ),
        (
            json!({"name": "w", "steps": [{"id": "a", "job": "echo"}, {"id": "a", "job": "echo"}]}),
            "steps[1].id",
        ),
        (
            json!({"name": "w", "steps": [{"id": "a", "job": "echo", "needs": ["zz"]}]}),
            "steps[0].needs",
        ),
        (json!({"name": "w", "steps": many}), "steps: has 101 steps"),
        (
            json!({"name": "w", "steps": [{"id": "a", "job": "echo", "when": "later"}]}),
            "steps[0].when",
        ),
    ];
    for (body, field) in cases {
        let answer = daemon.call(Method::POST, "/v1/workflows", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert!(answer.message().contains(field), "{field}: {}", answer.body);
    }
    define(&daemon, json!({"name": "w", "steps": [{"id": "a", "job": "echo"}]})).await;
    let taken = daemon
        .call(
            Method::POST,
            "/v1/workflows",
            Some(json!({"name": "w", "steps": [{"id": "a", "job": "echo"}]})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let missing = daemon.call(Method::POST, "/v1/workflows/none/run", None).await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "workflow_not_found")
    );
}

#[tokio::test]
async fn kill_9_during_a_step_and_between_steps_loses_nothing_and_runs_only_the_cut_step_twice() {
    let mut daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "crash", "steps": [
            {"id": "one", "job": "echo", "input": {"value": {"sleep_ms": 3000, "output": "slept"}},
             "retry": {"max_attempts": 2, "backoff": "10ms"}},
            {"id": "two", "job": "echo", "needs": ["one"], "input": {"from": "one"}},
            {"id": "three", "job": "nap", "needs": ["two"], "retry": {"max_attempts": 2, "backoff": "10ms"}},
            {"id": "four", "job": "echo", "needs": ["three"], "input": {"from": "three"}},
        ]}),
    )
    .await;
    let started = daemon.call(Method::POST, "/v1/workflows/crash/run", None).await;
    let id = started.body["id"].as_str().unwrap().to_string();
    // During a step: `one` is cut and retried.
    until(&daemon, &id, |run| status(run, "one") == "running").await;
    // Long enough for its running mark to be durable (a run killed before
    // that is only queued as far as the store knows, and runs again whole).
    tokio::time::sleep(Duration::from_millis(500)).await;
    daemon.restart();
    // Between steps: once `two` has succeeded, whatever comes next.
    until(&daemon, &id, |run| status(run, "two") == "succeeded").await;
    daemon.restart();
    let done = until(&daemon, &id, |run| run["status"] != "running").await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let runs = daemon.call(Method::GET, "/v1/runs?limit=100", None).await.body;
    let runs_of = |step: &str| -> Vec<Value> {
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|run| run["workflow_run"] == id.as_str() && run["step"] == step)
            .cloned()
            .collect()
    };
    let one = runs_of("one");
    assert_eq!(one.len(), 2, "cut once, then retried: {one:?}");
    assert!(one.iter().any(|run| run["error"]["kind"] == "host_restart"), "{one:?}");
    assert_eq!(runs_of("two").len(), 1);
    // `three` may have been running at the second kill: then it is the one
    // cut and run again.
    let three = runs_of("three");
    let cut = three
        .iter()
        .filter(|run| run["error"]["kind"] == "host_restart")
        .count();
    assert_eq!(three.len(), 1 + cut, "{three:?}");
    assert_eq!(runs_of("four").len(), 1);
    let four = step_run(&daemon, &done, "four").await;
    assert_eq!(four["output"], r#""napped""#);
}

#[tokio::test]
async fn a_scheduled_workflow_fires_on_time_and_follows_its_overlap_policy() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    // Each run takes 2.5 s; the schedule fires every second.
    for (name, overlap) in [("skipper", "skip"), ("allower", "allow")] {
        define(
            &daemon,
            json!({"name": name, "schedule": {"every": "1s"}, "policy": {"overlap": overlap},
                   "steps": [{"id": "slow", "job": "echo", "input": {"value": {"sleep_ms": 2500}}}]}),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(4500)).await;
    for name in ["skipper", "allower"] {
        let paused = daemon
            .call(
                Method::PATCH,
                &format!("/v1/workflows/{name}"),
                Some(json!({"enabled": false})),
            )
            .await;
        assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
        assert!(paused.body["next_fire_at"].is_null(), "{}", paused.body);
    }
    let now = Utc::now();
    let spans = |runs: &Value| -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        runs["workflow_runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|run| {
                assert_eq!(run["trigger"], "schedule", "{run}");
                let due = instant(run, "scheduled_at");
                let started = instant(run, "started_at");
                assert!((started - due).num_milliseconds() < 1000, "late: {run}");
                let ended = run["finished_at"].as_str().map_or(now, |at| at.parse().unwrap());
                (started, ended)
            })
            .collect()
    };
    let overlaps = |spans: &[(DateTime<Utc>, DateTime<Utc>)]| {
        (0..spans.len())
            .flat_map(|a| (a + 1..spans.len()).map(move |b| (a, b)))
            .filter(|(a, b)| spans[*a].0 < spans[*b].1 && spans[*b].0 < spans[*a].1)
            .count()
    };
    let skipped = spans(
        &daemon
            .call(Method::GET, "/v1/workflow-runs?workflow=skipper", None)
            .await
            .body,
    );
    assert!(
        !skipped.is_empty() && skipped.len() <= 2,
        "one run at a time: {skipped:?}"
    );
    assert_eq!(overlaps(&skipped), 0, "{skipped:?}");
    let allowed = spans(
        &daemon
            .call(Method::GET, "/v1/workflow-runs?workflow=allower", None)
            .await
            .body,
    );
    assert!(allowed.len() >= 3, "a run every second: {allowed:?}");
    assert!(overlaps(&allowed) > 0, "{allowed:?}");
}

#[tokio::test]
async fn a_workflow_run_is_told_in_events_and_counted_in_metrics() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "told", "steps": [
            {"id": "a", "job": "emit"}, {"id": "b", "job": "echo", "needs": ["a"], "input": {"from": "a"}}]}),
    )
    .await;
    let mut stream = reqwest::Client::new()
        .get(format!("{}/v1/events", daemon.url))
        .bearer_auth(&daemon.token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let done = run(&daemon, "told").await;
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("event: workflow.finished") {
        match tokio::time::timeout_at(deadline, stream.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            other => panic!("the stream ended or stalled ({other:?}): {text}"),
        }
    }
    let kinds: Vec<&str> = text.lines().filter_map(|line| line.strip_prefix("event: ")).collect();
    let position = |kind: &str| kinds.iter().position(|seen| *seen == kind).unwrap();
    assert!(position("workflow.started") < position("run.finished"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|kind| **kind == "run.finished").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"workflow.finished"), "{kinds:?}");
    // Each step's run events say which workflow run and step they are.
    let step_events: Vec<Value> = text
        .split("event: run.finished")
        .skip(1)
        .filter_map(|rest| rest.lines().find_map(|line| line.strip_prefix("data: ")))
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
        .collect();
    let steps: Vec<&str> = step_events
        .iter()
        .map(|event| event["data"]["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["a", "b"], "{text}");
    assert!(
        step_events
            .iter()
            .all(|event| event["data"]["workflow_run"] == done["id"])
    );
    let finished = text
        .split("event: workflow.finished")
        .nth(1)
        .and_then(|rest| rest.lines().find_map(|line| line.strip_prefix("data: ")))
        .unwrap();
    let finished: Value = serde_json::from_str(finished).unwrap();
    assert_eq!(finished["data"]["workflow_run_id"], done["id"], "{finished}");
    assert_eq!(finished["data"]["status"], "succeeded");
    let counted = daemon
        .metric(r#"sandcron_workflow_runs_total{status="succeeded",tenant="default",workflow="told"}"#)
        .await;
    assert_eq!(counted, 1.0);
    let steps = daemon
        .metric(r#"sandcron_workflow_step_duration_seconds_count{tenant="default",workflow="told"}"#)
        .await;
    assert_eq!(steps, 2.0);
}

#[tokio::test]
async fn a_workflow_run_past_its_timeout_is_stopped_and_fails() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(
        &daemon,
        json!({"name": "slowpoke", "timeout": "1s", "steps": [
            {"id": "slow", "job": "echo", "input": {"value": {"sleep_ms": 30000}}},
            {"id": "after", "job": "echo", "needs": ["slow"]}]}),
    )
    .await;
    let began = std::time::Instant::now();
    let done = run(&daemon, "slowpoke").await;
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "stopped at its timeout, not after the sleep"
    );
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["error"], "timed out after 1s");
    assert_eq!(status(&done, "slow"), "cancelled");
    assert_eq!(status(&done, "after"), "cancelled");
}

#[tokio::test]
async fn a_workflows_webhooks_hear_what_they_ask_of_its_runs() {
    let got: std::sync::Arc<std::sync::Mutex<Vec<(String, Value)>>> = Default::default();
    let seen = got.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new().fallback(axum::routing::post(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let event = headers["x-sandcron-event"].to_str().unwrap().to_string();
                seen.lock()
                    .unwrap()
                    .push((event, serde_json::from_slice(&body).unwrap()));
                StatusCode::OK
            }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    jobs(&daemon).await;
    let hook = format!("http://127.0.0.1:{port}/hook");
    define(
        &daemon,
        json!({"name": "hooked", "webhooks": [{"url": hook, "on": ["started", "failed"]}],
               "steps": [{"id": "a", "job": "fail"}]}),
    )
    .await;
    let done = run(&daemon, "hooked").await;
    assert_eq!(done["status"], "failed");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.lock().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", got.lock().unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut events: Vec<(String, Value)> = got.lock().unwrap().clone();
    events.sort_by(|a, b| a.0.cmp(&b.0));
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, ["workflow.failed", "workflow.started"], "only what it asked for");
    let failed = &events[0].1;
    assert_eq!(failed["event"], "workflow.failed");
    assert_eq!(failed["workflow_run"]["workflow_run_id"], done["id"]);
    assert_eq!(failed["workflow_run"]["error"], "step \"a\" failed");
    let bad = daemon
        .call(
            Method::POST,
            "/v1/workflows",
            Some(json!({"name": "x", "webhooks": [{"url": "ftp://nope"}], "steps": [{"id": "a", "job": "echo"}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.message().starts_with("webhooks[0].url"), "{}", bad.body);
}

#[tokio::test]
async fn a_job_a_workflow_runs_is_kept_until_no_workflow_names_it() {
    let daemon = TestDaemon::start();
    jobs(&daemon).await;
    define(&daemon, json!({"name": "user", "steps": [{"id": "a", "job": "emit"}]})).await;
    let refused = daemon.call(Method::DELETE, "/v1/jobs/emit", None).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "job_in_use"),
        "{}",
        refused.body
    );
    assert!(refused.message().contains("user"), "{}", refused.body);
    let renamed = daemon
        .call(Method::PATCH, "/v1/jobs/emit", Some(json!({"name": "emitter"})))
        .await;
    assert_eq!(renamed.status, StatusCode::CONFLICT, "{}", renamed.body);
    let edited = daemon
        .call(Method::PATCH, "/v1/jobs/emit", Some(json!({"input": {"output": 7}})))
        .await;
    assert_eq!(edited.status, StatusCode::OK, "other changes are fine: {}", edited.body);
    let gone = daemon.call(Method::DELETE, "/v1/workflows/user", None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let deleted = daemon.call(Method::DELETE, "/v1/jobs/emit", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.body);
}

/// The runs of a job, newest first.
async fn runs_of(daemon: &TestDaemon, job: &str) -> Vec<Value> {
    let answer = daemon.call(Method::GET, &format!("/v1/runs?job={job}"), None).await;
    answer.body["runs"].as_array().cloned().unwrap_or_default()
}

/// Polls until `job` has `count` runs, all finished (up to 10 s).
async fn runs_become(daemon: &TestDaemon, job: &str, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let runs = runs_of(daemon, job).await;
        let finished = runs
            .iter()
            .all(|run| !matches!(run["status"].as_str(), Some("queued" | "running")));
        if runs.len() >= count && finished {
            return runs;
        }
        assert!(std::time::Instant::now() < deadline, "{job}: {runs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn jobs_after_other_jobs_fire_on_their_outcomes_and_their_join_survives_kill_9() {
    let mut daemon = TestDaemon::start();
    jobs(&daemon).await;
    let after = |name: &str, jobs: Value, when: &str| json!({"name": name, "plugin": "step", "after_jobs": {"jobs": jobs, "when": when}});
    daemon.create_job(after("on_emit", json!(["emit"]), "success")).await;
    daemon.create_job(after("on_fail", json!(["fail"]), "failure")).await;
    daemon
        .create_job(after("not_on_fail", json!(["fail"]), "success"))
        .await;
    let both = daemon
        .create_job(after("both", json!(["emit", "fail"]), "always"))
        .await;
    assert_eq!(both["after_jobs"], json!({"jobs": ["emit", "fail"], "when": "always"}));

    let emitted = daemon.run_job("emit", None).await;
    let fired = runs_become(&daemon, "on_emit", 1).await;
    assert_eq!(fired[0]["trigger"], "dependency");
    assert_eq!(fired[0]["status"], "succeeded");
    assert!(instant(&fired[0], "queued_at") >= instant(&emitted, "finished_at"));
    assert!(runs_of(&daemon, "both").await.is_empty(), "both waits for fail too");

    daemon.run_job("fail", None).await;
    runs_become(&daemon, "on_fail", 1).await;
    runs_become(&daemon, "both", 1).await;

    // The join of `both` survives a kill: emit now, fail after the restart.
    daemon.run_job("emit", None).await;
    runs_become(&daemon, "on_emit", 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    daemon.restart();
    assert_eq!(runs_of(&daemon, "both").await.len(), 1);
    daemon.run_job("fail", None).await;
    runs_become(&daemon, "both", 2).await;
    runs_become(&daemon, "on_fail", 2).await;
    assert!(runs_of(&daemon, "not_on_fail").await.is_empty(), "fail never succeeded");

    let bad = [
        (after("x", json!(["nope"]), "success"), "after_jobs.jobs[0]"),
        (after("x", json!(["x"]), "success"), "after_jobs.jobs[0]"),
        (after("x", json!([]), "success"), "after_jobs.jobs"),
        (after("x", json!(["emit"]), "later"), "after_jobs.when"),
    ];
    for (body, field) in bad {
        let answer = daemon.call(Method::POST, "/v1/jobs", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert!(answer.message().starts_with(field), "{field}: {}", answer.body);
    }
    let paused = daemon.call(Method::POST, "/v1/jobs/on_emit/pause", None).await;
    assert_eq!(paused.status, StatusCode::OK);
    daemon.run_job("emit", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs_of(&daemon, "on_emit").await.len(), 2, "a paused job does not fire");
}
