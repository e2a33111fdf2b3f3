//! Writing plugins: for each language, `sandcron new` and `sandcron build`
//! make a component that uploads (`sandcron plugin push`) and runs through a
//! real daemon using every capability of the SDK: log, kv, http, secrets,
//! and a failure. The hello job each `new` writes does all of it when its
//! input asks (`{"name", "fetch", "secret", "fail"}`), so the tests build the
//! template as it is. Toolchains are installed by `sandcron build` itself on
//! first use, into the default cache folder (kept between runs).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use axum::Router;
use axum::routing::get;
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the local HTTP server answers on `/hello`.
const PONG: &str = "pong from the test server";
/// The secret granted to the job.
const SECRET: &str = "s3cr3t-value-of-the-test";

/// Runs the CLI (no daemon needed) with extra environment.
fn sandcron(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sandcron"));
    command
        .args(args)
        // Flags meant for the host's own build do not suit wasm32-wasip2.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        // Rust projects build in a target folder of their own that outlives
        // the test (their crates compile once), not in a build dir shared
        // with other workspaces, which may hold crates of the same names.
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `sandcron new NAME --lang LANG --dir DIR` then `sandcron build DIR`;
/// the component's path (the last line `build` printed).
fn new_and_build(lang: &str, name: &str, dir: &Path) -> PathBuf {
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let created = sandcron(&["new", name, "--lang", lang, "--dir", dir_arg], &[]);
    assert!(created.status.success(), "new: {}", text(&created.stderr));
    assert!(
        text(&created.stdout).contains("sandcron build"),
        "{}",
        text(&created.stdout)
    );
    assert!(dir.join("sandcron.toml").is_file());
    assert!(dir.join("wit/plugin.wit").is_file());

    let built = sandcron(&["build", dir_arg], &[]);
    let stdout = text(&built.stdout);
    assert!(
        built.status.success(),
        "build of the {lang} template: {stdout}{}",
        text(&built.stderr)
    );
    let path = PathBuf::from(stdout.lines().last().expect("build prints the component's path"));
    assert!(
        path.extension().is_some_and(|extension| extension == "wasm"),
        "{stdout}"
    );
    assert!(path.is_file(), "{} was not written", path.display());
    path
}

/// A local HTTP server answering `/hello` with [`PONG`]; its port.
async fn local_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let port = listener.local_addr().expect("an address").port();
    let app = Router::new().route("/hello", get(|| async { PONG }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// Uploads the component with the CLI, makes a job that may reach the local
/// server and read the secret, and runs it three times: with every feature,
/// again (the kv counter grows), and with `fail`. Returns the failed run's
/// error message and log.
async fn upload_and_run(name: &str, component: &Path) -> (String, String) {
    let port = local_server().await;
    let daemon = TestDaemon::start_with(&["--http-allow-private", "127.0.0.1/32"], &[]);
    let component = component.to_str().expect("a UTF-8 path");
    let pushed = daemon.cli(&["plugin", "push", component, "--name", name]);
    assert!(pushed.contains(&format!("{name}@1")), "{pushed}");
    let secret = daemon
        .call(Method::PUT, "/v1/secrets/api-token", Some(json!({"value": SECRET})))
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.body);
    daemon
        .create_job(json!({
            "name": name,
            "plugin": name,
            "http_allow": [format!("127.0.0.1:{port}")],
            "secrets": ["api-token"],
        }))
        .await;

    let url = format!("http://127.0.0.1:{port}/hello");
    let first = daemon
        .run_job(name, Some(json!({"name": "Ada", "fetch": url, "secret": "api-token"})))
        .await;
    assert_eq!(first["status"], "succeeded", "{first}");
    let output: Value = serde_json::from_str(first["output"].as_str().expect("a text output")).expect("JSON output");
    assert_eq!(output["greeting"], "Hello, Ada!", "{output}");
    assert_eq!(output["count"], 1, "{output}");
    assert_eq!(output["fetched"]["status"], 200, "{output}");
    assert_eq!(output["fetched"]["body"], PONG, "{output}");
    // The plugin read the secret and returned it; the daemon masks it.
    assert_eq!(output["secret"], "[secret:api-token]", "{output}");
    assert!(!first.to_string().contains(SECRET), "{first}");
    let log = daemon.log(first["id"].as_str().expect("a run id")).await;
    assert!(log.contains(&format!("hello Ada: run 1 of job {name}")), "{log}");

    let second = daemon.run_job(name, Some(json!({"name": "Ada"}))).await;
    assert_eq!(second["status"], "succeeded", "{second}");
    let output: Value = serde_json::from_str(second["output"].as_str().expect("a text output")).expect("JSON output");
    assert_eq!(output["count"], 2, "the kv counter grows: {output}");
    assert!(
        output.get("fetched").is_none() && output.get("secret").is_none(),
        "{output}"
    );

    let failed = daemon
        .run_job(name, Some(json!({"fail": "the input asked to fail"})))
        .await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error"]["kind"], "plugin_error", "{failed}");
    let message = failed["error"]["message"].as_str().expect("a message").to_string();
    let log = daemon.log(failed["id"].as_str().expect("a run id")).await;
    (message, log)
}

#[tokio::test]
async fn a_rust_plugin_goes_from_new_to_runs_that_log_count_fetch_read_secrets_and_fail() {
    let work = tempfile::tempdir().expect("a temp dir");
    let component = new_and_build("rust", "hello-rust", &work.path().join("hello-rust"));
    assert!(
        component.ends_with("wasm32-wasip2/release/hello_rust.wasm"),
        "{}",
        component.display()
    );
    let (message, _log) = upload_and_run("hello-rust", &component).await;
    assert_eq!(message, "the input asked to fail");
}

#[tokio::test]
async fn a_python_plugin_goes_from_new_to_runs_that_log_count_fetch_read_secrets_and_fail() {
    let work = tempfile::tempdir().expect("a temp dir");
    let component = new_and_build("python", "hello-python", &work.path().join("hello-python"));
    assert!(
        component.ends_with("build/hello-python.wasm"),
        "{}",
        component.display()
    );
    let (message, log) = upload_and_run("hello-python", &component).await;
    // Any exception fails the run with the traceback's last line (not a
    // trap), and the whole traceback is in the run's log.
    assert_eq!(message, "ValueError: the input asked to fail");
    assert!(log.contains("Traceback (most recent call last)"), "{log}");
    assert!(log.contains("ValueError: the input asked to fail"), "{log}");
}

#[tokio::test]
async fn a_javascript_plugin_goes_from_new_to_runs_that_log_count_fetch_read_secrets_and_fail() {
    let work = tempfile::tempdir().expect("a temp dir");
    let project = work.path().join("hello-js");
    let component = new_and_build("js", "hello-js", &project);
    assert!(component.ends_with("build/hello-js.wasm"), "{}", component.display());
    let (message, log) = upload_and_run("hello-js", &component).await;
    assert_eq!(message, "Error: the input asked to fail");
    assert!(log.contains("at "), "the stack is in the log: {log}");

    // A world that imports what the daemon does not link: build refuses
    // the component, naming the import, before any upload.
    let deps = project.join("wit/deps/acme");
    std::fs::create_dir_all(&deps).expect("creating wit/deps");
    std::fs::write(
        deps.join("tools.wit"),
        "package acme:tools@1.0.0;\n\ninterface thing {\n    poke: func();\n}\n",
    )
    .expect("writing a WIT package");
    let world = std::fs::read_to_string(project.join("wit/plugin.wit")).expect("reading the WIT");
    let world = world.replacen(
        "    import secrets;",
        "    import secrets;\n    import acme:tools/thing@1.0.0;",
        1,
    );
    std::fs::write(project.join("wit/plugin.wit"), world).expect("writing the WIT");
    let refused = sandcron(&["build", project.to_str().expect("a UTF-8 path")], &[]);
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("acme:tools/thing@1.0.0"), "{stderr}");
    assert!(stderr.contains("the daemon would refuse it"), "{stderr}");
    assert!(
        text(&refused.stdout).trim().is_empty(),
        "no path is printed for a refused component"
    );
}

#[test]
fn build_outside_a_project_says_how_to_make_one() {
    let empty = tempfile::tempdir().expect("a temp dir");
    let output = sandcron(&["build", empty.path().to_str().expect("a UTF-8 path")], &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(stderr.contains("no sandcron plugin project"), "{stderr}");
    assert!(stderr.contains("sandcron new NAME --lang rust|python|js"), "{stderr}");
}

#[test]
fn a_missing_python_or_node_is_named_with_what_to_install() {
    let work = tempfile::tempdir().expect("a temp dir");
    let no_tools = work.path().join("empty-path");
    std::fs::create_dir(&no_tools).expect("creating a folder");
    let cache = work.path().join("cache");
    for (lang, program, install) in [
        ("python", "python3", "install Python 3.9"),
        ("js", "node", "install Node.js 18"),
    ] {
        let project = work.path().join(lang);
        let project = project.to_str().expect("a UTF-8 path");
        let created = sandcron(&["new", "hello", "--lang", lang, "--dir", project], &[]);
        assert!(created.status.success(), "{}", text(&created.stderr));
        let output = sandcron(
            &["build", project],
            &[
                ("PATH", no_tools.to_str().expect("a UTF-8 path")),
                ("SANDCRON_CACHE_DIR", cache.to_str().expect("a UTF-8 path")),
            ],
        );
        assert!(!output.status.success());
        let stderr = text(&output.stderr);
        assert!(stderr.contains(&format!("{program} was not found on PATH")), "{stderr}");
        assert!(stderr.contains(install), "{stderr}");
        assert!(!cache.exists(), "nothing was installed");
    }
}

#[tokio::test]
async fn python_runs_at_once_fit_the_pool_and_do_not_spill_to_on_demand_instances() {
    let work = tempfile::tempdir().expect("a temp dir");
    let component = new_and_build("python", "pooled-python", &work.path().join("pooled-python"));
    // A server slow to answer, so the runs' instances are alive at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let port = listener.local_addr().expect("an address").port();
    let app = Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
            "slow"
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Four slots: a Python instance takes 14 core instances, more than the
    // 8 a slot used to keep.
    let daemon = TestDaemon::start_with(
        &[
            "--http-allow-private",
            "127.0.0.1/32",
            "--pool-size",
            "4",
            "--max-concurrent-runs",
            "4",
        ],
        &[],
    );
    let component = component.to_str().expect("a UTF-8 path");
    daemon.cli(&["plugin", "push", component, "--name", "py"]);
    for index in 0..4 {
        daemon
            .create_job(
                json!({"name": format!("py-{index}"), "plugin": "py", "http_allow": [format!("127.0.0.1:{port}")]}),
            )
            .await;
    }
    let url = format!("http://127.0.0.1:{port}/slow");
    let (daemon, url) = (&daemon, &url);
    let runs = futures_util::future::join_all((0..4).map(|index| async move {
        let name = format!("py-{index}");
        daemon.run_job(&name, Some(json!({"name": "Ada", "fetch": url}))).await
    }))
    .await;
    for run in &runs {
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    assert_eq!(
        daemon.metric("sandcron_instances_total{allocator=\"pooling\"}").await,
        4.0
    );
    assert_eq!(
        daemon.metric("sandcron_pool_spills_total{reason=\"resources\"}").await,
        0.0
    );
    assert_eq!(
        daemon.metric("sandcron_instances_total{allocator=\"on_demand\"}").await,
        0.0
    );
}

#[tokio::test]
async fn the_cache_warmup_example_runs_at_start_and_every_30_minutes_with_its_next_run_on_status() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // The example's job: a Python project from `new`, its app.py the example's.
    let work = tempfile::tempdir().expect("a temp dir");
    let dir = work.path().join("cache-warmup");
    let dir_arg = dir.to_str().expect("a UTF-8 path");
    let created = sandcron(&["new", "cache-warmup", "--lang", "python", "--dir", dir_arg], &[]);
    assert!(created.status.success(), "new: {}", text(&created.stderr));
    let example = common::repo_root().join("examples").join("cache-warmup");
    std::fs::copy(example.join("app.py"), dir.join("app.py")).expect("the example's app.py");
    let built = sandcron(&["build", dir_arg], &[]);
    assert!(built.status.success(), "build: {}", text(&built.stderr));
    let component = text(&built.stdout).lines().last().expect("a path").to_string();

    // The service to warm: counts the pages asked for.
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let port = listener.local_addr().expect("an address").port();
    let counter = hits.clone();
    let app = Router::new().fallback(move || {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            "warm"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let wait_for_hits = |least: usize| {
        let hits = hits.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
            while hits.load(Ordering::SeqCst) < least {
                assert!(std::time::Instant::now() < deadline, "the pages were not warmed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    };

    let mut daemon = TestDaemon::start_with(&["--http-allow-private", "127.0.0.1/32"], &[]);
    daemon.cli(&["plugin", "push", &component, "--name", "cache-warmup"]);
    let job = std::fs::read_to_string(example.join("job.json"))
        .expect("the example's job")
        .replace("127.0.0.1:8098", &format!("127.0.0.1:{port}"));
    let job: Value = serde_json::from_str(&job).expect("JSON");
    daemon.create_job(job).await;
    // Made: it runs at once (two pages), and its next run is half an hour on.
    wait_for_hits(2).await;
    let status = daemon.call(Method::GET, "/v1/status", None).await.body;
    let next = status["next_fires"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|fire| fire["job"] == "cache-warmup")
        .unwrap_or_else(|| panic!("no next fire on /v1/status: {status}"));
    let at = chrono::DateTime::parse_from_rfc3339(next["at"].as_str().unwrap_or_default()).expect("an instant");
    let ahead = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::minutes(29) && ahead <= chrono::Duration::minutes(30),
        "{status}"
    );
    // A restart warms the caches again.
    daemon.restart();
    wait_for_hits(4).await;
    let runs = daemon.call(Method::GET, "/v1/runs?job=cache-warmup", None).await.body;
    let runs = runs["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "{runs:?}");
    for run in &runs {
        assert_eq!(run["trigger"], "start", "{run}");
    }
}
