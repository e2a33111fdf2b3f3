//! Several daemons on one PostgreSQL database (a throwaway server the
//! harness starts): what one node writes every node sees; one leader plans
//! the fires, and when it dies another takes over within two seconds of
//! the next fire's instant; a dead node's runs end `host_restart` and retry
//! on a node that lives; nodes killed at random for a minute lose and
//! double no fire. (A database restart: `cluster_outage.rs`, a binary of
//! its own since it stops the server every test here shares.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::cluster::{
    assert_no_fire_doubled, cluster, cluster_view, fires_by_instant, instant, leader, node, runs_of,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn what_one_node_writes_every_node_sees_and_one_leads() {
    let (_database, nodes) = cluster(3);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    a.upload("hello", "hello").await;
    b.create_job(json!({"name": "greet", "plugin": "hello", "input": {"name": "Ada"}}))
        .await;
    let run = c.run_job("greet", None).await;
    assert_eq!(run["output"], "Hello, Ada!", "{run}");
    assert_eq!(run["node"], "c", "the node that ran it is named: {run}");
    let run_id = run["id"].as_str().expect("a run id");
    for node in &nodes {
        let plugins = node.call(Method::GET, "/v1/plugins", None).await;
        assert!(plugins.body.to_string().contains("\"hello\""), "{}", plugins.body);
        let job = node.call(Method::GET, "/v1/jobs/greet", None).await;
        assert_eq!(job.status, StatusCode::OK, "{}", job.body);
        let seen = node.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await;
        assert_eq!(seen.body["status"], "succeeded", "{}", seen.body);
        assert_eq!(node.log(run_id).await, c.log(run_id).await);
    }
    // A secret set through one node opens for a job run on another.
    let put = a
        .call(Method::PUT, "/v1/secrets/api_key", Some(json!({"value": "s3cret"})))
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    let listed = c.call(Method::GET, "/v1/secrets", None).await;
    assert!(listed.body.to_string().contains("api_key"), "{}", listed.body);
    // A tenant made through one node has its quotas kept by the others.
    let acme = a.new_tenant("acme", json!({"quotas": {"jobs": 1}})).await;
    b.upload_bytes_as(&acme, "noop", common::plugin_bytes("noop")).await;
    let mut refused = None;
    for attempt in 0..50 {
        let created = b
            .call_as(
                Some(&acme),
                Method::POST,
                "/v1/jobs",
                Some(json!({"name": format!("one-{attempt}"), "plugin": "noop"})),
            )
            .await;
        if created.status == StatusCode::FORBIDDEN {
            refused = Some(created);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = refused.expect("node b knows acme's quota of one job");
    assert_eq!(refused.code(), "quota_exceeded", "{}", refused.body);
    // A run is cancelled through the node that has it.
    a.job_with("slow", "step", json!({"input": {"sleep_ms": 3000}})).await;
    let slow = a.call(Method::POST, "/v1/jobs/slow/run", None).await;
    let slow_id = slow.body["id"].as_str().expect("a run id").to_string();
    assert!(a.wait_for_status(&slow_id, "running").await);
    let elsewhere = b.call(Method::POST, &format!("/v1/runs/{slow_id}/cancel"), None).await;
    assert_eq!(elsewhere.status, StatusCode::CONFLICT, "{}", elsewhere.body);
    assert_eq!(elsewhere.code(), "run_elsewhere");
    assert!(elsewhere.message().contains("node a"), "{}", elsewhere.body);
    let cancelled = a.call(Method::POST, &format!("/v1/runs/{slow_id}/cancel"), None).await;
    assert!(cancelled.status.is_success(), "{}", cancelled.body);
    // One leader, three nodes, the same view from each.
    let led = leader(a).await;
    for node in &nodes {
        let view = cluster_view(node).await;
        let ids: Vec<&str> = view["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .map(|node| node["id"].as_str().expect("an id"))
            .collect();
        assert_eq!(ids, ["a", "b", "c"], "{view}");
        assert_eq!(view["backend"], "postgres");
        assert_eq!(leader(node).await, led);
    }
    // Each node's metrics count the cluster's nodes and say whether it leads.
    let mut leaders = 0.0;
    for node in &nodes {
        assert_eq!(node.metric("sandcron_cluster_nodes").await, 3.0);
        leaders += node.metric("sandcron_cluster_leader").await;
    }
    assert_eq!(leaders, 1.0, "one node says it leads");
    // A job made on one node is fired by the leader, and its runs are
    // seen everywhere.
    b.job_with("tick", "noop", json!({"schedule": {"every": "1s"}})).await;
    let mut ticks = Vec::new();
    for _ in 0..100 {
        ticks = runs_of(c, "tick").await;
        if ticks.iter().filter(|run| run["status"] == "succeeded").count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ticks.len() >= 2, "{ticks:?}");
    assert!(
        ticks.iter().all(|run| run["node"] == led.as_str()),
        "the leader runs what it fires: {ticks:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn when_the_leader_dies_the_next_fire_runs_on_another_node_within_two_seconds() {
    let (_database, mut nodes) = cluster(3);
    nodes[0]
        .job_with(
            "tick",
            "noop",
            json!({"schedule": {"every": "1s"}, "policy": {"misfire": "run_all"}}),
        )
        .await;
    let led = leader(&nodes[0]).await;
    let leader_index = usize::from(led.as_bytes()[0] - b'a');
    // Fires while it leads.
    for _ in 0..50 {
        if runs_of(&nodes[0], "tick").await.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed_at = Utc::now();
    nodes[leader_index].kill();
    let survivor = if leader_index == 0 { 1 } else { 0 };
    tokio::time::sleep(Duration::from_secs(5)).await;
    let runs = runs_of(&nodes[survivor], "tick").await;
    let fires = fires_by_instant(&runs);
    assert_no_fire_doubled("tick", &fires);
    let after: Vec<&Value> = fires
        .range(killed_at..)
        .map(|(_, runs)| runs[0])
        .filter(|run| instant(run, "scheduled_at") <= killed_at + chrono::Duration::seconds(3))
        .collect();
    assert!(after.len() >= 2, "fires after the kill: {after:?}");
    for run in &after {
        assert_eq!(run["status"], "succeeded", "{run}");
        let lateness = instant(run, "started_at") - instant(run, "scheduled_at");
        assert!(
            lateness <= chrono::Duration::seconds(2),
            "the fire of {} started {} ms late: {run}",
            run["scheduled_at"],
            lateness.num_milliseconds()
        );
        assert_ne!(run["node"], led.as_str(), "{run}");
    }
    let new_leader = leader(&nodes[survivor]).await;
    assert_ne!(new_leader, led);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_on_a_killed_node_ends_host_restart_and_its_retry_runs_on_a_live_node() {
    let (_database, mut nodes) = cluster(2);
    nodes[1]
        .job_with(
            "slow",
            "step",
            json!({"input": {"sleep_ms": 4000, "output": "done"},
                   "policy": {"retry": {"max_attempts": 2, "backoff": "1s"}}}),
        )
        .await;
    let queued = nodes[1].call(Method::POST, "/v1/jobs/slow/run", None).await;
    assert!(queued.status.is_success(), "{}", queued.body);
    let run_id = queued.body["id"].as_str().expect("a run id").to_string();
    assert!(
        nodes[1].wait_for_status(&run_id, "running").await,
        "the run started on b"
    );
    nodes[1].kill();
    let mut failed = Value::Null;
    for _ in 0..100 {
        failed = nodes[0]
            .call(Method::GET, &format!("/v1/runs/{run_id}"), None)
            .await
            .body;
        if failed["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["kind"], "host_restart", "{failed}");
    let mut retried = Value::Null;
    for _ in 0..150 {
        let runs = runs_of(&nodes[0], "slow").await;
        if let Some(second) = runs
            .iter()
            .find(|run| run["attempt"] == 2 && run["status"] == "succeeded")
        {
            retried = second.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(retried["status"], "succeeded", "the retry ran: {retried}");
    assert_eq!(retried["node"], "a", "{retried}");
    assert_eq!(retried["retry_of"], run_id.as_str(), "{retried}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_killed_at_random_for_a_minute_lose_and_double_no_fire() {
    let (database, mut nodes) = cluster(3);
    let jobs: Vec<String> = (0..10).map(|index| format!("every{index}")).collect();
    nodes[0].upload("noop", "noop").await;
    for job in &jobs {
        nodes[0]
            .create_job(json!({"name": job, "plugin": "noop", "schedule": {"every": "1s"},
                               "policy": {"misfire": "run_all", "overlap": "allow"}}))
            .await;
    }
    let began = Utc::now();
    let chaos_for = Duration::from_secs(60);
    let started = std::time::Instant::now();
    let mut kills = 0;
    let mut seed = 0x2545_f491_u64;
    while started.elapsed() < chaos_for {
        // xorshift: a different node and pause each round, the same each run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = (seed % 3) as usize;
        nodes[victim].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(500 + seed % 1500)).await;
        nodes[victim] = node(&database, &((b'a' + victim as u8) as char).to_string());
        tokio::time::sleep(Duration::from_millis(1000 + (seed >> 8) % 2000)).await;
    }
    let ended = Utc::now();
    // Let the last fires run and the last dead node's runs be taken over.
    tokio::time::sleep(Duration::from_secs(6)).await;
    for job in &jobs {
        let runs = runs_of(&nodes[0], job).await;
        let fires = fires_by_instant(&runs);
        assert_no_fire_doubled(job, &fires);
        // Every second from the first fire to the end of the chaos fired
        // (misfire run_all: a fire missed while no node led runs late).
        let first = *fires.keys().next().expect("the job fired");
        let wanted: BTreeSet<DateTime<Utc>> = (0..)
            .map(|second| first + chrono::Duration::seconds(second))
            .take_while(|at| *at <= ended)
            .collect();
        let fired: BTreeSet<DateTime<Utc>> = fires.keys().copied().filter(|at| *at <= ended).collect();
        let missing: Vec<_> = wanted.difference(&fired).collect();
        assert!(
            missing.is_empty(),
            "{job} lost fires {missing:?} ({kills} kills since {began})"
        );
        // Every fire is accounted for: it ran (a run cut by a kill ended
        // `host_restart`), none is stuck queued or running.
        for run in runs.iter().filter(|run| instant(run, "scheduled_at") <= ended) {
            let status = run["status"].as_str().unwrap_or_default();
            assert!(
                status == "succeeded" || (status == "failed" && run["error"]["kind"] == "host_restart"),
                "{job}: a fire did not end: {run}"
            );
        }
    }
}
