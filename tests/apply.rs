//! Black-box tests of `sandcron apply`: jobs kept in a TOML file are created,
//! updated and (with --prune) deleted by name; --dry-run changes nothing; a
//! bad job stops the apply before anything changes. `[[workflow]]` tables
//! are applied the same way, after the jobs their steps name.

mod common;

use common::{TestDaemon, repo_root, texts};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn apply_creates_updates_prunes_and_dry_runs() {
    // A fresh daemon: the file's [[plugin]] projects are built and pushed.
    let daemon = TestDaemon::start();
    daemon.upload("greeter", "hello").await;
    daemon.create_job(json!({"name": "legacy", "plugin": "greeter"})).await;
    let example = repo_root().join("examples").join("jobs.toml");
    let example = example.to_str().unwrap();

    let plan = daemon.cli(&["apply", "-f", example, "--dry-run"]);
    for name in ["hello", "counter", "fetch"] {
        assert!(plan.contains(&format!("+ push      plugin {name} (new)")), "{plan}");
    }
    for name in ["nightly-backup", "ranking", "weekday-report", "cache-warmup"] {
        assert!(plan.contains(&format!("+ create    {name}")), "{plan}");
    }
    assert!(plan.contains("dry run: nothing changed"), "{plan}");
    let jobs = daemon.call(Method::GET, "/v1/jobs", None).await.body;
    assert_eq!(texts(&jobs["jobs"], "name"), ["legacy"], "a dry run writes nothing");

    let applied = daemon.cli(&["apply", "-f", example]);
    assert!(
        applied.contains("applied: 4 created, 0 updated, 0 unchanged, 0 deleted, 3 plugins pushed"),
        "{applied}"
    );
    let backup = daemon.call(Method::GET, "/v1/jobs/nightly-backup", None).await.body;
    assert_eq!(backup["schedule"]["cron"], "0 3 * * *");
    assert_eq!(backup["schedule"]["timezone"], "Europe/Berlin");
    assert_eq!(backup["policy"]["retry"]["max_attempts"], 3);
    assert_eq!(backup["http_allow"], json!(["backup.example.com"]));
    assert!(backup["next_fire_at"].is_string(), "{backup}");

    // Applying again changes nothing.
    let again = daemon.cli(&["apply", "-f", example]);
    assert!(
        again.contains("0 created, 0 updated, 4 unchanged, 0 deleted, 0 plugins pushed"),
        "{again}"
    );

    // An edited file: one job changes, one goes away; --prune deletes the
    // jobs not in the file, also the one made by hand.
    let dir = tempfile::tempdir().unwrap();
    let edited = dir.path().join("jobs.toml");
    let text = std::fs::read_to_string(repo_root().join("examples").join("jobs.toml")).unwrap();
    let text = text.replace("*/15 * * * *", "*/10 * * * *");
    // Its plugin paths, relative to examples/, made whole.
    let plugins = repo_root().join("plugins");
    let text = text.replace("\"../plugins/", &format!("\"{}/", plugins.display()));
    let cut = text.find("# Cache warm-up").unwrap();
    std::fs::write(&edited, &text[..cut]).unwrap();
    let edited = edited.to_str().unwrap();
    let plan = daemon.cli(&["apply", "-f", edited, "--prune", "--dry-run"]);
    assert!(plan.contains("~ update    ranking (schedule)"), "{plan}");
    assert!(plan.contains("= unchanged nightly-backup"), "{plan}");
    assert!(
        plan.contains("- delete    legacy") && plan.contains("- delete    cache-warmup"),
        "{plan}"
    );
    let applied = daemon.cli(&["apply", "-f", edited, "--prune"]);
    assert!(
        applied.contains("0 created, 1 updated, 2 unchanged, 2 deleted"),
        "{applied}"
    );
    let jobs = daemon.call(Method::GET, "/v1/jobs", None).await.body;
    let mut names = texts(&jobs["jobs"], "name");
    names.sort_unstable();
    assert_eq!(names, ["nightly-backup", "ranking", "weekday-report"]);
    let ranking = daemon.call(Method::GET, "/v1/jobs/ranking", None).await.body;
    assert_eq!(ranking["schedule"]["cron"], "*/10 * * * *");

    // A bad job anywhere in the file: nothing is applied, the error names it.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[[job]]\nname = \"fresh\"\nplugin = \"hello\"\n\n[[job]]\nname = \"bad\"\nplugin = \"hello\"\nschedule = { cron = \"61 * * * *\" }\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args([
            "apply",
            "-f",
            broken.to_str().unwrap(),
            "--url",
            &daemon.url,
            "--data-dir",
        ])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"bad\"") && stderr.contains("schedule"), "{stderr}");
    let fresh = daemon.call(Method::GET, "/v1/jobs/fresh", None).await;
    assert_eq!(fresh.status, reqwest::StatusCode::NOT_FOUND, "nothing was applied");
}

