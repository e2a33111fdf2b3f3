//! What the API acknowledged survives a SIGKILL: plugins (without a
//! recompile), jobs, runs, logs and kv state. One daemon per data dir.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

#[tokio::test]
async fn counter_counts_one_two_then_three_after_a_restart() {
    let mut daemon = TestDaemon::start();
    daemon.job_with("count", "counter", json!({})).await;
    assert_eq!(daemon.run_job("count", None).await["output"], "1");
    assert_eq!(daemon.run_job("count", None).await["output"], "2");
    daemon.restart();
    assert_eq!(daemon.run_job("count", None).await["output"], "3");
}

#[tokio::test]
async fn restart_keeps_plugins_jobs_runs_and_logs_and_does_not_recompile() {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with("greet", "hello", json!({"input": {"name": "Ada"}}))
        .await;
    let run = daemon.run_job("greet", None).await;
    let run_id = run["id"].as_str().unwrap().to_string();
    let log_before = daemon.log(&run_id).await;
    let plugin_before = daemon.call(Method::GET, "/v1/plugins/hello", None).await.body;
    let uploaded_at = plugin_before["versions"][0]["uploaded_at"].clone();
    assert!(uploaded_at.is_string());

    daemon.restart();

    let plugin_after = daemon.call(Method::GET, "/v1/plugins/hello", None).await.body;
    assert_eq!(plugin_after, plugin_before, "the plugin record is unchanged");
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/greet", None).await.status,
        StatusCode::OK
    );
    let run_after = daemon.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body;
    assert_eq!(run_after, run, "the run record and output are unchanged");
    assert_eq!(daemon.log(&run_id).await, log_before);

    // Running again loads the cached artifact instead of compiling.
    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");
    let plugin_after_run = daemon.call(Method::GET, "/v1/plugins/hello", None).await.body;
    assert_eq!(plugin_after_run["versions"][0]["uploaded_at"], uploaded_at);
    let logs = daemon.logs();
    assert!(
        logs.iter()
            .any(|line| line.contains("plugin loaded from the artifact cache")),
        "{logs:#?}"
    );
    assert!(
        !logs.iter().any(|line| line.contains("plugin compiled")),
        "no compile after the restart: {logs:#?}"
    );
}

#[tokio::test]
async fn a_run_killed_while_running_fails_with_host_restart() {
    let mut daemon = TestDaemon::start();
    daemon
        .job_with("spin", "spin", json!({"limits": {"timeout": "60s"}}))
        .await;
    let queued = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await;
    assert_eq!(queued.status, StatusCode::ACCEPTED);
    let run_id = queued.body["id"].as_str().unwrap().to_string();
    // Wait until the run is marked running; the mark is flushed before the
    // instance starts.
    assert!(
        daemon.wait_for_status(&run_id, "running").await,
        "the run never started"
    );
    // The API shows the mark a moment before its flush returns.
    tokio::time::sleep(Duration::from_millis(100)).await;
    daemon.restart();
    let run = daemon.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "host_restart");
}

/// Runs the `spin` job, sends SIGTERM once it is running, and checks the
/// daemon exited 0 having logged `log_line`. Returns the run's id.
async fn terminate_while_spin_runs(daemon: &mut TestDaemon, log_line: &str) -> String {
    let queued = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await;
    let run_id = queued.body["id"].as_str().unwrap().to_string();
    assert!(
        daemon.wait_for_status(&run_id, "running").await,
        "the run never started"
    );
    let status = daemon.terminate();
    assert!(status.success(), "a graceful stop exits 0: {status}");
    assert!(
        daemon.logs().iter().any(|line| line.contains(log_line)),
        "no {log_line:?} in {:#?}",
        daemon.logs()
    );
    run_id
}

#[tokio::test]
async fn sigterm_lets_a_running_run_finish_before_the_daemon_exits() {
    let mut daemon = TestDaemon::start();
    // An `after` job: the run's end during the stop moves its next fire.
    daemon
        .job_with(
            "spin",
            "spin",
            json!({"limits": {"timeout": "700ms"}, "schedule": {"after": "1h"}}),
        )
        .await;
    daemon.job_with("greet", "hello", json!({})).await;
    let run_id = terminate_while_spin_runs(&mut daemon, "waiting for running runs").await;
    daemon.start_again();
    let run = daemon.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body;
    assert_eq!(
        run["error"]["kind"], "timeout",
        "the run ended on its own deadline, not by the stop: {run}"
    );
    let job = daemon.call(Method::GET, "/v1/jobs/spin", None).await.body;
    let instant = |value: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap_or_default()).expect("an instant")
    };
    assert_eq!(
        instant(&job["next_fire_at"]),
        instant(&run["finished_at"]) + chrono::Duration::hours(1),
        "the next fire counts from the run's end, written before the exit: {job}"
    );
    assert_eq!(daemon.run_job("greet", None).await["status"], "succeeded");
}

#[tokio::test]
async fn sigterm_past_the_grace_period_fails_the_run_with_host_restart_and_it_retries() {
    let mut daemon = TestDaemon::start_with(&["--shutdown-grace", "300ms"], &[]);
    let policy = json!({"retry": {"max_attempts": 2, "backoff": "100ms", "max_backoff": "100ms"}});
    daemon
        .job_with("spin", "spin", json!({"limits": {"timeout": "1s"}, "policy": policy}))
        .await;
    let run_id = terminate_while_spin_runs(&mut daemon, "they fail with host_restart").await;
    daemon.start_again();
    let run = daemon.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body;
    assert_eq!(run["error"]["kind"], "host_restart", "{run}");
    // Its retry was queued durably at the stop and runs after the restart.
    let mut retry = Value::Null;
    for _ in 0..300 {
        let runs = daemon.call(Method::GET, "/v1/runs?job=spin", None).await.body;
        retry = runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|run| run["attempt"] == 2)
            .cloned()
            .unwrap_or(Value::Null);
        if retry["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(retry["trigger"], "retry", "{retry}");
    assert_eq!(
        retry["error"]["kind"], "timeout",
        "the retry ran to its own deadline: {retry}"
    );
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_exits_with_a_clear_message() {
    let daemon = TestDaemon::start();
    let output = Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(daemon.data_dir())
        .args(common::backend_args(daemon.data_dir()))
        .stdin(Stdio::null())
        .output()
        .expect("running a second daemon");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = if common::on_postgres() {
        "is running on this database; give each node its own --node-id"
    } else {
        "in use by another process"
    };
    assert!(stderr.contains(expected), "{stderr}");
    // The first one is unaffected.
    assert_eq!(daemon.call(Method::GET, "/v1/jobs", None).await.status, StatusCode::OK);
}
