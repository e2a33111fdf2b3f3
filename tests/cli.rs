//! The command line as people use it: in pipes, with the flags they reach
//! for, its output read by eye and by scripts.

mod common;

use std::process::{Command, Stdio};

use common::TestDaemon;
use serde_json::json;

#[tokio::test]
async fn a_listing_whose_reader_has_gone_ends_quietly_without_a_panic() {
    let daemon = TestDaemon::start();
    daemon.upload("noop", "noop").await;
    for index in 0..20 {
        daemon
            .create_job(json!({"name": format!("job-{index}"), "plugin": "noop", "schedule": {"every": "1h"}}))
            .await;
    }
    let data_dir = daemon.data_dir().to_str().expect("a UTF-8 path").to_string();
    let connection = ["--url", &daemon.url, "--data-dir", &data_dir];
    for args in [
        [&["job", "ls", "--output", "json"][..], &connection].concat(),
        [&["job", "ls"][..], &connection].concat(),
        [&["plugin", "ls"][..], &connection].concat(),
        vec!["completion", "bash"],
    ] {
        // A pipe whose reader is closed before the command writes: as
        // `sandcron job ls --output json | head -0`.
        let (reader, writer) = std::io::pipe().expect("a pipe");
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_sandcron"))
            .args(&args)
            .env_remove("SANDCRON_TOKEN")
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("running the CLI");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "sandcron {args:?}: {stderr}");
        assert!(
            output.status.success(),
            "sandcron {args:?}: {:?} {stderr}",
            output.status
        );
    }
}

#[tokio::test]
async fn a_schedule_preview_shows_each_fire_in_utc_and_in_the_schedules_zone() {
    let daemon = TestDaemon::start();
    // 09:00 in Berlin, two fires from a day before the change to summer time.
    const BERLIN: [&str; 9] = [
        "schedule",
        "preview",
        "0 9 * * *",
        "--tz",
        "Europe/Berlin",
        "--from",
        "2026-03-28T00:00:00Z",
        "--count",
        "2",
    ];
    let printed = daemon.cli(&BERLIN);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    // 09:00 in Berlin on both sides of the change to summer time.
    assert!(lines[0].starts_with("2026-03-28T08:00:00Z"), "{printed}");
    assert!(lines[0].contains("2026-03-28 09:00:00 CET (+01:00)"), "{printed}");
    assert!(lines[1].starts_with("2026-03-29T07:00:00Z"), "{printed}");
    assert!(lines[1].contains("2026-03-29 09:00:00 CEST (+02:00)"), "{printed}");

    let answer: serde_json::Value =
        serde_json::from_str(&daemon.cli(&[&BERLIN[..], &["--output", "json"]].concat())).expect("JSON");
    assert_eq!(answer["timezone"], "Europe/Berlin");
    assert_eq!(
        answer["local"],
        json!(["2026-03-28T09:00:00+01:00", "2026-03-29T09:00:00+02:00"])
    );

    // A fixed rate has no zone: UTC alone.
    let printed = daemon.cli(&[
        "schedule",
        "preview",
        "--every",
        "90m",
        "--from",
        "2026-03-28T00:00:00Z",
        "--count",
        "2",
    ]);
    assert_eq!(printed.lines().count(), 2, "{printed}");
    assert!(printed.lines().all(|line| line.ends_with('Z')), "{printed}");
}