#[tokio::test]
async fn the_cli_prints_json_follows_runs_and_logs_and_completes() {
    use tokio::io::AsyncBufReadExt;

    let daemon = TestDaemon::start();
    daemon.job_with("greet", "hello", json!({})).await;
    let listed: serde_json::Value = serde_json::from_str(&daemon.cli(&["job", "ls", "--output", "json"])).unwrap();
    assert_eq!(texts(&listed["jobs"], "name"), ["greet"]);
    assert!(daemon.cli(&["job", "ls"]).starts_with("ID "), "a table by default");
    let completion = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(["completion", "bash"])
        .output()
        .unwrap();
    let completion = String::from_utf8_lossy(&completion.stdout);
    assert!(
        completion.contains("_sandcron") && completion.contains("complete"),
        "{completion}"
    );

    // runs --follow prints runs as they happen.
    let mut follower = tokio::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args(["runs", "--follow", "--job", "greet", "--url", &daemon.url, "--data-dir"])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let header = lines.next_line().await.unwrap().unwrap();
    assert!(header.starts_with("ID "), "{header}");
    // The stream opens just after the list: run until a run is seen whole.
    let (sender, mut printed) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut followed = false;
    for _ in 0..10 {
        let run = daemon.run_job("greet", None).await;
        let run_id = run["id"].as_str().unwrap().to_string();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while let Ok(Some(line)) = tokio::time::timeout_at(deadline, printed.recv()).await {
            let done = line.contains("run.finished")
                && line.contains(&run_id)
                && seen
                    .iter()
                    .any(|earlier: &String| earlier.contains("run.started") && earlier.contains(&run_id));
            seen.push(line);
            if done {
                followed = true;
                break;
            }
        }
        if followed {
            break;
        }
    }
    assert!(followed, "a run's start and end were printed: {seen:?}");
    follower.kill().await.unwrap();

    // logs --follow prints a running run's log as it grows, then ends.
    daemon
        .job_with("chatty", "chatty", json!({"limits": {"timeout": "2s"}}))
        .await;
    let started = daemon.call(Method::POST, "/v1/jobs/chatty/run", None).await;
    let chatty = started.body["id"].as_str().unwrap().to_string();
    assert!(daemon.wait_for_status(&chatty, "running").await);
    // The run is marked running before its instance starts printing.
    let mut live = String::new();
    for _ in 0..200 {
        live = daemon.log(&chatty).await;
        if live.contains("chatty line 0") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(live.contains("chatty line 0"), "a running run shows its log so far");
    let status = daemon.call(Method::GET, &format!("/v1/runs/{chatty}"), None).await;
    assert_eq!(status.body["status"], "running", "the log above was read live");
    let followed = daemon.cli(&["logs", "--follow", &chatty]);
    assert!(followed.starts_with("chatty line 0") || followed.contains("chatty line 0"));
    assert!(followed.contains("[sandcron: log truncated"), "it followed to the end");
    let stored = daemon.call(Method::GET, &format!("/v1/runs/{chatty}/logs"), None).await;
    assert_eq!(
        stored.body.as_str().unwrap().len(),
        followed.len(),
        "the followed log is the whole log"
    );
}

#[tokio::test]
async fn plugins_listed_in_the_file_are_pushed_once_before_the_jobs_that_name_them() {
    let daemon = TestDaemon::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(common::plugin("hello"), dir.path().join("greeter.wasm")).unwrap();
    let file = dir.path().join("jobs.toml");
    std::fs::write(
        &file,
        r#"
[[plugin]]
name = "greeter"
path = "greeter.wasm"

[[job]]
name = "greet"
plugin = "greeter"
input = { name = "Ada" }
"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();

    // A fresh daemon: the dry run says what would happen and does nothing.
    let plan = daemon.cli(&["apply", "-f", file, "--dry-run"]);
    assert!(plan.contains("+ push      plugin greeter (new)"), "{plan}");
    assert!(plan.contains("+ create    greet"), "{plan}");
    let plugins = daemon.call(Method::GET, "/v1/plugins", None).await.body;
    assert_eq!(
        texts(&plugins["plugins"], "name"),
        vec!["std.http"],
        "only the built-in: {plugins}"
    );

    let applied = daemon.cli(&["apply", "-f", file]);
    assert!(
        applied.contains("applied: 1 created, 0 updated, 0 unchanged, 0 deleted, 1 plugins pushed"),
        "{applied}"
    );
    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");

    // Again: nothing to push, nothing to change.
    let again = daemon.cli(&["apply", "-f", file]);
    assert!(again.contains("= unchanged plugin greeter"), "{again}");
    assert!(
        again.contains("applied: 0 created, 0 updated, 1 unchanged, 0 deleted, 0 plugins pushed"),
        "{again}"
    );
    let greeter = daemon.call(Method::GET, "/v1/plugins/greeter", None).await.body;
    assert_eq!(greeter["versions"].as_array().unwrap().len(), 1, "{greeter}");

    // Other bytes: a new version, before the jobs.
    std::fs::copy(common::plugin("noop"), dir.path().join("greeter.wasm")).unwrap();
    let changed = daemon.cli(&["apply", "-f", file]);
    assert!(
        changed.contains("~ push      plugin greeter (new version)"),
        "{changed}"
    );
    let greeter = daemon.call(Method::GET, "/v1/plugins/greeter", None).await.body;
    assert_eq!(greeter["versions"].as_array().unwrap().len(), 2, "{greeter}");
}

#[tokio::test]
async fn workflows_in_the_file_are_created_kept_changed_and_pruned_after_their_jobs() {
    let daemon = TestDaemon::start();
    daemon.upload("step", "step").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("jobs.toml");
    let jobs = r#"
[[job]]
name = "emit"
plugin = "step"
input = { output = { rows = 3 } }

[[job]]
name = "echo"
plugin = "step"
"#;
    let pipeline = r#"
[[workflow]]
name = "pipeline"
on_failure = "continue"

[[workflow.steps]]
id = "extract"
job = "emit"

[[workflow.steps]]
id = "load"
job = "echo"
needs = ["extract"]
input = { from = "extract" }
"#;
    let nightly = r#"
[[workflow]]
name = "nightly"
schedule = { cron = "0 3 * * *", timezone = "UTC" }
steps = [{ id = "only", job = "emit" }]
"#;
    std::fs::write(&file, format!("{jobs}{pipeline}{nightly}")).unwrap();
    let path = file.to_str().unwrap();
    let workflow_names = |listed: &serde_json::Value| -> Vec<String> {
        texts(&listed["workflows"], "name")
            .into_iter()
            .map(str::to_string)
            .collect()
    };

    // A dry run on a fresh daemon: the workflows' jobs come from the file.
    let plan = daemon.cli(&["apply", "-f", path, "--dry-run"]);
    assert!(plan.contains("+ create    emit"), "{plan}");
    assert!(plan.contains("+ create    workflow pipeline"), "{plan}");
    assert!(plan.contains("+ create    workflow nightly"), "{plan}");
    assert!(plan.contains("dry run: nothing changed"), "{plan}");
    let listed = daemon.call(Method::GET, "/v1/workflows", None).await.body;
    assert!(workflow_names(&listed).is_empty(), "a dry run writes nothing: {listed}");

    let applied = daemon.cli(&["apply", "-f", path]);
    assert!(
        applied.contains("applied: 2 created, 0 updated, 0 unchanged, 0 deleted"),
        "{applied}"
    );
    assert!(
        applied.contains("applied workflows: 2 created, 0 updated, 0 unchanged, 0 deleted"),
        "{applied}"
    );
    let stored = daemon.call(Method::GET, "/v1/workflows/pipeline", None).await.body;
    assert_eq!(stored["on_failure"], "continue", "{stored}");
    assert_eq!(stored["steps"][1]["input"], json!({"from": "extract"}), "{stored}");
    let nightly_stored = daemon.call(Method::GET, "/v1/workflows/nightly", None).await.body;
    assert_eq!(nightly_stored["schedule"]["cron"], "0 3 * * *", "{nightly_stored}");
    let run = daemon
        .call(Method::POST, "/v1/workflows/pipeline/run?wait=60s", None)
        .await
        .body;
    assert_eq!(run["status"], "succeeded", "the applied workflow runs: {run}");

    // Again: nothing changes.
    let again = daemon.cli(&["apply", "-f", path]);
    assert!(again.contains("= unchanged workflow pipeline"), "{again}");
    assert!(
        again.contains("applied workflows: 0 created, 0 updated, 2 unchanged, 0 deleted"),
        "{again}"
    );
    let unchanged = daemon.call(Method::GET, "/v1/workflows/pipeline", None).await.body;
    assert_eq!(unchanged["updated_at"], stored["updated_at"], "not written again");

    // Edited: pipeline changes, nightly leaves the file. Without --prune
    // nightly stays; a dry run shows the change and writes nothing.
    let edited = pipeline.replace("\"continue\"", "\"stop\"").replace(
        "input = { from = \"extract\" }",
        "input = { from = \"extract\" }\nretry = { max_attempts = 2 }",
    );
    std::fs::write(&file, format!("{jobs}{edited}")).unwrap();
    let plan = daemon.cli(&["apply", "-f", path, "--prune", "--dry-run"]);
    assert!(
        plan.contains("~ update    workflow pipeline (on_failure, steps)"),
        "{plan}"
    );
    assert!(plan.contains("- delete    workflow nightly"), "{plan}");
    let still = daemon.call(Method::GET, "/v1/workflows/pipeline", None).await.body;
    assert_eq!(still["on_failure"], "continue", "a dry run writes nothing");
    let applied = daemon.cli(&["apply", "-f", path]);
    assert!(
        applied.contains("applied workflows: 0 created, 1 updated, 0 unchanged, 0 deleted"),
        "{applied}"
    );
    assert!(!applied.contains("- delete"), "{applied}");
    let changed = daemon.call(Method::GET, "/v1/workflows/pipeline", None).await.body;
    assert_eq!(changed["on_failure"], "stop", "{changed}");
    assert_eq!(changed["steps"][1]["retry"]["max_attempts"], 2, "{changed}");
    let listed = daemon.call(Method::GET, "/v1/workflows", None).await.body;
    assert_eq!(workflow_names(&listed), ["nightly", "pipeline"], "kept without --prune");

    // --prune deletes the workflow the file no longer names.
    let pruned = daemon.cli(&["apply", "-f", path, "--prune"]);
    assert!(
        pruned.contains("applied workflows: 0 created, 0 updated, 1 unchanged, 1 deleted"),
        "{pruned}"
    );
    let listed = daemon.call(Method::GET, "/v1/workflows", None).await.body;
    assert_eq!(workflow_names(&listed), ["pipeline"], "{listed}");

    // A workflow whose step names no job: nothing is applied, the error says which.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!("{jobs}\n[[job]]\nname = \"fresh\"\nplugin = \"step\"\n\n[[workflow]]\nname = \"lost\"\nsteps = [{{ id = \"a\", job = \"missing\" }}]\n"),
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
        .args([
            "apply",
            "-f",
            broken.to_str().unwrap(),
            "--url",
            &daemon.url,
            "--data-dir",
        ])
        .arg(daemon.data_dir())
        .env_remove("SANDCRON_TOKEN")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"lost\"") && stderr.contains("steps[0].job") && stderr.contains("\"missing\""),
        "{stderr}"
    );
    let fresh = daemon.call(Method::GET, "/v1/jobs/fresh", None).await;
    assert_eq!(fresh.status, reqwest::StatusCode::NOT_FOUND, "nothing was applied");
}
