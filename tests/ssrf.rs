//! Black-box tests of the http capability and its SSRF wall: a plugin
//! (`fetch`) asks the daemon to call a local HTTP server. Nothing here sends
//! a packet beyond loopback: addresses outside it are only ever refused
//! before a connection (they are unit-tested in `outbound::wall`).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, Uri};
use axum::response::{IntoResponse, Redirect};
use axum::routing::any;
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// A local server counting the requests it sees: `/echo` (and any other
/// path) answers with the method, path, headers and body it got;
/// `/to?url=U` redirects to U, `/loop` to itself; `/big` is 9 MiB; `/slow`
/// answers after 5 s.
struct LocalServer {
    port: u16,
    seen: Arc<AtomicUsize>,
}

async fn local_server(bind: &str) -> Option<LocalServer> {
    let listener = tokio::net::TcpListener::bind(bind).await.ok()?;
    let port = listener.local_addr().ok()?.port();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let app = Router::new().fallback(any(
        move |method: HttpMethod, uri: Uri, headers: HeaderMap, body: Bytes| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                match uri.path() {
                    "/to" => {
                        let target = uri.query().and_then(|query| query.strip_prefix("url=")).unwrap_or("/");
                        return Redirect::temporary(target).into_response();
                    }
                    "/loop" => return Redirect::temporary("/loop").into_response(),
                    "/big" => return vec![b'x'; 9 << 20].into_response(),
                    "/slow" => {
                        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                        return "late".into_response();
                    }
                    _ => {}
                }
                let headers: Value = headers
                    .iter()
                    .map(|(name, value)| (name.to_string(), json!(value.to_str().unwrap_or_default())))
                    .collect::<serde_json::Map<_, _>>()
                    .into();
                let answer = json!({
                    "method": method.as_str(),
                    "path": uri.path(),
                    "headers": headers,
                    "body": String::from_utf8_lossy(&body),
                });
                ([("x-echo", "yes")], axum::Json(answer)).into_response()
            }
        },
    ));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Some(LocalServer { port, seen })
}

/// Runs the `fetch` job with `request` and returns the finished run.
async fn fetch(daemon: &TestDaemon, request: Value) -> Value {
    daemon.run_job("fetch", Some(request)).await
}

