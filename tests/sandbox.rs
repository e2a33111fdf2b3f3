//! Hostile plugins end their own run with their own error kind, within
//! their limits, and the daemon stays healthy for the next run.

mod common;

use std::time::{Duration, Instant};

use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Runs `plugin` once under `limits`; returns the run and the request's wall time.
async fn run_hostile(daemon: &TestDaemon, plugin: &str, limits: Value) -> (Value, Duration) {
    daemon.job_with(plugin, plugin, json!({"limits": limits})).await;
    let started = Instant::now();
    let run = daemon.run_job(plugin, None).await;
    (run, started.elapsed())
}

async fn assert_daemon_healthy(daemon: &TestDaemon) {
    let run = daemon.run_job("hello", Some(json!({"name": "after"}))).await;
    assert_eq!(run["status"], "succeeded", "hello after a hostile plugin: {run}");
    assert_eq!(run["output"], "Hello, after!");
}

#[tokio::test]
async fn each_hostile_plugin_ends_with_its_own_error_kind_and_the_daemon_stays_up() {
    let daemon = TestDaemon::start();
    daemon.job_with("hello", "hello", json!({})).await;
    let rows = [
        ("spin", json!({"timeout": "1s"}), "timeout"),
        ("memory_hog", json!({"memory": "32MiB"}), "memory_limit"),
        ("recurse", json!({}), "trap"),
        ("trap", json!({}), "trap"),
        ("big_output", json!({}), "output_limit"),
        ("chatty", json!({"timeout": "1s"}), "timeout"),
    ];
    for (plugin, limits, kind) in rows {
        let (run, elapsed) = run_hostile(&daemon, plugin, limits).await;
        assert_eq!(run["status"], "failed", "{plugin}: {run}");
        assert_eq!(run["error"]["kind"], kind, "{plugin}: {}", run["error"]);
        assert!(elapsed < Duration::from_secs(20), "{plugin} took {elapsed:?}");
        assert_daemon_healthy(&daemon).await;
    }
}

#[tokio::test]
async fn spin_with_a_one_second_timeout_ends_within_two_seconds() {
    let daemon = TestDaemon::start();
    for (job, limits) in [
        ("unmetered", json!({"timeout": "1s"})),
        ("metered", json!({"timeout": "1s", "fuel": 1_000_000_000_000u64})),
    ] {
        daemon.job_with(job, "spin", json!({"limits": limits})).await;
        let run = daemon.run_job(job, None).await;
        assert_eq!(run["error"]["kind"], "timeout", "{job}: {run}");
        let duration = run["duration_ms"].as_u64().unwrap();
        assert!((1000..2000).contains(&duration), "{job}: the run lasted {duration} ms");
        if job == "metered" {
            // Fuel is accounted even when the epoch deadline stops the run.
            assert!(run["fuel_consumed"].as_u64().unwrap() > 100_000_000, "{run}");
        } else {
            assert_eq!(run["fuel_consumed"], Value::Null, "{run}");
        }
    }
}

