//! The web dashboard end to end in headless Chromium (Debian's, driven by
//! playwright-core): sign in, jobs table, a job made with the form while the
//! cron preview follows the typing, a run followed live to its output and
//! log, pause/resume/edit/delete, a plugin upload, the 7-day calendar; a
//! workflow's graph whose step boxes follow a run started from the page,
//! cancel, retry and the run history; and screenshots that must show a
//! rendered page, not a blank one.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use common::{TestDaemon, plugin, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Whether tests/browser/setup.sh ran; held while a browser runs, so the
/// two browsers of this file never share the two cores.
static BROWSER: Mutex<bool> = Mutex::new(false);

/// Runs `node tests/browser/<script> <args>` (setup first, once) and
/// asserts it passed every step, showing what it printed if not.
fn drive_browser(script: &str, args: &[&std::ffi::OsStr]) {
    let browser = repo_root().join("tests").join("browser");
    let output = {
        let mut set_up = BROWSER.lock().unwrap_or_else(PoisonError::into_inner);
        if !*set_up {
            let setup = Command::new("bash")
                .arg(browser.join("setup.sh"))
                .status()
                .expect("running the browser test setup");
            assert!(setup.success(), "tests/browser/setup.sh failed");
            *set_up = true;
        }
        Command::new("node")
            .arg(browser.join(script))
            .args(args)
            .current_dir(&browser)
            .output()
            .expect("running node")
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test {script} failed:\n{printed}");
    assert!(printed.contains("step: all passed"), "{printed}");
}

/// The screenshot shows a page: its size, and many colours, not one.
fn assert_rendered(shot_path: &Path) {
    let file = std::fs::File::open(shot_path).expect("a screenshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(file));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    assert!(
        info.width >= 1300 && info.height >= 600,
        "{}x{}",
        info.width,
        info.height
    );
    let step = info.color_type.samples();
    let colours: std::collections::HashSet<&[u8]> = pixels[..info.buffer_size()].chunks(step).collect();
    assert!(
        colours.len() > 50,
        "a rendered page has many colours, not {}",
        colours.len()
    );
}

#[tokio::test]
async fn the_dashboard_works_end_to_end_in_a_browser() {
    let daemon = TestDaemon::start();
    let page = reqwest::get(format!("{}/", daemon.url)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "the page needs no token");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        policy.contains("connect-src 'self'") && policy.contains("default-src 'none'"),
        "{policy}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside resources"
    );

    daemon
        .job_with(
            "greet",
            "hello",
            json!({"schedule": {"cron": "0 8 * * MON-FRI", "timezone": "Europe/Berlin"}, "input": {"name": "team"}}),
        )
        .await;
    // One of every kind for the calendar (the browser compares it with the API).
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .to_string();
    let in_two_days = (chrono::Utc::now() + chrono::Duration::days(2))
        .format("%Y-%m-%dT10:17:00Z")
        .to_string();
    for (name, schedule) in [
        ("half-hourly", json!({"every": "30m"})),
        ("tick", json!({"every": "10s", "jitter": "2s"})),
        ("once", json!({"at": in_two_days})),
        ("breather", json!({"after": "3h"})),
        (
            "kolkata",
            json!({"cron": "0 9 * * *", "timezone": "Asia/Kolkata", "exclude": [tomorrow], "max_fires": 4}),
        ),
    ] {
        daemon
            .create_job(json!({"name": name, "plugin": "hello", "schedule": schedule}))
            .await;
    }
    let shot = tempfile::tempdir().unwrap();
    let shot_path = shot.path().join("dashboard.png");
    let counter = plugin("counter");
    drive_browser(
        "dashboard.mjs",
        &[
            daemon.url.as_ref(),
            daemon.token.as_ref(),
            counter.as_os_str(),
            shot_path.as_os_str(),
        ],
    );

    // What the browser did is real: the upload and the deletion happened.
    let uploaded = daemon.call(Method::GET, "/v1/plugins/uploaded", None).await;
    assert_eq!(uploaded.status, StatusCode::OK);
    let deleted = daemon.call(Method::GET, "/v1/jobs/ui-job", None).await;
    assert_eq!(deleted.status, StatusCode::NOT_FOUND);
    let runs = daemon.call(Method::GET, "/v1/runs?status=succeeded", None).await;
    assert!(
        runs.body["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|run| run["job_name"] == "ui-job" && run["record"]["replayable"] == true),
        "the form's record box made a job whose runs record: {}",
        runs.body
    );
    assert_rendered(&shot_path);
}

#[tokio::test]
async fn a_workflow_run_started_in_the_dashboard_shows_its_steps_live_on_the_graph() {
    let daemon = TestDaemon::start();
    daemon.upload("step", "step").await;
    for (name, input) in [
        ("emit", json!({"output": {"rows": 3}})),
        ("echo", Value::Null),
        ("slow", json!({"sleep_ms": 3000, "output": "slow done"})),
    ] {
        daemon
            .create_job(json!({"name": name, "plugin": "step", "input": input}))
            .await;
    }
    for workflow in [
        json!({"name": "diamond", "max_parallel": 2, "steps": [
            {"id": "extract", "job": "emit"},
            {"id": "left", "job": "echo", "needs": ["extract"], "input": {"from": "extract"}},
            {"id": "right", "job": "slow", "needs": ["extract"]},
            {"id": "load", "job": "echo", "needs": ["left", "right"], "input": {"merge": ["left", "right"]}},
        ]}),
        json!({"name": "guarded", "on_failure": "continue",
            "schedule": {"cron": "0 6 29 2 *", "timezone": "UTC"}, "steps": [
            {"id": "fetch", "job": "emit"},
            {"id": "store", "job": "echo", "needs": ["fetch"]},
            {"id": "alert", "job": "echo", "needs": ["store"], "when": "failure"},
            {"id": "cleanup", "job": "echo", "needs": ["store"], "when": "always"},
        ]}),
    ] {
        let created = daemon.call(Method::POST, "/v1/workflows", Some(workflow)).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let shot = tempfile::tempdir().unwrap();
    let shot_path = shot.path().join("workflows.png");
    drive_browser(
        "workflows.mjs",
        &[daemon.url.as_ref(), daemon.token.as_ref(), shot_path.as_os_str()],
    );

    // What the browser did is real: two runs of diamond, newest first, the
    // second cancelled and retried to success.
    let listed = daemon
        .call(Method::GET, "/v1/workflow-runs?workflow=diamond", None)
        .await;
    let runs = listed.body["workflow_runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{}", listed.body);
    for run in runs {
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["trigger"], "manual", "{run}");
    }
    assert_eq!(
        runs[0]["steps"]["right"]["round"], 1,
        "the retry ran it again: {}",
        runs[0]
    );
    let guarded = daemon
        .call(Method::GET, "/v1/workflow-runs?workflow=guarded", None)
        .await;
    assert_eq!(
        guarded.body["workflow_runs"][0]["status"], "succeeded",
        "{}",
        guarded.body
    );
    assert_rendered(&shot_path);
}
