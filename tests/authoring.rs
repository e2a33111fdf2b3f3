//! Writing plugins: for each language, `sandcron new` and `sandcron build`
//! make a component that uploads (`sandcron plugin push`) and runs through a
//! real daemon using every capability of the SDK: log, kv, http, secrets,
//! and a failure. The hello job each `new` writes does all of it when its
//! input asks (`{"name", "fetch", "secret", "fail"}`), so the tests build the
//! template as it is. Toolchains are installed by `sandcron build` itself on
//! first use, into the default cache folder (kept between runs).

mod common;

use std::path::{Path, PathBuf};

use axum::Router;
use axum::routing::get;
use common::{TestDaemon, offline_cli as sandcron, text};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// What the local HTTP server answers on `/hello`.
const PONG: &str = "pong from the test server";
/// The secret granted to the job.
const SECRET: &str = "s3cr3t-value-of-the-test";

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
