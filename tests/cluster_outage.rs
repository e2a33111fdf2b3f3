//! A cluster's database restarted under load: every node carries on once
//! it is back, and no fire is lost or doubled; a run that ends while the
//! database is down is recorded once it is back. A binary of its own: it
//! stops the PostgreSQL server its tests share (one test at a time).

mod common;

use std::time::Duration;

use chrono::Utc;
use common::cluster::{assert_no_fire_doubled, cluster, fires_by_instant, runs_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

/// Held by each test: they stop the one server.
static OUTAGE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_under_load_loses_nothing_and_doubles_nothing() {
    let _alone = OUTAGE.lock().await;
    let (_database, nodes) = cluster(2);
    nodes[0].upload("noop", "noop").await;
    for index in 0..5 {
        nodes[0]
            .create_job(
                json!({"name": format!("load{index}"), "plugin": "noop", "schedule": {"every": "1s"},
                               "policy": {"misfire": "run_all", "overlap": "allow"}}),
            )
            .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let restarted_at = Utc::now();
    common::postgres::server().restart();
    tokio::time::sleep(Duration::from_secs(8)).await;
    for node in &nodes {
        let health = node.call(Method::GET, "/healthz", None).await;
        assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    }
    for index in 0..5 {
        let job = format!("load{index}");
        let runs = runs_of(&nodes[1], &job).await;
        let fires = fires_by_instant(&runs);
        assert_no_fire_doubled(&job, &fires);
        let after = fires
            .range(restarted_at + chrono::Duration::seconds(2)..)
            .filter(|(_, runs)| runs[0]["status"] == "succeeded")
            .count();
        assert!(after >= 3, "{job} fires again after the restart: {runs:?}");
        let first = *fires.keys().next().expect("fired");
        let last = *fires.keys().last().expect("fired");
        let seconds = (last - first).num_seconds() + 1;
        assert_eq!(
            fires.len() as i64,
            seconds,
            "{job}: every second fired once: {:?}",
            fires.keys()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_ends_while_the_database_is_down_is_recorded_once_it_is_back() {
    let _alone = OUTAGE.lock().await;
    let (_database, nodes) = cluster(2);
    nodes[0]
        .job_with("slow", "step", json!({"input": {"sleep_ms": 1500, "output": "done"}}))
        .await;
    // The nodes compile the plugin (read from the database) before it goes
    // away, so the run below ends while it is down and its outcome waits.
    // (A run whose plugin is still to be read waits for the database.)
    let mut warmed = std::collections::BTreeSet::new();
    for attempt in 0..10 {
        let run = nodes[attempt % 2]
            .run_job("slow", Some(json!({"sleep_ms": 0, "output": "warm"})))
            .await;
        warmed.extend(run["node"].as_str().map(str::to_string));
        if warmed.len() == 2 {
            break;
        }
    }
    let queued = nodes[0].call(Method::POST, "/v1/jobs/slow/run", None).await;
    assert!(queued.status.is_success(), "{}", queued.body);
    let run_id = queued.body["id"].as_str().expect("a run id").to_string();
    assert!(nodes[0].wait_for_status(&run_id, "running").await, "the run started");
    common::postgres::server().stop();
    // The run ends meanwhile; the API says the database is away.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let away = nodes[1].call(Method::GET, &format!("/v1/runs/{run_id}"), None).await;
    assert_eq!(away.status, StatusCode::SERVICE_UNAVAILABLE, "{}", away.body);
    assert_eq!(away.code(), "database_unavailable", "{}", away.body);
    common::postgres::server().start();
    let mut run = serde_json::Value::Null;
    for _ in 0..150 {
        let answer = nodes[1].call(Method::GET, &format!("/v1/runs/{run_id}"), None).await;
        if answer.status == StatusCode::OK && answer.body["status"] != "running" {
            run = answer.body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run["status"], "succeeded", "its outcome was kept and written: {run}");
    assert_eq!(run["attempt"], 1, "{run}");
    assert_eq!(run["output"], "\"done\"", "{run}");
}
