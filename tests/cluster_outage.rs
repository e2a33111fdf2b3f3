//! A cluster's database restarted under load: every node carries on once
//! it is back, and no fire is lost or doubled. A binary of its own: it
//! stops the PostgreSQL server its tests share.

mod common;

use std::time::Duration;

use chrono::Utc;
use common::cluster::{assert_no_fire_doubled, cluster, fires_by_instant, runs_of};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_database_restart_under_load_loses_nothing_and_doubles_nothing() {
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
