//! Black-box tests of secrets: set over the API or the CLI, read by a
//! plugin only when its job lists the name, and never shown again: not in
//! any answer, not in the run's log or output (masked even when the plugin
//! prints it), not in the database files.

mod common;

use common::{TestDaemon, texts};
use reqwest::{Method, StatusCode};
use serde_json::json;

const VALUE: &str = "pw-Zq8vR2-hunter2-correct-horse";

fn reversed(text: &str) -> String {
    text.chars().rev().collect()
}

/// Every file under `dir` that contains `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|window| window == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test]
async fn a_granted_secret_is_readable_and_its_value_never_comes_back_out() {
    let mut daemon = TestDaemon::start();
    let set = daemon
        .call(Method::PUT, "/v1/secrets/db-password", Some(json!({"value": VALUE})))
        .await;
    assert_eq!(set.status, StatusCode::CREATED, "{}", set.body);
    let replaced = daemon
        .call(Method::PUT, "/v1/secrets/db-password", Some(json!({"value": VALUE})))
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    for (body, code) in [
        (json!({"value": ""}), "invalid_field"),
        (json!({"value": 7}), "invalid_field"),
        (json!({"secret": "x"}), "invalid_field"),
    ] {
        let answer = daemon.call(Method::PUT, "/v1/secrets/other", Some(body.clone())).await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, code),
            "{body}"
        );
    }
    let bad_name = daemon
        .call(Method::PUT, "/v1/secrets/..%2Fetc", Some(json!({"value": "x"})))
        .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST, "{}", bad_name.body);

    daemon
        .job_with(
            "granted",
            "secret_reader",
            json!({"secrets": ["db-password"], "input": ["db-password", "api-key"]}),
        )
        .await;
    daemon
        .create_job(json!({"name": "ungranted", "plugin": "secret_reader", "input": ["db-password"]}))
        .await;
    let run = daemon.run_job("granted", None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let report: serde_json::Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    assert_eq!(report["db-password"]["readable"], true, "{report}");
    assert_eq!(
        report["db-password"]["reversed"],
        reversed(VALUE),
        "the plugin saw the value"
    );
    assert_eq!(
        report["api-key"]["readable"], false,
        "a secret that does not exist reads as none"
    );
    let log = daemon.log(run["id"].as_str().unwrap()).await;
    assert!(log.contains("stdout says db-password = [secret:db-password]"), "{log}");
    assert!(log.contains("log says db-password = [secret:db-password]"), "{log}");
    let denied = daemon.run_job("ungranted", None).await;
    let report: serde_json::Value = serde_json::from_str(denied["output"].as_str().unwrap()).unwrap();
    assert_eq!(report["db-password"]["readable"], false, "not granted reads as none");

    // No answer holds the value: secrets, jobs, runs, logs, status.
    let run_id = run["id"].as_str().unwrap();
    let mut answers = Vec::new();
    for path in [
        "/v1/secrets".to_string(),
        "/v1/secrets/db-password".to_string(),
        "/v1/jobs".to_string(),
        "/v1/jobs/granted".to_string(),
        "/v1/runs".to_string(),
        format!("/v1/runs/{run_id}"),
        format!("/v1/runs/{run_id}/logs"),
        "/v1/status".to_string(),
    ] {
        let answer = daemon.call(Method::GET, &path, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
        answers.push(answer.body.to_string());
    }
    for text in answers {
        assert!(!text.contains(VALUE), "the value leaked: {text}");
    }
    let listed = daemon.call(Method::GET, "/v1/secrets", None).await;
    assert_eq!(texts(&listed.body["secrets"], "name"), ["db-password"]);
    let entry = &listed.body["secrets"][0];
    assert!(
        entry["created_at"].is_string() && entry["updated_at"].is_string(),
        "{entry}"
    );
    assert_eq!(entry.as_object().unwrap().len(), 3, "names and dates only: {entry}");

    // At rest: neither the value nor its reversal (the run's output) is in
    // any file of the data directory; the key file is the owner's alone.
    daemon.terminate();
    assert_eq!(
        files_containing(daemon.data_dir(), VALUE.as_bytes()),
        Vec::<String>::new()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = daemon.data_dir().join("secrets.key");
        let mode = std::fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // After a restart the same key opens the secret again.
    daemon.start_again();
    let again = daemon.run_job("granted", None).await;
    let report: serde_json::Value = serde_json::from_str(again["output"].as_str().unwrap()).unwrap();
    assert_eq!(report["db-password"]["reversed"], reversed(VALUE));

    let deleted = daemon.call(Method::DELETE, "/v1/secrets/db-password", None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = daemon.call(Method::DELETE, "/v1/secrets/db-password", None).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::NOT_FOUND, "secret_not_found"));
    let after = daemon.run_job("granted", None).await;
    let report: serde_json::Value = serde_json::from_str(after["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        report["db-password"]["readable"], false,
        "a deleted secret reads as none"
    );
}

#[tokio::test]
async fn secrets_belong_to_their_tenant() {
    let daemon = TestDaemon::start();
    let tokens = [
        daemon.new_tenant("acme", json!({})).await,
        daemon.new_tenant("beta", json!({})).await,
    ];
    let (acme, beta) = (&tokens[0], &tokens[1]);
    let set = daemon
        .call_as(
            Some(acme),
            Method::PUT,
            "/v1/secrets/shared-name",
            Some(json!({"value": VALUE})),
        )
        .await;
    assert_eq!(set.status, StatusCode::CREATED);
    for (method, path) in [
        (Method::GET, "/v1/secrets/shared-name"),
        (Method::DELETE, "/v1/secrets/shared-name"),
    ] {
        let answer = daemon.call_as(Some(beta), method.clone(), path, None).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    let listed = daemon.call_as(Some(beta), Method::GET, "/v1/secrets", None).await;
    assert_eq!(listed.body["secrets"], json!([]));
    // beta's own secret of the same name does not touch acme's.
    let own = daemon
        .call_as(
            Some(beta),
            Method::PUT,
            "/v1/secrets/shared-name",
            Some(json!({"value": "beta-value"})),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED);
    // A beta job granted the name reads beta's value, never acme's.
    let upload = daemon
        .upload_bytes_as(beta, "secret_reader", common::plugin_bytes("secret_reader"))
        .await;
    assert_eq!(upload.status, StatusCode::CREATED);
    let job = json!({"name": "read", "plugin": "secret_reader", "secrets": ["shared-name"], "input": ["shared-name"]});
    let created = daemon.call_as(Some(beta), Method::POST, "/v1/jobs", Some(job)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let run = daemon
        .call_as(Some(beta), Method::POST, "/v1/jobs/read/run?wait=60s", None)
        .await;
    let report: serde_json::Value = serde_json::from_str(run.body["output"].as_str().unwrap()).unwrap();
    assert_eq!(report["shared-name"]["reversed"], reversed("beta-value"), "{report}");
    // acme's is still there.
    let mine = daemon
        .call_as(Some(acme), Method::GET, "/v1/secrets/shared-name", None)
        .await;
    assert_eq!(mine.status, StatusCode::OK);
}

#[tokio::test]
async fn the_cli_sets_lists_and_removes_secrets_reading_the_value_from_stdin() {
    let daemon = TestDaemon::start();
    let cli = |args: &[&str], stdin: &str| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sandcron"))
            .args(args)
            .args(["--url", &daemon.url, "--data-dir"])
            .arg(daemon.data_dir())
            .env_remove("SANDCRON_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("running the CLI");
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    cli(&["secret", "set", "token"], &format!("{VALUE}\n"));
    let listed = cli(&["secret", "ls"], "");
    assert!(listed.contains("token") && !listed.contains(VALUE), "{listed}");
    daemon
        .job_with(
            "read",
            "secret_reader",
            json!({"secrets": ["token"], "input": ["token"]}),
        )
        .await;
    let run = daemon.run_job("read", None).await;
    let report: serde_json::Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    assert_eq!(
        report["token"]["reversed"],
        reversed(VALUE),
        "stdin's trailing newline is not part of the value"
    );
    cli(&["secret", "rm", "token"], "");
    assert!(!cli(&["secret", "ls"], "").contains("token"));
}

/// The longest run of one byte in `text`.
fn longest_run_of(text: &str, byte: u8) -> usize {
    let (mut longest, mut current) = (0, 0);
    for found in text.bytes() {
        current = if found == byte { current + 1 } else { 0 };
        longest = longest.max(current);
    }
    longest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masking_a_64_kib_secret_in_4_mib_of_output_is_quick_and_health_answers_meanwhile() {
    let daemon = TestDaemon::start();
    let value = "a".repeat(64 << 10);
    let set = daemon
        .call(Method::PUT, "/v1/secrets/big", Some(json!({"value": value})))
        .await;
    assert_eq!(set.status, StatusCode::CREATED, "{}", set.body);
    daemon
        .job_with(
            "flood",
            "secret_flood",
            json!({"secrets": ["big"], "input": {"name": "big", "bytes": 4 << 20},
                   "limits": {"output": "8MiB", "timeout": "30s"}}),
        )
        .await;
    // More runs at once than a two-core machine has async workers: masking
    // on those workers, byte by byte, held them for seconds each.
    let started = std::time::Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..3 {
        let (url, token) = (daemon.url.clone(), daemon.token.clone());
        runs.spawn(async move {
            let response = reqwest::Client::new()
                .post(format!("{url}/v1/jobs/flood/run?wait=60s"))
                .bearer_auth(token)
                .send()
                .await
                .expect("the daemon answers");
            assert_eq!(response.status(), StatusCode::OK);
            response.json::<serde_json::Value>().await.expect("a run")
        });
    }
    let health = reqwest::Client::new();
    let mut slowest = std::time::Duration::ZERO;
    while !runs.is_empty() {
        let asked = std::time::Instant::now();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            health.get(format!("{}/healthz", daemon.url)).send(),
        )
        .await
        .expect("/healthz answers within 30 s")
        .expect("/healthz answers");
        assert_eq!(answer.status(), StatusCode::OK);
        slowest = slowest.max(asked.elapsed());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        while let Some(finished) = runs.try_join_next() {
            let run = finished.expect("the run task");
            assert_eq!(run["status"], "succeeded", "{}", run["error"]);
            let output = run["output"].as_str().expect("text output");
            assert!(output.contains("[secret:big]"), "the value was masked");
            assert!(
                longest_run_of(output, b'a') < value.len(),
                "no whole value is left in the output"
            );
            let log = daemon.log(run["id"].as_str().expect("an id")).await;
            assert!(log.contains("[secret:big]"));
            assert!(longest_run_of(&log, b'a') < value.len(), "nor in the log");
        }
    }
    // Linear masking takes well under a second a run; byte-by-byte masking
    // took tens of seconds and held the async workers meanwhile.
    assert!(
        slowest < std::time::Duration::from_secs(2),
        "/healthz took {slowest:?} while runs were masked"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "three runs took {:?}",
        started.elapsed()
    );
}
