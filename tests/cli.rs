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
