//! Hostile clients and curious local users: slow and idle connections, the
//! connection cap, the budget of requests without a valid token, and the
//! data directory's permissions and secrets on the command line.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout, timeout_at};

/// A request line and one header, without the blank line that ends a head.
const PARTIAL_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

fn address(daemon: &TestDaemon) -> SocketAddr {
    daemon
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("the daemon's URL is an address")
}

/// Opens `count` connections that each send a partial request head.
async fn partial_heads(address: SocketAddr, count: usize) -> Vec<TcpStream> {
    let mut streams = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = TcpStream::connect(address).await.expect("connecting");
        stream.write_all(PARTIAL_HEAD).await.expect("sending a partial head");
        streams.push(stream);
    }
    streams
}

/// Reads until the server closes the connection (EOF or reset) or the
/// deadline passes; true if it closed. Returns what was read too.
async fn closed_by(stream: &mut TcpStream, deadline: Instant) -> (bool, Vec<u8>) {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return (false, read),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, read),
            Ok(Ok(count)) => read.extend_from_slice(&buffer[..count]),
        }
    }
}

/// True if the connection is still open: nothing to read for a moment.
async fn still_open(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 64];
    timeout(Duration::from_millis(200), stream.read(&mut buffer))
        .await
        .is_err()
}

/// GET /healthz on a fresh connection, with a bound; the status if answered.
async fn healthz(daemon: &TestDaemon) -> Option<StatusCode> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .expect("a client");
    client
        .get(format!("{}/healthz", daemon.url))
        .send()
        .await
        .ok()
        .map(|response| response.status())
}

