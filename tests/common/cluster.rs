//! Several daemons on one PostgreSQL database, for the cluster tests: the
//! nodes (sharing the admin token and the secrets key), the leader, and
//! the runs of a job read through the API.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::TestDaemon;

/// Every node's admin token: the nodes of a cluster share it.
pub const TOKEN: &str = "sc_admin_cluster_test_0123456789abcdef";
/// Every node's secrets key: secrets sealed on one node open on the others.
pub const SECRETS_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A node named `id` of the cluster on `database`.
pub fn node(database: &str, id: &str) -> TestDaemon {
    node_with(database, id, &[])
}

/// A node named `id` of the cluster on `database`, with more arguments.
pub fn node_with(database: &str, id: &str, args: &[&str]) -> TestDaemon {
    let mut all = vec!["--database-url", database, "--node-id", id];
    all.extend_from_slice(args);
    TestDaemon::start_with(
        &all,
        &[("SANDCRON_ADMIN_TOKEN", TOKEN), ("SANDCRON_SECRETS_KEY", SECRETS_KEY)],
    )
}

/// A fresh database and `count` nodes on it, named a, b, c...
pub fn cluster(count: usize) -> (String, Vec<TestDaemon>) {
    cluster_with(count, &[])
}

/// [`cluster`], each node started with `args` too.
pub fn cluster_with(count: usize, args: &[&str]) -> (String, Vec<TestDaemon>) {
    let database = super::postgres::server().database();
    let nodes = (0..count)
        .map(|index| node_with(&database, &((b'a' + index as u8) as char).to_string(), args))
        .collect();
    (database, nodes)
}

/// `GET /v1/cluster` of a node.
pub async fn cluster_view(node: &TestDaemon) -> Value {
    let answer = node.call(Method::GET, "/v1/cluster", None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body
}

/// The id of the leader, once one leads (asked of `node`).
pub async fn leader(node: &TestDaemon) -> String {
    for _ in 0..100 {
        let view = cluster_view(node).await;
        let leaders: Vec<&str> = view["nodes"]
            .as_array()
            .expect("a node list")
            .iter()
            .filter(|node| node["leader"] == true)
            .map(|node| node["id"].as_str().expect("an id"))
            .collect();
        if let [leader] = leaders.as_slice() {
            return leader.to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no single leader: {}", cluster_view(node).await);
}

/// Every run of a job, oldest first (all pages).
pub async fn runs_of(node: &TestDaemon, job: &str) -> Vec<Value> {
    let mut runs = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/runs?job={job}&limit=500&cursor={cursor}"),
            None => format!("/v1/runs?job={job}&limit=500"),
        };
        let page = node.call(Method::GET, &path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}\n{}", page.body, node.logs().join("\n"));
        runs.extend(page.body["runs"].as_array().expect("runs").iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    runs.reverse();
    runs
}

pub fn instant(run: &Value, field: &str) -> DateTime<Utc> {
    run[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} of {run}"))
        .parse()
        .expect("an RFC 3339 instant")
}

/// Runs of first attempts (schedule fires), by instant: any instant twice
/// is a doubled fire.
pub fn fires_by_instant(runs: &[Value]) -> BTreeMap<DateTime<Utc>, Vec<&Value>> {
    let mut fires: BTreeMap<DateTime<Utc>, Vec<&Value>> = BTreeMap::new();
    for run in runs.iter().filter(|run| run["attempt"] == 1) {
        fires.entry(instant(run, "scheduled_at")).or_default().push(run);
    }
    fires
}

pub fn assert_no_fire_doubled(job: &str, fires: &BTreeMap<DateTime<Utc>, Vec<&Value>>) {
    for (at, runs) in fires {
        assert_eq!(runs.len(), 1, "{job} fired twice at {at}: {runs:?}");
    }
}
