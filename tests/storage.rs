//! A full data volume: the daemon says so (`/healthz` 503 with the reason,
//! `sandcron_storage_healthy` 0, one log line), refuses writes with 507
//! `insufficient_storage` instead of 500 with the OS error's text, keeps
//! answering reads, and once the volume has room again exits with code 75
//! for its supervisor, played here, to start it into working storage with
//! every acknowledged write in place.
//!
//! The volume is a 24 MiB tmpfs mounted on the daemon's data directory, so
//! the test needs root (as CI has); without it the test says why and skips.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::json;

/// A tmpfs mounted for the test, unmounted when dropped (a panic included).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` on `path`; Err says why not.
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|error| format!("running mount: {error}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Grows (or shrinks) the mounted tmpfs to `size`.
    fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.path)
            .status()
            .expect("running mount");
        assert!(status.success(), "remounting the tmpfs with size={size} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Writes zeros to `path` until the volume refuses more, then gives back
/// `leave` bytes; returns the filler's size.
fn fill_volume(path: &Path, leave: u64) -> u64 {
    let mut file = std::fs::File::create(path).expect("creating the filler");
    let chunk = vec![0u8; 1 << 20];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(count) => written += count as u64,
            Err(error) if error.raw_os_error() == Some(28) => break,
            Err(error) => panic!("filling the volume: {error}"),
        }
    }
    let size = written.saturating_sub(leave);
    file.set_len(size).expect("shrinking the filler");
    size
}

/// Lines of `logs` containing `text`.
fn count(logs: &[String], text: &str) -> usize {
    logs.iter().filter(|line| line.contains(text)).count()
}