/// Polls until /healthz answers 200 or the deadline passes.
async fn healthz_answers_by(daemon: &TestDaemon, deadline: Instant) -> bool {
    while Instant::now() < deadline {
        if healthz(daemon).await == Some(StatusCode::OK) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// A metric's value once it reaches `least`, or its last value after a
/// while: the server counts a close just after the socket is gone.
async fn metric_reaches(daemon: &TestDaemon, sample: &str, least: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let value = daemon.metric(sample).await;
        if value >= least || Instant::now() >= deadline {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn partial_header_connections_are_closed_within_the_header_timeout_while_healthz_answers() {
    let daemon = TestDaemon::start_with(&["--http-header-timeout", "1s"], &[]);
    let started = Instant::now();
    let mut streams = partial_heads(address(&daemon), 300).await;
    assert_eq!(
        healthz(&daemon).await,
        Some(StatusCode::OK),
        "/healthz answers while 300 connections hold partial heads"
    );
    // The header timeout is 1 s; allow far more for a loaded machine.
    let deadline = started + Duration::from_secs(20);
    let mut open = 0;
    for stream in &mut streams {
        let (closed, read) = closed_by(stream, deadline).await;
        if !closed {
            open += 1;
        }
        assert!(
            read.is_empty() || read.starts_with(b"HTTP/1.1 408"),
            "{}",
            String::from_utf8_lossy(&read)
        );
    }
    assert_eq!(open, 0, "connections still open 20 s after sending a partial head");
    let counted = metric_reaches(
        &daemon,
        "sandcron_http_connections_closed_total{reason=\"header_timeout\"}",
        300.0,
    )
    .await;
    assert!(counted >= 300.0, "{counted} counted as closed for the header timeout");
}

#[tokio::test]
async fn at_the_connection_cap_the_connections_waiting_longest_are_closed_to_make_room() {
    let daemon = TestDaemon::start_with(&["--http-max-connections", "20", "--http-header-timeout", "60s"], &[]);
    let mut streams = partial_heads(address(&daemon), 30).await;
    // Connections are accepted in the order they were made: the ten made
    // first have waited longest and make room for the last ten.
    let deadline = Instant::now() + Duration::from_secs(15);
    for (index, stream) in streams.iter_mut().take(10).enumerate() {
        let (closed, _) = closed_by(stream, deadline).await;
        assert!(closed, "connection {index}, among the oldest, was closed to make room");
    }
    for (index, stream) in streams.iter_mut().enumerate().skip(10) {
        assert!(still_open(stream).await, "connection {index} is held (within the cap)");
    }
    assert_eq!(
        healthz(&daemon).await,
        Some(StatusCode::OK),
        "/healthz answers at the cap: it takes the place of the longest waiting"
    );
    let open = daemon.metric("sandcron_http_connections ").await;
    assert!(open <= 20.0, "{open} connections open, over the cap of 20");
    let evicted = daemon
        .metric("sandcron_http_connections_closed_total{reason=\"evicted\"}")
        .await;
    assert!(evicted >= 10.0, "{evicted}");
    drop(streams);
    assert!(healthz_answers_by(&daemon, Instant::now() + Duration::from_secs(10)).await);
}

#[tokio::test]
async fn at_the_connection_cap_with_every_connection_busy_newcomers_get_503_until_one_ends() {
    let daemon = TestDaemon::start_with(&["--http-max-connections", "8", "--http-body-timeout", "60s"], &[]);
    // Eight requests whose bodies never finish arriving keep their
    // connections busy; "100 Continue" says the server has the head and
    // the handler is reading the body.
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n",
        daemon.token
    );
    let mut busy = Vec::new();
    for index in 0..8 {
        let mut stream = TcpStream::connect(address(&daemon)).await.expect("connecting");
        stream.write_all(head.as_bytes()).await.expect("sending");
        let mut read = Vec::new();
        let mut buffer = [0u8; 256];
        while !String::from_utf8_lossy(&read).contains("100 Continue\r\n\r\n") {
            let count = timeout(Duration::from_secs(10), stream.read(&mut buffer))
                .await
                .unwrap_or_else(|_| panic!("request {index} gets 100 Continue"))
                .expect("reading");
            assert!(count > 0, "request {index}: closed after {read:?}");
            read.extend_from_slice(&buffer[..count]);
        }
        stream.write_all(b"{\"na").await.expect("sending part of the body");
        busy.push(stream);
    }
    // The newcomer only reads: sending nothing, its refusal is not lost to
    // a reset for unread bytes.
    let mut newcomer = TcpStream::connect(address(&daemon)).await.expect("connecting");
    let (closed, refusal) = closed_by(&mut newcomer, Instant::now() + Duration::from_secs(10)).await;
    assert!(closed, "the newcomer is refused at once");
    let text = String::from_utf8_lossy(&refusal).into_owned();
    assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
    assert!(text.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split_once("\r\n\r\n").expect("a head and a body").1).expect("a JSON body");
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    drop(busy);
    assert!(
        healthz_answers_by(&daemon, Instant::now() + Duration::from_secs(10)).await,
        "/healthz answers once the busy connections are gone"
    );
}

#[tokio::test]
async fn a_request_body_that_does_not_arrive_in_time_gets_408_and_the_connection_closes() {
    let daemon = TestDaemon::start_with(&["--http-body-timeout", "1s"], &[]);
    let mut stream = TcpStream::connect(address(&daemon)).await.expect("connecting");
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"na",
        daemon.token
    );
    stream.write_all(head.as_bytes()).await.expect("sending");
    let (closed, read) = closed_by(&mut stream, Instant::now() + Duration::from_secs(20)).await;
    let text = String::from_utf8_lossy(&read);
    assert!(closed, "the connection is closed after the answer: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"body_timeout\""), "{text}");
    assert!(text.contains("http_body_timeout"), "{text}");
}

#[tokio::test]
async fn kept_alive_connections_idle_past_the_idle_timeout_are_closed() {
    let daemon = TestDaemon::start_with(&["--http-idle-timeout", "1s", "--http-header-timeout", "30s"], &[]);
    let mut stream = TcpStream::connect(address(&daemon)).await.expect("connecting");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("sending");
    let (closed, read) = closed_by(&mut stream, Instant::now() + Duration::from_secs(20)).await;
    let text = String::from_utf8_lossy(&read);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        !text.to_ascii_lowercase().contains("connection: close"),
        "the answer keeps the connection alive: {text}"
    );
    assert!(closed, "the idle kept-alive connection was closed");
    let counted = metric_reaches(
        &daemon,
        "sandcron_http_connections_closed_total{reason=\"idle_timeout\"}",
        1.0,
    )
    .await;
    assert!(counted >= 1.0, "{counted}");
}

