//! Black-box tests of `sandcron migrate`: a stopped sled daemon's data dir
//! copied into an empty PostgreSQL database, then a daemon on that database
//! showing the same tenants, tokens, secrets, plugins, jobs, runs, kv,
//! workflows and joins; and the refusals (a database that already holds
//! state, a data dir a daemon holds or without a database), which write
//! nothing.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TestDaemon, plugin_bytes, postgres, text, texts};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const VALUE: &str = "pw-Zq8vR2-hunter2-correct-horse";

/// The daemons these tests start move from sled: on a PostgreSQL test run
/// (`SANDCRON_TEST_BACKEND=postgres`) they would have no sled data dir.
fn skipped() -> bool {
    if common::on_postgres() {
        eprintln!("skipped: migrate moves a sled data dir, and this run starts every daemon on PostgreSQL");
        return true;
    }
    false
}

/// `sandcron migrate --from-data-dir DIR --to URL`.
fn migrate(dir: &Path, url: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .arg("migrate")
        .arg("--from-data-dir")
        .arg(dir)
        .args(["--to", url])
        .env_remove("SANDCRON_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("running sandcron migrate")
}

/// A GET that must answer 200; its body.
async fn get(daemon: &TestDaemon, token: &str, path: &str) -> Value {
    let answer = daemon.call_as(Some(token), Method::GET, path, None).await;
    assert_eq!(answer.status, StatusCode::OK, "GET {path}: {}", answer.body);
    answer.body
}

/// What a tenant's token sees: its jobs, plugins, runs (each with its
/// output and log), workflows, workflow runs and secrets.
async fn snapshot(daemon: &TestDaemon, token: &str) -> Vec<(String, Value)> {
    let mut seen = Vec::new();
    for path in [
        "/v1/jobs",
        "/v1/plugins",
        "/v1/runs?limit=100",
        "/v1/workflows",
        "/v1/workflow-runs?limit=100",
        "/v1/secrets",
    ] {
        seen.push((path.to_string(), get(daemon, token, path).await));
    }
    let runs = seen[2].1["runs"].clone();
    for id in texts(&runs, "id") {
        for path in [format!("/v1/runs/{id}"), format!("/v1/runs/{id}/logs")] {
            let body = get(daemon, token, &path).await;
            seen.push((path, body));
        }
    }
    seen
}

/// A job's runs (newest first), as the token sees them.
async fn runs_of(daemon: &TestDaemon, token: &str, job: &str) -> Vec<Value> {
    get(daemon, token, &format!("/v1/runs?job={job}&limit=100")).await["runs"]
        .as_array()
        .expect("a list of runs")
        .clone()
}

/// Polls until `job` has `count` finished runs (up to 30 s); those runs.
async fn until_runs(daemon: &TestDaemon, token: &str, job: &str, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = runs_of(daemon, token, job).await;
        let finished = runs
            .iter()
            .filter(|run| run["status"] == "succeeded" || run["status"] == "failed")
            .count();
        if finished >= count {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "{job} never had {count} finished runs: {runs:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs a job now as `token` and waits for the finished run.
async fn run_now(daemon: &TestDaemon, token: &str, job: &str) -> Value {
    run_with_query(daemon, token, job, "wait=60s").await
}

/// Runs a job as `token` with `query` and waits for it to succeed.
async fn run_with_query(daemon: &TestDaemon, token: &str, job: &str, query: &str) -> Value {
    let answer = daemon
        .call_as(Some(token), Method::POST, &format!("/v1/jobs/{job}/run?{query}"), None)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "running {job}: {}", answer.body);
    assert_eq!(answer.body["status"], "succeeded", "{}", answer.body);
    answer.body
}

/// Creates a job as `token`.
async fn create_job(daemon: &TestDaemon, token: &str, body: Value) {
    let answer = daemon
        .call_as(Some(token), Method::POST, "/v1/jobs", Some(body.clone()))
        .await;
    assert_eq!(answer.status, StatusCode::CREATED, "creating {body}: {}", answer.body);
}

/// Uploads a built plugin's bytes as `name` with `token`; its version.
async fn upload(daemon: &TestDaemon, token: &str, name: &str, built: &str) -> u64 {
    let answer = daemon.upload_bytes_as(token, name, plugin_bytes(built)).await;
    assert_eq!(answer.status, StatusCode::CREATED, "upload of {built}: {}", answer.body);
    answer.body["version"].as_u64().expect("a version number")
}

/// What `secret_reader` reported of the secret, from a run's output.
fn reversed_secret(run: &Value) -> Value {
    let report: Value = serde_json::from_str(run["output"].as_str().expect("an output")).expect("a JSON report");
    report["db-password"].clone()
}

#[tokio::test]
async fn a_sled_data_dir_moves_to_postgres_whole() {
    if skipped() {
        return;
    }
    let mut source = TestDaemon::start();
    let admin = source.token.clone();

    // A tenant with three tokens, the last revoked; quotas for the default
    // tenant (a record of it with no token).
    let acme = source.new_tenant("acme", json!({})).await;
    let mut tokens = vec![acme.clone()];
    let mut token_ids = Vec::new();
    for _ in 0..2 {
        let made = source.call(Method::POST, "/v1/tenants/acme/tokens", None).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        tokens.push(made.body["token"].as_str().expect("a token").to_string());
        token_ids.push(made.body["id"].as_str().expect("a token id").to_string());
    }
    let revoked = source
        .call(
            Method::DELETE,
            &format!("/v1/tenants/acme/tokens/{}", token_ids[1]),
            None,
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.body);
    let quotas = source
        .call(
            Method::PATCH,
            "/v1/tenants/default",
            Some(json!({"quotas": {"jobs": 50}})),
        )
        .await;
    assert_eq!(quotas.status, StatusCode::OK, "{}", quotas.body);

    // acme: a secret, two versions of a plugin, a job of each kind of
    // state (runs with outputs and logs, kv, a secret, a join).
    let set = source
        .call_as(
            Some(&acme),
            Method::PUT,
            "/v1/secrets/db-password",
            Some(json!({"value": VALUE})),
        )
        .await;
    assert_eq!(set.status, StatusCode::CREATED, "{}", set.body);
    assert_eq!(upload(&source, &acme, "greeter", "hello").await, 1);
    assert_eq!(upload(&source, &acme, "greeter", "noop").await, 2);
    upload(&source, &acme, "counter", "counter").await;
    upload(&source, &acme, "secret_reader", "secret_reader").await;
    create_job(
        &source,
        &acme,
        json!({"name": "greet", "plugin": "greeter@1", "input": {"name": "Ada"}}),
    )
    .await;
    create_job(&source, &acme, json!({"name": "count", "plugin": "counter"})).await;
    create_job(
        &source,
        &acme,
        json!({"name": "granted", "plugin": "secret_reader", "secrets": ["db-password"], "input": ["db-password"]}),
    )
    .await;
    create_job(
        &source,
        &acme,
        json!({"name": "report", "plugin": "greeter@1", "after_jobs": {"jobs": ["count", "greet"]}}),
    )
    .await;
    assert_eq!(run_now(&source, &acme, "count").await["output"], "1");
    assert_eq!(run_now(&source, &acme, "count").await["output"], "2");
    // count and greet have both ended a run: report fires once; the next
    // greets leave a join waiting for count.
    let greeted = run_now(&source, &acme, "greet").await;
    assert_eq!(greeted["output"], "Hello, Ada!");
    until_runs(&source, &acme, "report", 1).await;
    run_now(&source, &acme, "greet").await;
    // A recorded run: its tape goes along.
    let recorded = run_with_query(&source, &acme, "greet", "wait=60s&record=true").await;
    assert_eq!(recorded["record"]["replayable"], true, "{recorded}");
    let granted = run_now(&source, &acme, "granted").await;
    assert_eq!(reversed_secret(&granted)["readable"], true, "{granted}");

    // The default tenant: a workflow of two steps and its run.
    source.upload("step", "step").await;
    source
        .create_job(json!({"name": "emit", "plugin": "step", "input": {"output": {"rows": 3}}}))
        .await;
    source.create_job(json!({"name": "echo", "plugin": "step"})).await;
    let defined = source
        .call(
            Method::POST,
            "/v1/workflows",
            Some(json!({"name": "pipeline", "steps": [
                {"id": "extract", "job": "emit"},
                {"id": "load", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
            ]})),
        )
        .await;
    assert_eq!(defined.status, StatusCode::CREATED, "{}", defined.body);
    let ran = source
        .call(Method::POST, "/v1/workflows/pipeline/run?wait=60s", None)
        .await;
    assert_eq!(ran.body["status"], "succeeded", "{}", ran.body);

    let acme_before = snapshot(&source, &acme).await;
    let default_before = snapshot(&source, &admin).await;
    let tenants_before = get(&source, &admin, "/v1/tenants").await;
    let acme_tenant_before = get(&source, &admin, "/v1/tenants/acme").await;
    let tokens_before = get(&source, &admin, "/v1/tenants/acme/tokens").await;
    assert!(source.terminate().success(), "the sled daemon stopped cleanly");

    let url = postgres::server().database();
    let migrated = migrate(source.data_dir(), &url);
    let (stdout, stderr) = (text(&migrated.stdout), text(&migrated.stderr));
    assert!(migrated.status.success(), "migrate failed: {stdout}{stderr}");
    assert_eq!(
        stdout.trim(),
        "migrated 2 tenants, 5 plugin versions, 6 jobs, 9 runs, 1 kv key, 1 secret, 1 workflow, 1 workflow run",
        "{stderr}"
    );
    for line in [
        "tenants: 2 (3 tokens, 1 revoked)",
        "plugins: 5 versions of 4 plugins",
        "joins: 1",
        "secrets.key",
    ] {
        assert!(stderr.contains(line), "no {line:?} in: {stderr}");
    }

    // A daemon on the database, in a new data dir with the old one's
    // admin token and secrets key (as the notes say).
    let data_dir = tempfile::tempdir().expect("a temp dir");
    for file in ["admin-token", "secrets.key"] {
        std::fs::copy(source.data_dir().join(file), data_dir.path().join(file)).expect("copying a key file");
    }
    let target = TestDaemon::start_in(data_dir, &["--database-url", &url], &[]);
    assert_eq!(target.token, admin);
    assert_eq!(snapshot(&target, &acme).await, acme_before);
    assert_eq!(snapshot(&target, &admin).await, default_before);
    assert_eq!(get(&target, &admin, "/v1/tenants").await, tenants_before);
    assert_eq!(get(&target, &admin, "/v1/tenants/acme").await, acme_tenant_before);
    assert_eq!(get(&target, &admin, "/v1/tenants/acme/tokens").await, tokens_before);
    assert_eq!(
        get(&target, &admin, "/v1/tenants/default").await["quotas"]["jobs"],
        50,
        "the default tenant's record moved"
    );

    // The revoked token is refused; the live ones work.
    let refused = target.call_as(Some(&tokens[2]), Method::GET, "/v1/jobs", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    for token in &tokens[..2] {
        let jobs = get(&target, token, "/v1/jobs").await;
        assert_eq!(texts(&jobs["jobs"], "name").len(), 4, "{jobs}");
    }

    // The plugin's versions, with their bytes: version 1 still greets.
    let greeter = get(&target, &acme, "/v1/plugins/greeter").await;
    let versions: Vec<u64> = greeter["versions"]
        .as_array()
        .unwrap_or_else(|| panic!("versions: {greeter}"))
        .iter()
        .map(|version| version["version"].as_u64().expect("a version number"))
        .collect();
    assert_eq!(versions, [1, 2], "{greeter}");
    let greets = runs_of(&target, &acme, "greet").await;
    assert_eq!(greets.len(), 3);
    let first = get(&target, &acme, &format!("/v1/runs/{}", greeted["id"].as_str().unwrap())).await;
    assert_eq!(first["output"], "Hello, Ada!");
    let log = get(
        &target,
        &acme,
        &format!("/v1/runs/{}/logs", greeted["id"].as_str().unwrap()),
    )
    .await;
    assert!(log.as_str().unwrap_or_default().contains("greeting Ada"), "{log}");
    let replay = format!("/v1/runs/{}/replay", recorded["id"].as_str().unwrap());
    let replayed = target.call_as(Some(&acme), Method::POST, &replay, None).await;
    assert_eq!(
        replayed.body["identical"], true,
        "the tape came along: {}",
        replayed.body
    );
    assert_eq!(run_now(&target, &acme, "greet").await["output"], "Hello, Ada!");

    // The counter goes on from its kv; its run completes report's join.
    assert_eq!(run_now(&target, &acme, "count").await["output"], "3");
    until_runs(&target, &acme, "report", 2).await;

    // The secret opens with the same key.
    let granted = run_now(&target, &acme, "granted").await;
    assert_eq!(
        reversed_secret(&granted)["reversed"],
        VALUE.chars().rev().collect::<String>(),
        "{granted}"
    );

    // The workflow and its run; it runs again.
    let listed = get(&target, &admin, "/v1/workflow-runs?workflow=pipeline").await;
    assert_eq!(listed["workflow_runs"][0]["id"], ran.body["id"], "{listed}");
    let again = target
        .call(Method::POST, "/v1/workflows/pipeline/run?wait=60s", None)
        .await;
    assert_eq!(again.body["status"], "succeeded", "{}", again.body);
}

/// Row counts of the store's tables in a database, to see it unchanged.
fn counts(url: &str) -> String {
    postgres::server().psql(
        url,
        "select (select count(*) from tenants) || ' ' || (select count(*) from tokens) || ' ' || \
         (select count(*) from plugin_versions) || ' ' || (select count(*) from jobs) || ' ' || \
         (select count(*) from runs) || ' ' || (select count(*) from kv) || ' ' || \
         (select count(*) from workflows) || ' ' || (select string_agg(name, ',' order by name) from jobs)",
    )
}

/// A stopped sled daemon of the default tenant with one job, run once.
async fn stopped_daemon_with_job(job: &str) -> TestDaemon {
    let mut daemon = TestDaemon::start();
    daemon.job_with(job, "counter", json!({})).await;
    daemon.run_job(job, None).await;
    assert!(daemon.terminate().success());
    daemon
}

#[tokio::test]
async fn migrate_refuses_a_database_that_already_holds_state() {
    if skipped() {
        return;
    }
    let first = stopped_daemon_with_job("first").await;
    let url = postgres::server().database();
    let migrated = migrate(first.data_dir(), &url);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    let before = counts(&url);
    assert_eq!(before, "0 0 1 1 1 1 0 first");

    // Again, and another data dir: refused, nothing changed.
    let second = stopped_daemon_with_job("second").await;
    for dir in [first.data_dir(), second.data_dir()] {
        let refused = migrate(dir, &url);
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success(), "migrated twice: {}", text(&refused.stdout));
        assert!(
            stderr.contains("already holds sandcron state")
                && stderr.contains("tenant default: 1 job, 1 plugin version, runs"),
            "{stderr}"
        );
        assert!(stderr.contains("Nothing was written"), "{stderr}");
        assert!(
            text(&refused.stdout).is_empty(),
            "no summary: {}",
            text(&refused.stdout)
        );
        assert_eq!(counts(&url), before, "the refused migration changed the database");
    }

    // A daemon on the database holds it: refused before anything is read.
    let data_dir = tempfile::tempdir().expect("a temp dir");
    let _running = TestDaemon::start_in(data_dir, &["--database-url", &url], &[]);
    let refused = migrate(second.data_dir(), &url);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("is running on the database") && stderr.contains("stop every node first"),
        "{stderr}"
    );
    assert_eq!(counts(&url), before);
}

#[tokio::test]
async fn migrate_refuses_a_data_dir_a_running_daemon_holds() {
    if skipped() {
        return;
    }
    let daemon = TestDaemon::start();
    daemon.job_with("greet", "hello", json!({})).await;
    let url = postgres::server().database();
    let refused = migrate(daemon.data_dir(), &url);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "migrated a running daemon's data dir");
    assert!(stderr.contains("stop the daemon first"), "{stderr}");
    let tables = postgres::server().psql(
        &url,
        "select count(*) from information_schema.tables where table_schema = 'public'",
    );
    assert_eq!(tables, "0", "the database was not even given the schema");
    // The daemon goes on.
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
}

#[test]
fn migrate_refuses_a_data_dir_without_a_database() {
    let empty = tempfile::tempdir().expect("a temp dir");
    // The data dir is looked at before the database, so none is needed.
    let refused = migrate(empty.path(), "postgres://sandcron@127.0.0.1:1/nothing");
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("holds no sandcron database"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(empty.path()).expect("the dir").count(),
        0,
        "nothing was created in the data dir"
    );
}