#[tokio::test]
async fn job_create_takes_the_flags_people_reach_for() {
    let daemon = TestDaemon::start();
    daemon.upload("noop", "noop").await;
    daemon.cli(&[
        "job",
        "create",
        "--name",
        "nightly",
        "--plugin",
        "noop",
        "--cron",
        "0 3 * * *",
        "--tz",
        "Europe/Berlin",
        "--priority",
        "high",
        "--retry",
        "3",
        "--backoff",
        "10s",
        "--timeout",
        "45s",
        "--memory",
        "32MiB",
        "--run-at-start",
        "--http-allow",
        "api.example.com",
        "--http-allow",
        "*.example.org",
        "--secret",
        "token",
    ]);
    let job = daemon.call(reqwest::Method::GET, "/v1/jobs/nightly", None).await.body;
    assert_eq!(job["policy"]["priority"], "high", "{job}");
    assert_eq!(job["policy"]["retry"]["max_attempts"], 3, "{job}");
    assert_eq!(job["policy"]["retry"]["backoff"], "10s", "{job}");
    assert_eq!(job["limits"]["timeout"], "45s", "{job}");
    assert_eq!(job["limits"]["memory"], 32 << 20, "{job}");
    assert_eq!(job["run_at_start"], true, "{job}");
    assert_eq!(job["http_allow"], json!(["api.example.com", "*.example.org"]), "{job}");
    assert_eq!(job["secrets"], json!(["token"]), "{job}");

    // Flags over a job file whose field is not an object: an error, no panic.
    let file = daemon.data_dir().join("job.json");
    std::fs::write(&file, r#"{"name": "odd", "plugin": "noop", "policy": 5}"#).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(["job", "create", "--priority", "low", "-f"])
        .arg(&file)
        .args(["--url", &daemon.url, "--data-dir"])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .output()
        .expect("running the CLI");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("policy is not an object"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Runs the CLI against `daemon` whatever its exit status: the output.
fn cli_output(daemon: &TestDaemon, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(args)
        .args(["--url", &daemon.url, "--data-dir"])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("running the CLI")
}

/// The line of the steps table that starts with this step id.
fn step_line<'a>(printed: &'a str, step: &str) -> &'a str {
    printed
        .lines()
        .find(|line| line.split_whitespace().next() == Some(step))
        .unwrap_or_else(|| panic!("no line for step {step}: {printed}"))
}

#[tokio::test]
async fn workflows_are_created_run_listed_and_removed_from_the_command_line() {
    let daemon = TestDaemon::start();
    daemon.upload("step", "step").await;
    for (name, input) in [
        ("emit", Some(r#"{"output": {"rows": 3}}"#)),
        ("echo", None),
        ("fail", Some(r#"{"fail": "boom"}"#)),
        ("nap", Some(r#"{"sleep_ms": 20000}"#)),
    ] {
        let mut args = vec!["job", "create", "--name", name, "--plugin", "step"];
        if let Some(input) = input {
            args.extend(["--input", input]);
        }
        daemon.cli(&args);
    }
    // A JSON file, and a TOML one with the steps as [[steps]] tables.
    let pipeline = daemon.data_dir().join("pipeline.json");
    std::fs::write(
        &pipeline,
        json!({"name": "pipeline", "steps": [
            {"id": "extract", "job": "emit"},
            {"id": "load", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
        ]})
        .to_string(),
    )
    .unwrap();
    daemon.cli(&["workflow", "create", "-f", pipeline.to_str().unwrap()]);
    let broken = daemon.data_dir().join("broken.toml");
    std::fs::write(&broken, "[[steps]]\nid = \"first\"\njob = \"fail\"\n").unwrap();
    daemon.cli(&[
        "workflow",
        "create",
        "--file",
        broken.to_str().unwrap(),
        "--name",
        "broken",
    ]);
    let slow = daemon.data_dir().join("slow.json");
    std::fs::write(
        &slow,
        json!({"name": "slow", "steps": [{"id": "wait", "job": "nap"}]}).to_string(),
    )
    .unwrap();
    daemon.cli(&["workflow", "create", "-f", slow.to_str().unwrap()]);
    let listed = daemon.cli(&["workflow", "ls"]);
    assert!(listed.starts_with("ID "), "{listed}");
    for name in ["pipeline", "broken", "slow"] {
        assert!(listed.contains(name), "{listed}");
    }

    // A run that succeeds: its steps as a table, in the workflow's order; exit 0.
    let printed = daemon.cli(&["workflow", "run", "pipeline", "--wait", "60s"]);
    let first = printed.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("workflow run ") && first.contains("(pipeline, manual): succeeded"),
        "{printed}"
    );
    assert!(
        printed.lines().nth(1).unwrap_or_default().starts_with("STEP "),
        "{printed}"
    );
    for step in ["extract", "load"] {
        let line = step_line(&printed, step);
        let columns: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(columns[1], "succeeded", "{line}");
        assert_eq!(columns[2], "1", "attempt: {line}");
        assert_eq!(columns[3].len(), 26, "a run id: {line}");
    }
    let extract_at = printed.find("\nextract ").unwrap();
    assert!(extract_at < printed.find("\nload ").unwrap(), "{printed}");

    // As JSON, with an input of the run's own, which the first step returns
    // and the second gets.
    let answer: serde_json::Value = serde_json::from_str(&daemon.cli(&[
        "workflow",
        "run",
        "pipeline",
        "--wait",
        "60s",
        "--input",
        r#"{"output": "given"}"#,
        "--output",
        "json",
    ]))
    .expect("JSON");
    assert_eq!(answer["status"], "succeeded", "{answer}");
    let load_run = answer["steps"]["load"]["run_id"].as_str().unwrap();
    let load = daemon
        .call(reqwest::Method::GET, &format!("/v1/runs/{load_run}"), None)
        .await
        .body;
    assert_eq!(
        load["output"], r#""given""#,
        "load got extract's output of the input: {load}"
    );

    // A run that fails: the table says which step, and the exit status is not 0.
    let failed = cli_output(&daemon, &["workflow", "run", "broken", "--wait", "60s"]);
    let printed = String::from_utf8_lossy(&failed.stdout);
    assert!(!failed.status.success(), "{printed}");
    assert!(
        printed.lines().next().unwrap_or_default().ends_with(": failed"),
        "{printed}"
    );
    assert_eq!(step_line(&printed, "first").split_whitespace().nth(1), Some("failed"));
    assert!(printed.contains("error: step \"first\" failed"), "{printed}");
    let failed_id = printed.split_whitespace().nth(2).unwrap().to_string();
    // Retried, it fails again (its job still fails): again not 0.
    let retried = cli_output(&daemon, &["workflow", "retry", &failed_id, "--wait", "60s"]);
    assert!(
        !retried.status.success(),
        "{}",
        String::from_utf8_lossy(&retried.stdout)
    );
    assert_eq!(
        step_line(&String::from_utf8_lossy(&retried.stdout), "first")
            .split_whitespace()
            .nth(1),
        Some("failed")
    );

    // A run without --wait comes back running; cancel stops it.
    let started: serde_json::Value =
        serde_json::from_str(&daemon.cli(&["workflow", "run", "slow", "--output", "json"])).expect("JSON");
    assert_eq!(started["status"], "running", "{started}");
    let slow_id = started["id"].as_str().unwrap();
    daemon.cli(&["workflow", "cancel", slow_id]);
    let cancelled: serde_json::Value =
        serde_json::from_str(&daemon.cli(&["workflow", "status", slow_id, "--wait", "30s", "--output", "json"]))
            .expect("JSON");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");

    // The runs, newest first, and only one workflow's.
    let runs = daemon.cli(&["workflow", "runs"]);
    assert!(runs.starts_with("ID "), "{runs}");
    assert!(runs.contains(&failed_id), "{runs}");
    let pipeline_runs: serde_json::Value = serde_json::from_str(&daemon.cli(&[
        "workflow",
        "runs",
        "--workflow",
        "pipeline",
        "--limit",
        "5",
        "--output",
        "json",
    ]))
    .expect("JSON");
    let runs = pipeline_runs["workflow_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{pipeline_runs}");
    assert!(runs.iter().all(|run| run["workflow"] == "pipeline"), "{pipeline_runs}");
    assert_eq!(runs[0]["id"], answer["id"], "newest first: {pipeline_runs}");

    // rm removes the workflow; its runs stay.
    assert!(daemon.cli(&["workflow", "rm", "pipeline"]).contains("deleted pipeline"));
    let listed: serde_json::Value =
        serde_json::from_str(&daemon.cli(&["workflow", "ls", "--output", "json"])).expect("JSON");
    let names: Vec<&str> = listed["workflows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|workflow| workflow["name"].as_str())
        .collect();
    assert!(!names.contains(&"pipeline"), "{listed}");
    let gone = cli_output(&daemon, &["workflow", "get", "pipeline"]);
    assert!(!gone.status.success());
    assert!(String::from_utf8_lossy(&gone.stderr).contains("workflow_not_found"));
    let kept = daemon.cli(&["workflow", "status", answer["id"].as_str().unwrap()]);
    assert!(
        kept.lines().next().unwrap_or_default().ends_with(": succeeded"),
        "{kept}"
    );
}

#[tokio::test]
async fn job_backfill_and_fires_show_a_past_range_queued_and_the_coming_fires() {
    let daemon = TestDaemon::start();
    daemon.upload("noop", "noop").await;
    daemon.cli(&[
        "job",
        "create",
        "--name",
        "hourly",
        "--plugin",
        "noop",
        "--cron",
        "0 * * * *",
    ]);
    let top = chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::Duration::hours(1)).unwrap();
    let hour = |back: i64| (top - chrono::Duration::hours(back)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let printed = daemon.cli(&["job", "backfill", "hourly", "--from", &hour(3), "--to", &hour(1)]);
    assert!(
        printed.starts_with("2 fires in the range: 2 queued, 0 recorded before"),
        "{printed}"
    );
    assert!(printed.contains(&hour(3)) && printed.contains(&hour(2)), "{printed}");
    let again = daemon.cli(&["job", "backfill", "hourly", "--from", &hour(3), "--to", &hour(1)]);
    assert!(
        again.starts_with("2 fires in the range: 0 queued, 2 recorded before"),
        "{again}"
    );
    let coming = daemon.cli(&["job", "fires", "hourly", "--limit", "3"]);
    let lines: Vec<&str> = coming.lines().collect();
    assert_eq!(lines.len(), 5, "a header, three fires, the total: {coming}");
    assert!(lines[1].starts_with(&hour(-1)), "{coming}");
    assert!(
        lines[4].starts_with("168 fires from"),
        "a week of hourly fires: {coming}"
    );
}