#[tokio::test]
async fn unauthenticated_requests_past_the_address_budget_get_429_while_valid_tokens_are_not_limited() {
    let daemon = TestDaemon::start_with(&["--unauthenticated-rate", "2/s", "--unauthenticated-burst", "5"], &[]);
    let tenant = daemon.new_tenant("acme", json!({})).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut answered = 0;
    let mut limited = None;
    for index in 0..40 {
        let mut request = client.get(format!("{}/healthz", daemon.url));
        if index % 2 == 1 {
            request = request.bearer_auth("sc_not_a_token");
        }
        let response = request.send().await.expect("the daemon answers");
        match response.status() {
            StatusCode::OK => answered += 1,
            StatusCode::TOO_MANY_REQUESTS => limited = Some(response),
            other => panic!("unexpected {other}"),
        }
    }
    // A burst of 5, then 2 a second (plus one for rounding).
    let most = 5.0 + 2.0 * started.elapsed().as_secs_f64() + 1.0;
    assert!(
        f64::from(answered) <= most,
        "{answered} answered, at most {most} expected"
    );
    let limited = limited.expect("a flood without a valid token is refused");
    let retry_after: u64 = limited
        .headers()
        .get("retry-after")
        .expect("a Retry-After header")
        .to_str()
        .expect("text")
        .parse()
        .expect("whole seconds");
    assert!(retry_after >= 1);
    let body: serde_json::Value = limited.json().await.expect("a JSON body");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("unauthenticated_rate")),
        "{body}"
    );
    let refused = daemon.call_as(None, Method::GET, "/v1/jobs", None).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{}", refused.body);
    // Valid tokens from the same address: the admin's and a tenant's.
    for _ in 0..40 {
        let admin = daemon.call(Method::GET, "/v1/status", None).await;
        assert_eq!(admin.status, StatusCode::OK, "{}", admin.body);
        let mine = daemon.call_as(Some(&tenant), Method::GET, "/v1/jobs", None).await;
        assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    }
    assert!(daemon.metric("sandcron_http_unauthenticated_limited_total").await >= 1.0);
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_everything_in_it_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let daemon = TestDaemon::start();
    daemon.new_tenant("acme", json!({})).await;
    daemon.job_with("greet", "hello", json!({})).await;
    daemon.run_job("greet", None).await;
    let secret = daemon
        .call(Method::PUT, "/v1/secrets/password", Some(json!({"value": "hunter2"})))
        .await;
    assert!(secret.status.is_success(), "{}", secret.body);
    // The harness made the data dir itself; the daemon made what is in it,
    // and says so when the directory it was given lets others in.
    let root_mode = std::fs::metadata(daemon.data_dir())
        .expect("metadata")
        .permissions()
        .mode();
    if root_mode & 0o077 != 0 {
        let logs = daemon.logs().join("\n");
        assert!(
            logs.contains("the data directory can be read by other local users"),
            "{root_mode:o} and no warning in:\n{logs}"
        );
    }
    let mut open = Vec::new();
    let mut pending: Vec<std::path::PathBuf> = std::fs::read_dir(daemon.data_dir())
        .expect("listing")
        .map(|entry| entry.expect("an entry").path())
        .collect();
    let mut seen = 0;
    while let Some(path) = pending.pop() {
        let metadata = std::fs::symlink_metadata(&path).expect("reading metadata");
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push(format!("{} {mode:o}", path.display()));
        }
        seen += 1;
        if metadata.is_dir() {
            for entry in std::fs::read_dir(&path).expect("listing") {
                pending.push(entry.expect("an entry").path());
            }
        }
    }
    assert!(seen > 5, "the walk saw the database's files ({seen})");
    assert!(open.is_empty(), "open to group or others: {open:#?}");
}

