//! The black-box test harness: builds the test plugins once, starts the real
//! `sandcron` binary on a free port with a temporary data directory, and
//! talks to it over HTTP. `kill` is SIGKILL (no graceful shutdown), so a
//! restart proves what was flushed, not what a clean exit saved. In a test
//! binary named `postgres_*` (or with `SANDCRON_TEST_BACKEND=postgres`) every
//! daemon keeps its state in a database of a throwaway PostgreSQL server
//! (`postgres`) instead of sled.

#![allow(dead_code)]

pub mod cluster;
pub mod postgres;
pub mod smtp;
pub mod sse;
pub mod webhooks;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds every plugin (once per test binary; cargo makes repeats no-ops)
/// and returns the path of `<name>.wasm`.
pub fn plugin(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let plugins = repo_root().join("plugins");
        let status = Command::new("rustup")
            .args(["target", "add", "wasm32-wasip2"])
            .stdout(Stdio::null())
            .status()
            .expect("running rustup");
        assert!(status.success(), "rustup target add wasm32-wasip2 failed");
        let target_dir = plugins.join("target");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
            .args(["build", "--release", "--quiet"])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(&plugins)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET_DIR")
            // A build dir shared with other workspaces would hand over
            // their crates of the same names (a `hello` of another project).
            .env_remove("CARGO_BUILD_BUILD_DIR")
            .status()
            .expect("running cargo build for the plugins");
        assert!(status.success(), "building the test plugins failed");
        target_dir.join("wasm32-wasip2").join("release")
    });
    let path = dir.join(format!("{name}.wasm"));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Runs the CLI without a daemon (`new`, `build`) with extra environment.
/// Rust projects build in a target folder of their own that outlives the
/// test (their crates compile once), not in a build dir shared with other
/// workspaces, which may hold crates of the same names; flags meant for the
/// host's own build do not suit wasm32-wasip2.
pub fn offline_cli(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandcron"));
    command
        .args(args)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_BUILD_DIR")
        .env(
            "CARGO_TARGET_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("authoring-rust"),
        )
        .stdin(Stdio::null());
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("running the CLI")
}

/// Bytes a process printed, as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `sandcron new NAME --lang LANG --dir DIR`, the files of `example` (a
/// folder under `examples/`) copied over the template's (each with
/// `replacements` made), then `sandcron build DIR`: the component's path,
/// the last line `build` printed.
pub fn build_example(lang: &str, name: &str, dir: &Path, example: &str, replacements: &[(&str, &str)]) -> PathBuf {
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let created = offline_cli(&["new", name, "--lang", lang, "--dir", dir_arg], &[]);
    assert!(created.status.success(), "new: {}", text(&created.stderr));
    let source = repo_root().join("examples").join(example);
    for entry in std::fs::read_dir(&source).expect("the example's folder") {
        let path = entry.expect("a folder entry").path();
        let is_code = path
            .extension()
            .is_some_and(|extension| extension == "py" || extension == "js");
        if !is_code {
            continue;
        }
        let mut code = std::fs::read_to_string(&path).expect("the example's code");
        for (from, to) in replacements {
            code = code.replace(from, to);
        }
        std::fs::write(dir.join(path.file_name().expect("a file name")), code).expect("copying the example");
    }
    let built = offline_cli(&["build", dir_arg], &[]);
    assert!(
        built.status.success(),
        "build of {example}: {}{}",
        text(&built.stdout),
        text(&built.stderr)
    );
    PathBuf::from(
        text(&built.stdout)
            .lines()
            .last()
            .expect("build prints the component's path"),
    )
}

/// The bytes of a built plugin.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    std::fs::read(plugin(name)).expect("reading a built plugin")
}

/// A daemon process with its own data directory.
pub struct TestDaemon {
    child: Option<Child>,
    reader: Option<std::thread::JoinHandle<()>>,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The admin token.
    pub token: String,
    data_dir: tempfile::TempDir,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    logs: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

/// An answer: status and JSON body (or `Value::String` for non-JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Parsed body.
    pub body: Value,
}

impl Answer {
    /// The error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error answer.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

impl TestDaemon {
    /// Starts a daemon on a free port with a fresh data directory.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(&[], &[])
    }

    /// Starts a daemon with extra `serve` flags and environment.
    pub fn start_with(args: &[&str], envs: &[(&str, &str)]) -> TestDaemon {
        TestDaemon::start_in(tempfile::tempdir().expect("a temp dir"), args, envs)
    }

