//! The web dashboard end to end in headless Chromium (Debian's, driven by
//! playwright-core): sign in, jobs table, a job made with the form while the
//! cron preview follows the typing, a run followed live to its output and
//! log, pause/resume/edit/delete, a plugin upload, the 7-day calendar; and a
//! screenshot that must show a rendered page, not a blank one.

mod common;

use std::process::Command;

use common::{TestDaemon, plugin, repo_root};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_dashboard_works_end_to_end_in_a_browser() {
    let browser = repo_root().join("tests").join("browser");
    let setup = Command::new("bash")
        .arg(browser.join("setup.sh"))
        .status()
        .expect("running the browser test setup");
    assert!(setup.success(), "tests/browser/setup.sh failed");

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
    let shot = tempfile::tempdir().unwrap();
    let shot_path = shot.path().join("dashboard.png");
    let output = Command::new("node")
        .arg(browser.join("dashboard.mjs"))
        .arg(&daemon.url)
        .arg(&daemon.token)
        .arg(plugin("counter"))
        .arg(&shot_path)
        .current_dir(&browser)
        .output()
        .expect("running node");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the browser test failed:\n{printed}");
    assert!(printed.contains("step: all passed"), "{printed}");

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
            .any(|run| run["job_name"] == "ui-job")
    );

    // The screenshot shows a page: its size, and many colours, not one.
    let file = std::fs::File::open(&shot_path).expect("a screenshot");
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