#[cfg(unix)]
#[tokio::test]
async fn an_existing_data_dir_or_secret_file_open_to_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let mut daemon = TestDaemon::start();
    daemon.kill();
    let loosen = |path: std::path::PathBuf, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    loosen(daemon.data_dir().to_path_buf(), 0o755);
    loosen(daemon.data_dir().join("admin-token"), 0o644);
    loosen(daemon.data_dir().join("secrets.key"), 0o640);
    daemon.start_again();
    let logs = daemon.logs().join("\n");
    for what in [
        "the data directory can be read by other local users",
        "the file holding the admin token can be read by other local users",
        "the file holding the secrets master key can be read by other local users",
    ] {
        assert!(logs.contains(what), "no warning {what:?} in:\n{logs}");
    }
    assert!(logs.contains("WARN"), "{logs}");
}

#[tokio::test]
async fn secrets_given_as_flags_are_warned_about_and_ones_from_the_environment_are_not() {
    let token = "sc_admin_given_on_the_command_line_0123456789";
    let key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let flagged = TestDaemon::start_with(
        &["--admin-token", token, "--secrets-key", key],
        &[("SANDCRON_ADMIN_TOKEN", token)],
    );
    let logs = flagged.logs().join("\n");
    for flag in ["--admin-token", "--secrets-key"] {
        assert!(
            logs.contains(&format!("{flag} was given on the command line")),
            "no warning for {flag} in:\n{logs}"
        );
    }
    assert!(logs.contains("/proc/<pid>/cmdline"), "{logs}");
    let from_env = TestDaemon::start_with(&[], &[("SANDCRON_ADMIN_TOKEN", token), ("SANDCRON_SECRETS_KEY", key)]);
    let logs = from_env.logs().join("\n");
    assert!(!logs.contains("was given on the command line"), "{logs}");
}

/// Opens `GET /v1/events` with `token` on a connection of its own; returns
/// the connection and what the daemon answered by the end of its head
/// (with a refusal's body).
async fn open_events(address: SocketAddr, token: &str) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(address).await.expect("connecting");
    let request = format!("GET /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("sending the request");
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&read).into_owned();
        let answered = text.contains("\r\n\r\n") && (text.starts_with("HTTP/1.1 200") || text.contains('}'));
        if answered {
            return (stream, text);
        }
        match timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(count)) if count > 0 => read.extend_from_slice(&buffer[..count]),
            _ => return (stream, text),
        }
    }
}

#[tokio::test]
async fn a_tenant_holds_at_most_max_event_streams_and_a_closed_one_gives_its_place_back() {
    let daemon = TestDaemon::start_with(&["--max-event-streams", "2"], &[]);
    let address = address(&daemon);
    daemon.job_with("ticker", "noop", json!({})).await;
    let other = daemon.new_tenant("other", json!({})).await;

    let (first, answer) = open_events(address, &daemon.token).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_second, answer) = open_events(address, &daemon.token).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let (_, answer) = open_events(address, &daemon.token).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"too_many_streams\""), "{answer}");
    assert!(answer.contains("max_event_streams"), "{answer}");
    // Another tenant's streams are its own.
    let (_others, answer) = open_events(address, &other).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A stream whose client went away ends when the daemon next writes to
    // it (a run's events here; a keep-alive comment every 15 s otherwise).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        daemon.run_job("ticker", None).await;
        let (_third, answer) = open_events(address, &daemon.token).await;
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(Instant::now() < deadline, "the closed stream kept its place: {answer}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