#[tokio::test]
async fn a_full_disk_is_reported_refused_with_507_and_recovered_by_a_supervisor_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let volume = match Tmpfs::mount(dir.path(), "24m") {
        Ok(volume) => volume,
        Err(why) => {
            eprintln!("SKIPPED: mounting a tmpfs needs root (as CI has): {why}");
            return;
        }
    };
    let filler = volume.path.join("filler");
    let mut daemon = TestDaemon::start_in(dir, &["--storage-min-free", "32MiB"], &[]);

    // Acknowledged before the volume fills: a plugin, jobs, finished runs.
    daemon
        .job_with("greet", "hello", json!({"input": {"name": "Ada"}}))
        .await;
    daemon
        .create_job(json!({"name": "tick", "plugin": "hello", "schedule": {"every": "1s"}}))
        .await;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = daemon.run_job("greet", None).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        runs.push(run["id"].as_str().expect("a run id").to_string());
    }
    let mut jobs = vec!["greet".to_string(), "tick".to_string()];
    let health = daemon.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);

    // Leave about a MiB and write until the volume is full.
    fill_volume(&filler, 1 << 20);
    let padding = "x".repeat(100_000);
    let refused = 'fill: {
        for index in 0..200 {
            let name = format!("fill-{index}");
            let body = json!({"name": name, "plugin": "hello", "input": {"pad": padding}});
            let answer = daemon.call(Method::POST, "/v1/jobs", Some(body)).await;
            if answer.status != StatusCode::CREATED {
                break 'fill answer;
            }
            jobs.push(name);
        }
        panic!("200 jobs of 100 kB each fit in the volume's last MiB");
    };
    assert_eq!(refused.status, StatusCode::INSUFFICIENT_STORAGE, "{}", refused.body);
    assert_eq!(refused.code(), "insufficient_storage", "{}", refused.body);
    assert!(refused.message().contains("no space left"), "{}", refused.body);
    assert!(
        !refused.message().contains("os error") && !refused.message().contains("Os {"),
        "the OS error's dump stays out of answers: {}",
        refused.body
    );

    // /healthz says so, with the reason.
    let health = daemon.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE, "{}", health.body);
    assert_eq!(health.body["status"], "failing", "{}", health.body);
    assert_eq!(health.code(), "insufficient_storage", "{}", health.body);
    assert_eq!(health.body["storage"]["state"], "failing", "{}", health.body);
    assert_eq!(health.body["storage"]["fault"], "no_space", "{}", health.body);
    assert!(
        health.body["storage"]["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("no space left")),
        "{}",
        health.body
    );
    assert!(health.body["storage"]["since"].is_string(), "{}", health.body);

    // Writes are refused at once with the same code; reads go on.
    let queued = daemon.call(Method::POST, "/v1/jobs/greet/run", None).await;
    assert_eq!(queued.status, StatusCode::INSUFFICIENT_STORAGE, "{}", queued.body);
    let secret = daemon
        .call(Method::PUT, "/v1/secrets/key", Some(json!({"value": "v"})))
        .await;
    assert_eq!(secret.code(), "insufficient_storage", "{}", secret.body);
    assert_eq!(
        daemon.call(Method::GET, "/v1/jobs/greet", None).await.status,
        StatusCode::OK
    );
    let run = daemon.call(Method::GET, &format!("/v1/runs/{}", runs[0]), None).await;
    assert_eq!(run.body["status"], "succeeded", "{}", run.body);
    let status = daemon.call(Method::GET, "/v1/status", None).await;
    assert_eq!(status.body["storage"], "failing", "{}", status.body);

    // The metrics show it.
    assert_eq!(daemon.metric("sandcron_storage_healthy").await, 0.0);
    assert!(daemon.metric(r#"sandcron_storage_errors_total{kind="no_space"}"#).await >= 2.0);

    // While the volume stays full (less than --storage-min-free available)
    // the daemon stays up, and the scheduler retrying every second (the
    // `tick` job) does not log every second.
    assert!(
        daemon.wait_for_exit(Duration::from_secs(5)).is_none(),
        "no restart while the volume is full: {:#?}",
        daemon.logs()
    );
    let logs = daemon.logs();
    assert_eq!(count(&logs, "storage is failing: writes are refused"), 1, "{logs:#?}");
    assert!(count(&logs, "scheduler pass") <= 1, "{logs:#?}");
    assert!(count(&logs, "fires skipped") <= 1, "{logs:#?}");
    assert_eq!(
        count(&logs, "request failed"),
        0,
        "refusals are not logged each: {logs:#?}"
    );
    assert_eq!(count(&logs, "storage recovered"), 0, "{logs:#?}");

    // Room again: the daemon notices by itself and exits for a restart.
    volume.resize("200m");
    let exit = daemon
        .wait_for_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the daemon did not notice the room: {:#?}", daemon.logs()));
    let logs = daemon.logs();
    assert_eq!(exit.code(), Some(75), "{logs:#?}");
    assert_eq!(count(&logs, "storage recovered"), 1, "{logs:#?}");
    assert_eq!(count(&logs, "storage is failing: writes are refused"), 1, "{logs:#?}");

    // The supervisor starts it again: healthy, every acknowledged write there.
    daemon.start_again();
    let health = daemon.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.body);
    assert_eq!(health.body["storage"]["state"], "ok", "{}", health.body);
    assert_eq!(daemon.metric("sandcron_storage_healthy").await, 1.0);
    for job in &jobs {
        let answer = daemon.call(Method::GET, &format!("/v1/jobs/{job}"), None).await;
        assert_eq!(answer.status, StatusCode::OK, "acknowledged job {job}: {}", answer.body);
    }
    for run in &runs {
        let answer = daemon.call(Method::GET, &format!("/v1/runs/{run}"), None).await;
        assert_eq!(
            answer.body["status"], "succeeded",
            "acknowledged run {run}: {}",
            answer.body
        );
    }
    // And it takes writes again.
    std::fs::remove_file(&filler).expect("removing the filler");
    daemon
        .create_job(json!({"name": "after", "plugin": "hello", "input": {"name": "Grace"}}))
        .await;
    let run = daemon.run_job("after", None).await;
    assert_eq!(run["output"], "Hello, Grace!", "{run}");
}
