//! Several daemons on one PostgreSQL database (a throwaway server the
//! harness starts): what one node writes every node sees; one leader plans
//! the fires, and when it dies another takes over within two seconds of
//! the next fire's instant; a dead node's runs end `host_restart` and retry
//! on a node that lives; nodes killed at random for a minute lose and
//! double no fire; a tenant's `concurrent_runs` holds across the nodes
//! that claim its runs; a stream on any node carries every node's events
//! and resumes on another; a job's hooks changed through one node reach
//! the others. (A database restart: `cluster_outage.rs`, a binary of
//! its own since it stops the server every test here shares.)

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::TestDaemon;
use common::cluster::{
    assert_no_fire_doubled, cluster, cluster_view, cluster_with, fires_by_instant, instant, leader, node, runs_of,
};
use common::sse::{Events, kinds};
use common::webhooks::{receiver, wait_for};
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
    let ran_on = run["node"].as_str().expect("the node that ran it is named");
    assert!(["a", "b", "c"].contains(&ran_on), "{run}");
    let run_id = run["id"].as_str().expect("a run id");
    for node in &nodes {
        let plugins = node.call(Method::GET, "/v1/plugins", None).await;
        assert!(plugins.body.to_string().contains("\"hello\""), "{}", plugins.body);
        let job = node.call(Method::GET, "/v1/jobs/greet", None).await;
        assert_eq!(job.status, StatusCode::OK, "{}", job.body);
        let seen = node.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await;
        assert_eq!(seen.body["status"], "succeeded", "{}", seen.body);
        assert_eq!(node.log(run_id).await, a.log(run_id).await);
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
    // A running run is cancelled through any node: the node that has it
    // stops it.
    a.job_with("slow", "step", json!({"input": {"sleep_ms": 3000}})).await;
    let slow = a.call(Method::POST, "/v1/jobs/slow/run", None).await;
    let slow_id = slow.body["id"].as_str().expect("a run id").to_string();
    assert!(a.wait_for_status(&slow_id, "running").await);
    let running = a.call(Method::GET, &format!("/v1/runs/{slow_id}"), None).await.body;
    let owner = usize::from(running["node"].as_str().expect("its node").as_bytes()[0] - b'a');
    let other = &nodes[(owner + 1) % 3];
    let cancelled = other
        .call(Method::POST, &format!("/v1/runs/{slow_id}/cancel"), None)
        .await;
    assert!(cancelled.status.is_success(), "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled", "{}", cancelled.body);
    assert_eq!(cancelled.body["node"], running["node"], "{}", cancelled.body);
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
    // A job made on one node is fired by the leader, and its runs (run by
    // whichever node claims them) are seen everywhere.
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
    // (A fire recorded ahead waits in the cluster's queue, no node's yet.)
    assert!(
        ticks
            .iter()
            .filter(|run| run["status"] != "queued")
            .all(|run| ["a", "b", "c"].contains(&run["node"].as_str().unwrap_or_default())),
        "{ticks:?}"
    );
    // Paused through one node, the cluster fires nothing; resumed through
    // another, it fires again.
    let paused = b.call(Method::POST, "/v1/scheduler/pause", None).await;
    assert!(paused.status.is_success(), "{}", paused.body);
    let paused_at = Utc::now();
    for node in &nodes {
        let mut said = Value::Null;
        for _ in 0..20 {
            said = node.call(Method::GET, "/v1/status", None).await.body;
            if said["scheduler"] == "paused" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(said["scheduler"], "paused", "{said}");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let while_paused: Vec<Value> = runs_of(c, "tick")
        .await
        .into_iter()
        .filter(|run| instant(run, "scheduled_at") > paused_at + chrono::Duration::milliseconds(500))
        .collect();
    assert!(while_paused.is_empty(), "fired while paused: {while_paused:?}");
    let resumed = c.call(Method::POST, "/v1/scheduler/resume", None).await;
    assert!(resumed.status.is_success(), "{}", resumed.body);
    let resumed_at = Utc::now();
    let mut fired_again = false;
    for _ in 0..50 {
        fired_again = runs_of(a, "tick")
            .await
            .iter()
            .any(|run| instant(run, "scheduled_at") > resumed_at);
        if fired_again {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fired_again, "the cluster fires again once resumed");
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
    assert!(nodes[1].wait_for_status(&run_id, "running").await, "the run started");
    // Whichever node claimed it is killed; the other lives.
    let running = nodes[1]
        .call(Method::GET, &format!("/v1/runs/{run_id}"), None)
        .await
        .body;
    let owner = usize::from(running["node"].as_str().expect("its node").as_bytes()[0] - b'a');
    let (survivor, survivor_id) = if owner == 0 { (1, "b") } else { (0, "a") };
    nodes[owner].kill();
    let mut failed = Value::Null;
    for _ in 0..100 {
        failed = nodes[survivor]
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
        let runs = runs_of(&nodes[survivor], "slow").await;
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
    assert_eq!(retried["node"], survivor_id, "{retried}");
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

#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_concurrent_runs_hold_across_nodes_and_its_runs_spread_over_them() {
    // One run at a time per node: two at once take two nodes, and three
    // nodes could run three.
    let (_database, nodes) = cluster_with(3, &["--max-concurrent-runs", "1"]);
    let acme = nodes[0]
        .new_tenant("acme", json!({"quotas": {"concurrent_runs": 2}}))
        .await;
    let uploaded = nodes[0]
        .upload_bytes_as(&acme, "step", common::plugin_bytes("step"))
        .await;
    assert!(uploaded.status.is_success(), "{}", uploaded.body);
    let created = nodes[0]
        .call_as(
            Some(&acme),
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "slow", "plugin": "step", "input": {"sleep_ms": 300},
                        "policy": {"overlap": "allow"}})),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    // Every node has read the tenant's quota before runs are queued.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let runs = run_through_every_node(&nodes, Some(&acme), "slow", 12).await;
    // At most two of its runs at once, wherever they ran.
    let most = most_at_once(&runs);
    assert!(most <= 2, "{most} runs at once: {runs:?}");
    assert_eq!(most, 2, "the tenant used its two slots, on two nodes: {runs:?}");
    let ran_on: BTreeSet<&str> = runs.iter().filter_map(|run| run["node"].as_str()).collect();
    assert!(ran_on.len() >= 2, "runs ran on {ran_on:?}");
}

/// Asks for `count` runs of `job` through the nodes in turn (as `token`,
/// or the admin), and returns them once all have succeeded.
async fn run_through_every_node(nodes: &[TestDaemon], token: Option<&str>, job: &str, count: usize) -> Vec<Value> {
    let mut ids = Vec::new();
    for index in 0..count {
        let path = format!("/v1/jobs/{job}/run");
        let node = &nodes[index % nodes.len()];
        let queued = node
            .call_as(Some(token.unwrap_or(&node.token)), Method::POST, &path, None)
            .await;
        assert!(queued.status.is_success(), "{}", queued.body);
        ids.push(queued.body["id"].as_str().expect("a run id").to_string());
    }
    let mut runs = Vec::new();
    for _ in 0..150 {
        runs.clear();
        for id in &ids {
            let path = format!("/v1/runs/{id}");
            runs.push(
                nodes[0]
                    .call_as(Some(token.unwrap_or(&nodes[0].token)), Method::GET, &path, None)
                    .await
                    .body,
            );
        }
        if runs.iter().all(|run| run["status"] == "succeeded") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(runs.iter().all(|run| run["status"] == "succeeded"), "{runs:?}");
    runs
}

/// The most of `runs` executing at once, wherever they ran: at each start,
/// the runs started before it and not finished yet.
fn most_at_once(runs: &[Value]) -> usize {
    runs.iter()
        .map(|run| {
            let start = instant(run, "started_at");
            runs.iter()
                .filter(|other| instant(other, "started_at") <= start && instant(other, "finished_at") > start)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrency_group_holds_across_nodes() {
    // One run at a time per node: three nodes could run three of the group.
    let (_database, nodes) = cluster_with(3, &["--max-concurrent-runs", "1"]);
    nodes[0]
        .job_with(
            "load",
            "step",
            json!({"input": {"sleep_ms": 300}, "policy": {"overlap": "allow", "concurrency": {"key": "db", "limit": 2}}}),
        )
        .await;
    let runs = run_through_every_node(&nodes, None, "load", 9).await;
    let most = most_at_once(&runs);
    assert_eq!(most, 2, "the group ran two at once, never three: {runs:?}");
    let ran_on: BTreeSet<&str> = runs.iter().filter_map(|run| run["node"].as_str()).collect();
    assert!(ran_on.len() >= 2, "runs ran on {ran_on:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_on_any_node_carries_every_nodes_events_and_resumes_on_another() {
    let (_database, nodes) = cluster(3);
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let acme = a.new_tenant("acme", json!({})).await;
    let uploaded = a.upload_bytes_as(&acme, "hello", common::plugin_bytes("hello")).await;
    assert!(uploaded.status.is_success(), "{}", uploaded.body);
    let mut on_b = Events::open(b, &acme, "", None).await;
    let mut others = Events::open(b, common::cluster::TOKEN, "", None).await;
    // A job made through a, run three times through c.
    let created = a
        .call_as(
            Some(&acme),
            Method::POST,
            "/v1/jobs",
            Some(json!({"name": "greet", "plugin": "hello", "policy": {"overlap": "allow"}})),
        )
        .await;
    assert!(created.status.is_success(), "{}", created.body);
    let mut run_ids = BTreeSet::new();
    for _ in 0..3 {
        let run = c
            .call_as(Some(&acme), Method::POST, "/v1/jobs/greet/run?wait=30s", None)
            .await;
        assert_eq!(run.body["status"], "succeeded", "{}", run.body);
        run_ids.insert(run.body["id"].as_str().expect("a run id").to_string());
    }
    let frames = on_b.take(10, Duration::from_secs(10)).await;
    let mut seen = kinds(&frames);
    seen.sort_unstable();
    assert_eq!(
        seen,
        [
            "job.created",
            "run.finished",
            "run.finished",
            "run.finished",
            "run.queued",
            "run.queued",
            "run.queued",
            "run.started",
            "run.started",
            "run.started"
        ],
        "b streams what a and c did: {frames:?}"
    );
    let streamed: BTreeSet<String> = frames
        .iter()
        .filter_map(|frame| frame.data["data"]["run_id"].as_str().map(str::to_string))
        .collect();
    assert_eq!(streamed, run_ids);
    let ids: Vec<u64> = frames.iter().map(|frame| frame.id.expect("an id")).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "ids grow: {ids:?}");
    assert!(
        others.next(Duration::from_millis(300)).await.is_none(),
        "another tenant's stream carries none of it"
    );
    // A stream resuming on c after the fourth event gets the rest, the same.
    let mut resumed = Events::open(c, &acme, "", Some(ids[3])).await;
    let replayed = resumed.take(6, Duration::from_secs(5)).await;
    let replayed_ids: Vec<u64> = replayed.iter().map(|frame| frame.id.expect("an id")).collect();
    assert_eq!(replayed_ids, ids[4..], "{replayed:?}");
    assert_eq!(kinds(&replayed), kinds(&frames[4..]));
}

/// Each node keeps its jobs' hooks (webhooks, `after`) in memory, as sled
/// does: another node's change of a job must reach it. Node b changes the
/// job while node a holds its hooks, then stops: the next run, on a, calls
/// the webhook b added.
#[tokio::test(flavor = "multi_thread")]
async fn a_webhook_added_through_one_node_is_called_for_runs_on_another() {
    let (port, got) = receiver().await;
    let database = common::postgres::server().database();
    let allow = [
        ("SANDCRON_ADMIN_TOKEN", common::cluster::TOKEN),
        ("SANDCRON_SECRETS_KEY", common::cluster::SECRETS_KEY),
        ("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32"),
    ];
    let start = |id: &str| TestDaemon::start_with(&["--database-url", &database, "--node-id", id], &allow);
    let a = start("a");
    a.upload("hello", "hello").await;
    a.create_job(json!({"name": "greet", "plugin": "hello"})).await;
    let run = a.run_job("greet", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mut b = start("b");
    let hook = json!({"url": format!("http://127.0.0.1:{port}/hook"), "on": ["succeeded"]});
    let patched = b
        .call(Method::PATCH, "/v1/jobs/greet", Some(json!({"webhooks": [hook]})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    b.terminate();
    let run = a.run_job("greet", None).await;
    assert_eq!(run["node"], "a", "{run}");
    let calls = wait_for(&got, "/hook", 1, Duration::from_secs(10)).await;
    assert_eq!(calls.len(), 1, "node a called the webhook node b added");
}

/// A write of runs that does not change a tenant's run bytes (a claim)
/// leaves the tenant's `run_usage` row alone: it used to upsert it, which
/// held the row locked until commit and put every claim and outcome of
/// the tenant, on every node, in one line.
#[tokio::test(flavor = "multi_thread")]
async fn a_claim_leaves_the_tenants_run_usage_row_alone() {
    let (database, nodes) = cluster(1);
    nodes[0].upload("hello", "hello").await;
    nodes[0].create_job(json!({"name": "greet", "plugin": "hello"})).await;
    let run = nodes[0].run_job("greet", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let server = common::postgres::server();
    let version = || server.psql(&database, "SELECT xmin FROM run_usage");
    let before = version();
    server.psql(&database, "UPDATE runs SET node = 'elsewhere'");
    assert_eq!(version(), before, "the usage row was written again");
    server.psql(&database, "UPDATE runs SET bytes = bytes + 1");
    assert_ne!(version(), before, "a change of the bytes is counted");
}

/// A job after two others, whose runs end on two nodes at once, fires
/// once per round: each node moves the join on in a transaction the other
/// waits for, so neither end's count is lost (each node kept the join in
/// its own memory before, and neither saw the other's end).
#[tokio::test(flavor = "multi_thread")]
async fn a_job_after_two_others_fires_once_when_they_end_on_two_nodes_at_once() {
    // One run at a time per node: the two runs of a round take two nodes.
    let (_database, nodes) = cluster_with(2, &["--max-concurrent-runs", "1"]);
    nodes[0].upload("step", "step").await;
    for name in ["left", "right"] {
        nodes[0]
            .create_job(json!({"name": name, "plugin": "step", "input": {"sleep_ms": 300}}))
            .await;
    }
    nodes[0]
        .create_job(json!({"name": "both", "plugin": "step", "after_jobs": {"jobs": ["left", "right"]}}))
        .await;
    // Both nodes have read the new job's `after_jobs`.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for round in 1..=4 {
        let (left, right) = tokio::join!(
            nodes[0].call(Method::POST, "/v1/jobs/left/run?wait=30s", None),
            nodes[1].call(Method::POST, "/v1/jobs/right/run?wait=30s", None),
        );
        assert_eq!(left.body["status"], "succeeded", "{}", left.body);
        assert_eq!(right.body["status"], "succeeded", "{}", right.body);
        assert_ne!(
            left.body["node"], right.body["node"],
            "the round's runs ran on one node"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut fired = runs_of(&nodes[1], "both").await;
        while fired.len() < round && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            fired = runs_of(&nodes[1], "both").await;
        }
        assert_eq!(fired.len(), round, "round {round}: {fired:?}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs_of(&nodes[0], "both").await.len(), 4, "fired once per round");
}

/// A workflow run is driven by the node that started it, a follower here:
/// it still times out, any node cancels it, and the leader's schedule
/// sees it (overlap `skip` starts nothing beside it).
#[tokio::test(flavor = "multi_thread")]
async fn a_workflow_run_a_follower_drives_times_out_is_cancelled_anywhere_and_counts_for_the_schedule() {
    let (_database, nodes) = cluster(2);
    let leading = usize::from(leader(&nodes[0]).await.as_bytes()[0] - b'a');
    let (lead, follower) = (&nodes[leading], &nodes[1 - leading]);
    lead.upload("step", "step").await;
    lead.create_job(json!({"name": "echo", "plugin": "step"})).await;
    let slow = |name: &str, extra: Value| {
        let mut body =
            json!({"name": name, "steps": [{"id": "slow", "job": "echo", "input": {"value": {"sleep_ms": 30000}}}]});
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        body
    };
    let define = |body: Value| async move {
        let answer = lead.call(Method::POST, "/v1/workflows", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{body}: {}", answer.body);
    };
    let start = |name: &'static str| async move {
        let started = follower
            .call(Method::POST, &format!("/v1/workflows/{name}/run"), None)
            .await;
        assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
        started.body["id"].as_str().expect("an id").to_string()
    };
    let until_ended = |id: String| async move {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let run = lead
                .call(Method::GET, &format!("/v1/workflow-runs/{id}"), None)
                .await
                .body;
            if run["status"] != "running" {
                return run;
            }
            assert!(std::time::Instant::now() < deadline, "still running: {run}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };

    // Its timeout: the follower stops it.
    define(slow("slowpoke", json!({"timeout": "1s"}))).await;
    let timed_out = until_ended(start("slowpoke").await).await;
    assert_eq!(timed_out["status"], "failed", "{timed_out}");
    assert_eq!(timed_out["error"], "timed out after 1s", "{timed_out}");

    // A cancel through the leader: the follower stops it.
    define(slow("long", json!({}))).await;
    let id = start("long").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cancelled = lead
        .call(Method::POST, &format!("/v1/workflow-runs/{id}/cancel"), None)
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(until_ended(id).await["status"], "cancelled");

    // The leader's schedule: a fire every second skips while the run the
    // follower started goes (2.5 s), then fires again.
    define(
        json!({"name": "skipper", "enabled": false, "schedule": {"every": "1s"}, "policy": {"overlap": "skip"},
                  "steps": [{"id": "slow", "job": "echo", "input": {"value": {"sleep_ms": 2500}}}]}),
    )
    .await;
    let manual = start("skipper").await;
    let enabled = lead
        .call(Method::PATCH, "/v1/workflows/skipper", Some(json!({"enabled": true})))
        .await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    tokio::time::sleep(Duration::from_millis(4000)).await;
    let paused = lead
        .call(Method::PATCH, "/v1/workflows/skipper", Some(json!({"enabled": false})))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    let listed = lead
        .call(Method::GET, "/v1/workflow-runs?workflow=skipper", None)
        .await
        .body;
    let mut spans = Vec::new();
    for run in listed["workflow_runs"].as_array().expect("runs") {
        let ended = until_ended(run["id"].as_str().expect("an id").to_string()).await;
        spans.push((instant(&ended, "started_at"), instant(&ended, "finished_at"), ended));
    }
    assert!(spans.iter().any(|(.., run)| run["id"] == manual.as_str()));
    assert!(spans.len() >= 2, "the schedule fired after the manual run: {spans:?}");
    for (index, (start, end, run)) in spans.iter().enumerate() {
        for (other_start, other_end, other) in &spans[index + 1..] {
            assert!(end <= other_start || other_end <= start, "{run} overlaps {other}");
        }
    }
}

/// The leader records a fire ahead of its instant (2 s by default) in the
/// cluster's queue, where no node claims it before it is due; a change of
/// the job through another node withdraws it, so the fire runs the job as
/// changed, once, and on time.
#[tokio::test(flavor = "multi_thread")]
async fn a_fire_recorded_ahead_runs_at_its_instant_as_a_change_through_another_node_left_the_job() {
    let (_database, nodes) = cluster(2);
    let leading = usize::from(leader(&nodes[0]).await.as_bytes()[0] - b'a');
    let (lead, follower) = (&nodes[leading], &nodes[1 - leading]);
    lead.upload("step", "step").await;
    let due = DateTime::from_timestamp_millis((Utc::now() + chrono::Duration::milliseconds(3500)).timestamp_millis())
        .expect("an instant");
    let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    lead.create_job(
        json!({"name": "once", "plugin": "step", "input": {"output": "as created"},
                           "schedule": {"at": due_text}}),
    )
    .await;
    // Recorded ahead: queued before its instant, with its instant.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let ahead = loop {
        let runs = runs_of(follower, "once").await;
        if let Some(run) = runs.first() {
            break run.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no fire recorded ahead");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ahead["status"], "queued", "{ahead}");
    assert_eq!(instant(&ahead, "scheduled_at"), due);
    assert!(Utc::now() < due, "recorded before its instant: {ahead}");
    let shown = follower.call(Method::GET, "/v1/jobs/once", None).await.body;
    assert_eq!(
        shown["next_fire_at"]
            .as_str()
            .map(|at| at.parse::<DateTime<Utc>>().unwrap()),
        Some(due),
        "{shown}"
    );
    let changed = follower
        .call(
            Method::PATCH,
            "/v1/jobs/once",
            Some(json!({"input": {"output": "as changed"}})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ran = loop {
        let runs = runs_of(lead, "once").await;
        if let [run] = runs.as_slice()
            && run["status"] == "succeeded"
        {
            break run.clone();
        }
        assert!(runs.len() <= 1, "fired twice: {runs:?}");
        assert!(std::time::Instant::now() < deadline, "never ran: {runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(instant(&ran, "scheduled_at"), due);
    assert!(instant(&ran, "started_at") >= due, "started before its instant: {ran}");
    let full = lead
        .call(Method::GET, &format!("/v1/runs/{}", ran["id"].as_str().unwrap()), None)
        .await
        .body;
    assert_eq!(
        full["output"], "\"as changed\"",
        "the fire ran the job as changed: {full}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs_of(lead, "once").await.len(), 1, "fired once");
}