fn failure(run: &Value) -> String {
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "plugin_error", "{run}");
    run["error"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn loopback_in_every_spelling_is_refused_and_the_server_sees_nothing() {
    let server = local_server("127.0.0.1:0").await.expect("a local server");
    let v6 = local_server("[::1]:0").await;
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_RESOLVE", "internal.test=127.0.0.1")]);
    daemon
        .job_with(
            "fetch",
            "fetch",
            json!({"http_allow": ["127.0.0.1", "localhost", "[::1]", "internal.test", "2130706433"]}),
        )
        .await;
    let port = server.port;
    let mut targets = vec![
        (
            format!("http://127.0.0.1:{port}/echo"),
            "127.0.0.1 is a loopback address",
        ),
        (format!("http://localhost:{port}/echo"), "loopback"),
        (
            format!("http://internal.test:{port}/echo"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://2130706433:{port}/echo"),
            "127.0.0.1 is a loopback address",
        ),
    ];
    let v6_port = v6.as_ref().map_or(port, |server| server.port);
    targets.push((format!("http://[::1]:{v6_port}/echo"), "::1 is a loopback address"));
    for (url, why) in targets {
        let run = fetch(&daemon, json!({"url": url})).await;
        let message = failure(&run);
        assert!(message.contains(why), "{url}: {message}");
        assert!(
            message.contains("http_allow_private"),
            "the refusal says how to allow it: {message}"
        );
    }
    assert_eq!(server.seen.load(Ordering::SeqCst), 0, "no request reached the server");
    if let Some(v6) = v6 {
        assert_eq!(v6.seen.load(Ordering::SeqCst), 0, "no request reached [::1]");
    }
    // A host outside the job's list and a non-HTTP scheme are refused too.
    let outside = fetch(&daemon, json!({"url": format!("http://127.0.0.2:{port}/")})).await;
    assert!(failure(&outside).contains("not in this job's http_allow"), "{outside}");
    let scheme = fetch(&daemon, json!({"url": "file:///etc/passwd"})).await;
    assert!(failure(&scheme).contains("only http and https"), "{scheme}");
}

#[tokio::test]
async fn an_allowed_fetch_round_trips_and_redirects_are_checked_at_every_hop() {
    let server = local_server("127.0.0.1:0").await.expect("a local server");
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.0/8")]);
    // The job lists the redirect targets too, so it is the wall that
    // refuses them, not the list.
    let allow = json!({"http_allow": ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]"]});
    daemon.job_with("fetch", "fetch", allow).await;
    let base = format!("http://127.0.0.1:{}", server.port);

    let run = fetch(
        &daemon,
        json!({
            "method": "POST",
            "url": format!("{base}/echo"),
            "headers": [["x-test", "round-trip"], ["content-type", "text/plain"]],
            "body": "hello server",
        }),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let response: Value = serde_json::from_str(run["output"].as_str().unwrap()).unwrap();
    assert_eq!(response["status"], 200);
    assert!(
        response["headers"]
            .as_array()
            .unwrap()
            .contains(&json!(["x-echo", "yes"])),
        "{response}"
    );
    let echoed: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["headers"]["x-test"], "round-trip");
    assert_eq!(echoed["body"], "hello server");
    assert_eq!(server.seen.load(Ordering::SeqCst), 1);

    // A redirect within what is allowed is followed.
    let followed = fetch(&daemon, json!({"url": format!("{base}/to?url=/echo")})).await;
    assert_eq!(followed["status"], "succeeded", "{followed}");
    assert_eq!(server.seen.load(Ordering::SeqCst), 3);

    // A redirect to an address the wall refuses: the second hop is refused
    // before any connection (10.0.0.1 is never contacted).
    let private = fetch(&daemon, json!({"url": format!("{base}/to?url=http://10.0.0.1/")})).await;
    assert!(failure(&private).contains("10.0.0.1 is a private address"), "{private}");
    let metadata = fetch(
        &daemon,
        json!({"url": format!("{base}/to?url=http://169.254.169.254/latest/meta-data/")}),
    )
    .await;
    assert!(failure(&metadata).contains("metadata"), "{metadata}");
    let loopback_v6 = fetch(&daemon, json!({"url": format!("{base}/to?url=http://[::1]/")})).await;
    assert!(
        failure(&loopback_v6).contains("::1 is a loopback address"),
        "{loopback_v6}"
    );
    assert_eq!(
        server.seen.load(Ordering::SeqCst),
        6,
        "one request per refused redirect, none after"
    );

    // A job with no http_allow reaches nothing, even an allowed range.
    daemon.create_job(json!({"name": "closed", "plugin": "fetch"})).await;
    let closed = daemon
        .call(
            Method::POST,
            "/v1/jobs/closed/run?wait=60s",
            Some(json!({"input": {"url": format!("{base}/echo")}})),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK);
    assert!(failure(&closed.body).contains("no http_allow list"), "{}", closed.body);
    assert_eq!(server.seen.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn a_tenants_http_cap_bounds_what_its_jobs_may_reach() {
    let server = local_server("127.0.0.1:0").await.expect("a local server");
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.0/8")]);
    let created = daemon
        .call(
            Method::POST,
            "/v1/tenants",
            Some(json!({"name": "acme", "http_allow": ["api.example.com"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let token = created.body["token"].as_str().unwrap().to_string();
    let upload = daemon
        .upload_bytes_as(&token, "fetch", common::plugin_bytes("fetch"))
        .await;
    assert_eq!(upload.status, StatusCode::CREATED);
    let job = json!({"name": "fetch", "plugin": "fetch", "http_allow": ["127.0.0.1"]});
    let created = daemon.call_as(Some(&token), Method::POST, "/v1/jobs", Some(job)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let input = json!({"input": {"url": format!("http://127.0.0.1:{}/echo", server.port)}});
    let run = daemon
        .call_as(
            Some(&token),
            Method::POST,
            "/v1/jobs/fetch/run?wait=60s",
            Some(input.clone()),
        )
        .await;
    assert!(
        failure(&run.body).contains("outside the hosts this tenant may reach"),
        "{}",
        run.body
    );
    assert_eq!(server.seen.load(Ordering::SeqCst), 0);
    // The admin lifts the cap: the next run gets through.
    let patched = daemon
        .call(Method::PATCH, "/v1/tenants/acme", Some(json!({"http_allow": null})))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let run = daemon
        .call_as(Some(&token), Method::POST, "/v1/jobs/fetch/run?wait=60s", Some(input))
        .await;
    assert_eq!(run.body["status"], "succeeded", "{}", run.body);
    assert_eq!(server.seen.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn responses_redirect_chains_and_slow_servers_are_capped() {
    let server = local_server("127.0.0.1:0").await.expect("a local server");
    let daemon = TestDaemon::start_with(&[], &[("SANDCRON_HTTP_ALLOW_PRIVATE", "127.0.0.1/32")]);
    daemon
        .job_with("fetch", "fetch", json!({"http_allow": ["127.0.0.1"]}))
        .await;
    let base = format!("http://127.0.0.1:{}", server.port);
    let big = fetch(&daemon, json!({"url": format!("{base}/big")})).await;
    assert!(failure(&big).contains("larger than the 8388608-byte limit"), "{big}");
    let chain = fetch(&daemon, json!({"url": format!("{base}/loop")})).await;
    assert!(failure(&chain).contains("more than 5 redirects"), "{chain}");
    let before = server.seen.load(Ordering::SeqCst);
    let slow = fetch(&daemon, json!({"url": format!("{base}/slow"), "timeout_ms": 300})).await;
    assert!(failure(&slow).contains("no answer within 300 ms"), "{slow}");
    assert!(slow["duration_ms"].as_u64().unwrap() < 3000, "{slow}");
    assert_eq!(server.seen.load(Ordering::SeqCst), before + 1);
}