#[tokio::test]
async fn jobs_run_unmetered_unless_they_ask_for_fuel() {
    let mut daemon = TestDaemon::start();
    daemon.job_with("plain", "hello", json!({})).await;
    daemon
        .job_with("metered", "hello", json!({"limits": {"fuel": 1_000_000_000u64}}))
        .await;
    for round in 0..2 {
        let plain = daemon.run_job("plain", Some(json!({"name": "plain"}))).await;
        assert_eq!(plain["output"], "Hello, plain!", "{plain}");
        assert_eq!(
            (&plain["limits"]["fuel"], &plain["fuel_consumed"]),
            (&Value::Null, &Value::Null)
        );
        let metered = daemon.run_job("metered", Some(json!({"name": "metered"}))).await;
        assert_eq!(metered["output"], "Hello, metered!", "round {round}: {metered}");
        let consumed = metered["fuel_consumed"].as_u64().unwrap();
        assert!(consumed > 0 && consumed < 1_000_000_000, "consumed {consumed}");
    }
    // The plugin was compiled once per metering; both engines' code stays
    // cached, in memory and (after a restart) as artifacts.
    daemon.restart();
    for job in ["plain", "metered"] {
        assert_eq!(
            daemon.run_job(job, None).await["status"],
            "succeeded",
            "{job} after a restart"
        );
    }
    assert_eq!(
        daemon.metric(r#"sandcron_plugin_cache_total{result="artifact"}"#).await,
        2.0
    );
}

#[tokio::test]
async fn spin_with_little_fuel_runs_out_of_fuel() {
    let daemon = TestDaemon::start();
    let (run, _) = run_hostile(&daemon, "spin", json!({"fuel": 50_000_000, "timeout": "30s"})).await;
    assert_eq!(run["error"]["kind"], "fuel_exhausted", "{run}");
    let consumed = run["fuel_consumed"].as_u64().unwrap();
    assert!((49_000_000..=50_000_000).contains(&consumed), "consumed {consumed}");
}

#[tokio::test]
async fn memory_hog_reports_memory_limit_and_peak_memory_stays_under_the_cap() {
    let daemon = TestDaemon::start();
    let (run, _) = run_hostile(&daemon, "memory_hog", json!({"memory": "16MiB"})).await;
    assert_eq!(run["error"]["kind"], "memory_limit", "{run}");
    let peak = run["peak_memory"].as_u64().unwrap();
    assert!(peak <= 16 << 20 && peak > 8 << 20, "peak memory {peak}");
}

#[tokio::test]
async fn chatty_log_is_capped_with_a_truncation_marker() {
    let daemon = TestDaemon::start();
    // It prints until its deadline; the cap is reached long before it.
    let (run, _) = run_hostile(&daemon, "chatty", json!({"timeout": "5s"})).await;
    assert_eq!(run["error"]["kind"], "timeout");
    let log = daemon.log(run["id"].as_str().unwrap()).await;
    assert!(log.starts_with("chatty line 0:"), "{}", &log[..80.min(log.len())]);
    assert!(log.contains("chatty stderr 0"), "stderr is captured too");
    assert!(
        log.contains("[sandcron: log truncated at 1048576 bytes"),
        "marker present"
    );
    assert!(log.len() < (1 << 20) + 200, "log is {} bytes", log.len());
}

#[tokio::test]
async fn big_output_over_the_cap_fails_and_under_it_succeeds() {
    let daemon = TestDaemon::start();
    daemon
        .job_with("big", "big_output", json!({"limits": {"output": "64KiB"}}))
        .await;
    let over = daemon.run_job("big", Some(json!(65537))).await;
    assert_eq!(over["error"]["kind"], "output_limit");
    assert_eq!(over["output"], "");
    let under = daemon.run_job("big", Some(json!(65536))).await;
    assert_eq!(under["status"], "succeeded");
    assert_eq!(under["output"].as_str().unwrap().len(), 65536);
}

#[tokio::test]
async fn escape_attempts_fail_inside_the_plugin() {
    let daemon = TestDaemon::start();
    daemon.job_with("escape", "escape", json!({})).await;
    let run = daemon.run_job("escape", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let report: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    for attempt in ["file", "read_dir", "socket", "listen", "dns", "home", "http"] {
        let outcome = report[attempt].as_str().unwrap();
        assert!(outcome.starts_with("denied"), "{attempt}: {outcome}");
    }
    assert!(
        report["http"].as_str().unwrap().contains("no http_allow"),
        "{}",
        report["http"]
    );
    assert_eq!(report["env_count"], 0, "no environment variables");
    assert_eq!(report["secret"], "none", "an ungranted secret reads as none");
}

#[tokio::test]
async fn exec_runs_a_plugin_locally_in_the_same_sandbox() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .arg("exec")
        .arg(common::plugin("hello"))
        .args(["--input", r#"{"name": "local"}"#])
        .output()
        .expect("running sandcron exec");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Hello, local!");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("greeting local") && stderr.contains("status: succeeded"),
        "{stderr}"
    );

    let spin = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .arg("exec")
        .arg(common::plugin("spin"))
        .args(["--timeout", "200ms"])
        .output()
        .expect("running sandcron exec");
    assert!(!spin.status.success());
    assert!(String::from_utf8_lossy(&spin.stderr).contains("status: failed (timeout)"));

    // Secrets given to exec are readable and masked in what it prints; HTTP
    // goes through the same wall (loopback refused without a connection).
    let secret = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .arg("exec")
        .arg(common::plugin("secret_reader"))
        .args(["--input", r#"["db"]"#, "--secret", "db=local-Secret-42"])
        .output()
        .expect("running sandcron exec");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&secret.stdout),
        String::from_utf8_lossy(&secret.stderr),
    );
    assert!(stdout.contains(r#""reversed":"24-terceS-lacol""#), "{stdout}");
    assert!(
        stderr.contains("db = [secret:db]") && !stderr.contains("local-Secret-42"),
        "{stderr}"
    );
    let fetch = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .arg("exec")
        .arg(common::plugin("fetch"))
        .args([
            "--input",
            r#"{"url": "http://127.0.0.1:9/"}"#,
            "--http-allow",
            "127.0.0.1",
        ])
        .output()
        .expect("running sandcron exec");
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(stderr.contains("127.0.0.1 is a loopback address"), "{stderr}");
}

#[tokio::test]
async fn many_hostile_runs_at_once_do_not_starve_a_hello_run() {
    let daemon = TestDaemon::start_with(&["--max-concurrent-runs", "8"], &[]);
    daemon.job_with("hello", "hello", json!({})).await;
    daemon
        .job_with(
            "spin",
            "spin",
            json!({"limits": {"timeout": "2s"}, "policy": {"overlap": "allow"}}),
        )
        .await;
    // overlap `allow`: the four runs of one job spin side by side.
    for _ in 0..4 {
        let answer = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
    }
    // Four spinning instances on two cores: hello still gets through, because
    // spinning guests yield at every epoch tick.
    let mut running = Value::Null;
    for _ in 0..100 {
        running = daemon.call(Method::GET, "/v1/status", None).await.body["running_runs"].clone();
        if running == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(running, 4, "four spins run at once");
    let started = Instant::now();
    assert_daemon_healthy(&daemon).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "hello took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn runs_beyond_a_full_instance_pool_get_on_demand_instances() {
    let daemon = TestDaemon::start_with(&["--max-concurrent-runs", "8", "--pool-size", "1"], &[]);
    daemon.job_with("hello", "hello", json!({})).await;
    daemon
        .job_with(
            "spin",
            "spin",
            json!({"limits": {"timeout": "1s"}, "policy": {"overlap": "allow"}}),
        )
        .await;
    // Three spins at once with one pool slot: two run on the on-demand
    // engine, and each ends by its deadline, none for want of a slot.
    let mut ids = Vec::new();
    for _ in 0..3 {
        let answer = daemon.call(Method::POST, "/v1/jobs/spin/run", None).await;
        assert_eq!(answer.status, StatusCode::ACCEPTED);
        ids.push(answer.body["id"].as_str().unwrap().to_string());
    }
    for id in &ids {
        assert!(daemon.wait_for_status(id, "failed").await, "{id} did not end");
        let run = daemon.call(Method::GET, &format!("/v1/runs/{id}"), None).await.body;
        assert_eq!(run["error"]["kind"], "timeout", "{run}");
    }
    let on_demand = daemon.metric("sandcron_instances_total{allocator=\"on_demand\"}").await;
    let pooled = daemon.metric("sandcron_instances_total{allocator=\"pooling\"}").await;
    assert!(on_demand >= 1.0, "no run fell back to on-demand instances");
    assert!(pooled >= 1.0, "no run used the pool");
    assert_eq!(on_demand + pooled, 3.0);
    let spills = daemon.metric("sandcron_pool_spills_total{reason=\"slots\"}").await;
    assert_eq!(spills, on_demand, "each on-demand run is a spill of a full pool");
    // The pool's slot is free again: the next run takes it.
    assert_daemon_healthy(&daemon).await;
}

#[tokio::test]
async fn a_trap_is_one_readable_line_and_its_backtrace_is_in_the_runs_log() {
    let daemon = TestDaemon::start();
    for plugin in ["trap", "recurse"] {
        let (run, _) = run_hostile(&daemon, plugin, json!({})).await;
        let message = run["error"]["message"].as_str().expect("a message");
        assert!(!message.contains('\n'), "{plugin}: {message:?}");
        assert!(message.starts_with("wasm trap: "), "{plugin}: {message:?}");
        assert!(!message.contains("wasm function"), "{plugin}: {message:?}");
        let log = daemon.log(run["id"].as_str().unwrap()).await;
        assert!(log.contains("sandcron: the run failed: "), "{plugin}: {log}");
        assert!(log.contains("wasm backtrace"), "{plugin}: {log}");
    }
}

#[tokio::test]
async fn a_run_the_pool_has_too_few_core_instances_for_goes_on_demand_and_is_counted() {
    // One slot with room for 2 core instances: the noop plugin takes 3.
    let daemon = TestDaemon::start_with(&["--pool-size", "1", "--pool-core-instances", "2"], &[]);
    daemon.job_with("noop", "noop", json!({})).await;
    let run = daemon.run_job("noop", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(daemon.metric("sandcron_pool_spills_total{reason=\"resources\"}").await >= 1.0);
    assert!(daemon.metric("sandcron_instances_total{allocator=\"on_demand\"}").await >= 1.0);
    // With the default room the same plugin stays in the pool.
    let daemon = TestDaemon::start_with(&["--pool-size", "1"], &[]);
    daemon.job_with("noop", "noop", json!({})).await;
    let run = daemon.run_job("noop", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        daemon.metric("sandcron_pool_spills_total{reason=\"resources\"}").await,
        0.0
    );
    assert!(daemon.metric("sandcron_instances_total{allocator=\"pooling\"}").await >= 1.0);
}

#[tokio::test]
async fn run_info_tells_a_plugin_its_jobs_zone_and_its_offset() {
    let daemon = TestDaemon::start();
    daemon.upload("run_info", "run_info").await;
    let rows = [
        (
            json!({"cron": "0 9 * * *", "timezone": "Asia/Kolkata"}),
            "Asia/Kolkata",
            5 * 3600 + 1800,
        ),
        (json!({"cron": "0 9 * * *"}), "UTC", 0),
        (json!({"every": "1h"}), "UTC", 0),
        (Value::Null, "UTC", 0),
    ];
    for (index, (schedule, zone, offset)) in rows.into_iter().enumerate() {
        let name = format!("zone-{index}");
        daemon
            .create_job(json!({"name": name, "plugin": "run_info", "schedule": schedule}))
            .await;
        let run = daemon.run_job(&name, None).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let said: Value = serde_json::from_str(run["output"].as_str().expect("text")).expect("JSON");
        assert_eq!(said, json!({"timezone": zone, "offset": offset}), "{schedule}");
    }
    // A plugin built before run-info (which does not import it) runs as ever.
    daemon.job_with("hello", "hello", json!({})).await;
    assert_eq!(daemon.run_job("hello", None).await["status"], "succeeded");
}