    /// Starts a daemon on a data directory of the test's (a small volume
    /// mounted there), with extra `serve` flags and environment.
    pub fn start_in(data_dir: tempfile::TempDir, args: &[&str], envs: &[(&str, &str)]) -> TestDaemon {
        let mut daemon = TestDaemon {
            child: None,
            reader: None,
            url: String::new(),
            token: String::new(),
            data_dir,
            args: args.iter().map(|arg| arg.to_string()).collect(),
            envs: envs
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            logs: Arc::new(Mutex::new(Vec::new())),
            http: reqwest::Client::new(),
        };
        daemon.spawn();
        daemon
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Starts the binary with this daemon's data dir and waits until it listens.
    fn spawn(&mut self) {
        self.logs.lock().expect("log lock").clear();
        let (url, child, reader) = spawn_daemon(self.data_dir.path(), &self.args, &self.envs, self.logs.clone())
            .unwrap_or_else(|failure| panic!("the daemon did not start: {failure}"));
        self.url = url;
        self.child = Some(child);
        self.reader = Some(reader);
        let given = self.envs.iter().find(|(key, _)| key == "SANDCRON_ADMIN_TOKEN");
        self.token = match given {
            Some((_, token)) => token.clone(),
            None => std::fs::read_to_string(self.data_dir.path().join("admin-token"))
                .expect("the daemon writes its admin token")
                .trim()
                .to_string(),
        };
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon is running").id()
    }

    /// SIGKILLs the daemon (no graceful shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM (graceful stop) and wait for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the daemon is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let status = child.wait().expect("waiting for the daemon");
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    /// Waits up to `timeout` for the daemon to exit by itself; its exit
    /// status, or None if it is still running.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let child = self.child.as_mut().expect("the daemon was started");
            if let Some(status) = child.try_wait().expect("polling the daemon") {
                self.child = None;
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return Some(status);
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Starts the daemon again on the same data directory after a stop.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "stop the daemon first");
        self.spawn();
    }

