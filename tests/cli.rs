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
        assert!(output.status.success(), "sandcron {args:?}: {:?} {stderr}", output.status);
    }
}