    /// SIGKILL, then start again on the same data directory.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Every line the daemon printed since it last started.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("log lock").clone()
    }

    /// Runs the CLI against this daemon with its admin token (read from the
    /// data dir, as on a local machine); asserts it succeeds; its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_sandcron"))
            .args(args)
            .args(["--url", &self.url, "--data-dir"])
            .arg(self.data_dir())
            .env_remove("SANDCRON_TOKEN")
            // A plugin project it builds must not share the developer's
            // build dir (crates of the same name would collide).
            .env_remove("CARGO_BUILD_BUILD_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("running the CLI");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "sandcron {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    }

    /// Creates a tenant (with `extra` fields such as `quotas`) and returns
    /// its first token.
    pub async fn new_tenant(&self, name: &str, extra: Value) -> String {
        let mut body = json!({"name": name});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        let answer = self.call(Method::POST, "/v1/tenants", Some(body)).await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "creating tenant {name}: {}",
            answer.body
        );
        assert_eq!(answer.body["tenant"]["name"], name);
        answer.body["token"].as_str().expect("a token").to_string()
    }

    /// A request with the admin token.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(&self.token), method, path, body).await
    }

    /// A request with a given token (or none).
    pub async fn call_as(&self, token: Option<&str>, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        answer(request.send().await.expect("the daemon answers")).await
    }

    /// Uploads raw bytes as plugin `name`.
    pub async fn upload_bytes(&self, name: &str, bytes: Vec<u8>) -> Answer {
        self.upload_bytes_as(&self.token, name, bytes).await
    }

    /// Uploads raw bytes as plugin `name` with a given token.
    pub async fn upload_bytes_as(&self, token: &str, name: &str, bytes: Vec<u8>) -> Answer {
        let request = self
            .http
            .post(format!("{}/v1/plugins?name={name}", self.url))
            .bearer_auth(token)
            .body(bytes);
        answer(request.send().await.expect("the daemon answers")).await
    }

    /// Uploads a built plugin and asserts it was accepted.
    pub async fn upload(&self, name: &str, plugin_name: &str) -> Value {
        let answer = self.upload_bytes(name, plugin_bytes(plugin_name)).await;
        assert!(
            answer.status.is_success(),
            "upload of {plugin_name}: {} {}",
            answer.status,
            answer.body
        );
        answer.body
    }

    /// Creates a job and asserts it was created.
    pub async fn create_job(&self, body: Value) -> Value {
        let answer = self.call(Method::POST, "/v1/jobs", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::CREATED, "creating {body}: {}", answer.body);
        answer.body
    }

    /// Runs a job now and waits for the finished run.
    pub async fn run_job(&self, job: &str, input: Option<Value>) -> Value {
        let body = input.map(|input| json!({"input": input}));
        let answer = self
            .call(Method::POST, &format!("/v1/jobs/{job}/run?wait=60s"), body)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "running {job}: {}", answer.body);
        answer.body
    }

    /// Uploads `plugin_name` as `name` and creates a job of the same name.
    pub async fn job_with(&self, name: &str, plugin_name: &str, extra: Value) -> Value {
        self.upload(plugin_name, plugin_name).await;
        let mut body = json!({"name": name, "plugin": plugin_name});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.create_job(body).await
    }

    /// Polls a run until it has `status` (up to ~2.5 s); true if it did.
    pub async fn wait_for_status(&self, run_id: &str, status: &str) -> bool {
        for _ in 0..250 {
            if self.call(Method::GET, &format!("/v1/runs/{run_id}"), None).await.body["status"] == status {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    /// The daemon's Prometheus scrape, as the admin.
    pub async fn metrics_text(&self) -> String {
        reqwest::Client::new()
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("scraping /metrics")
            .text()
            .await
            .expect("the scrape's text")
    }

    /// The value of one sample of the daemon's Prometheus scrape (0 if absent).
    pub async fn metric(&self, sample: &str) -> f64 {
        self.metrics_text()
            .await
            .lines()
            .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// A run's log as text.
    pub async fn log(&self, run_id: &str) -> String {
        let response = self
            .http
            .get(format!("{}/v1/runs/{run_id}/logs", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("the daemon answers");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("a text body")
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    let body =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Answer { status, body }
}

/// What a receiver kept that `wanted` picks, once there are `count` of
/// them or `wait` has passed (polled every 20 ms).
pub async fn gathered<T: Clone>(
    kept: &Arc<Mutex<Vec<T>>>,
    count: usize,
    wait: Duration,
    wanted: impl Fn(&T) -> bool,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let found: Vec<T> = kept
            .lock()
            .unwrap()
            .iter()
            .filter(|item| wanted(item))
            .cloned()
            .collect();
        if found.len() >= count || tokio::time::Instant::now() > deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text field `field` of each object in the JSON array `list`.
pub fn texts<'a>(list: &'a Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .expect("a JSON array")
        .iter()
        .map(|item| item[field].as_str().expect("a text field"))
        .collect()
}

/// Whether this test binary runs its daemons on PostgreSQL: its name starts
/// with `postgres_` (a `[[test]]` target's name is its crate's), or
/// `SANDCRON_TEST_BACKEND=postgres`.
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME").starts_with("postgres_")
        || std::env::var("SANDCRON_TEST_BACKEND").is_ok_and(|backend| backend == "postgres")
}

/// The `serve` arguments that put a daemon of `data_dir` on this binary's
/// backend: on PostgreSQL ([`on_postgres`]), `--database-url` with the
/// data dir's own database; on sled, none.
pub fn backend_args(data_dir: &Path) -> Vec<String> {
    if on_postgres() {
        vec!["--database-url".to_string(), postgres::server().database_for(data_dir)]
    } else {
        Vec::new()
    }
}

/// Starts `sandcron serve` and returns its URL once it logs where it listens.
/// On PostgreSQL ([`on_postgres`]) it adds `--database-url` with the data
/// dir's own database (the same one on every start, so a restarted daemon
/// finds its state), unless the caller chose a database itself.
pub fn spawn_daemon(
    data_dir: &Path,
    args: &[String],
    envs: &[(String, String)],
    logs: Arc<Mutex<Vec<String>>>,
) -> Result<(String, Child, std::thread::JoinHandle<()>), String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandcron"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(args);
    let chose_database = args
        .iter()
        .any(|arg| arg == "--database-url" || arg.starts_with("--database-url="))
        || envs.iter().any(|(key, _)| key == "SANDCRON_DATABASE_URL");
    if !chose_database {
        command.args(backend_args(data_dir));
    }
    command
        .env_remove("SANDCRON_CONFIG")
        .env("SANDCRON_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (key, value) in envs {
        command.env(key, value);
    }
    let mut child = command.spawn().map_err(|error| format!("spawning: {error}"))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, listening) = mpsc::channel();
    let kept = logs.clone();
    // Keep draining stderr for the daemon's whole life so it never blocks.
    let reader = std::thread::spawn(move || {
        let mut found = Some(found);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some((_, address)) = line.split_once("listening on http://")
                && let Some(sender) = found.take()
            {
                let address = address.split_whitespace().next().unwrap_or_default().to_string();
                let _ = sender.send(address);
            }
            logs.lock().expect("log lock").push(line);
        }
    });
    match listening.recv_timeout(Duration::from_secs(60)) {
        Ok(address) => Ok((format!("http://{address}"), child, reader)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().map(|status| status.to_string()).unwrap_or_default();
            let _ = reader.join();
            let said = kept.lock().expect("log lock").join("\n");
            Err(format!(
                "no 'listening on' line within 60 s (exit: {status}); it said:\n{said}"
            ))
        }
    }
}
