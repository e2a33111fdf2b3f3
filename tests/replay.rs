//! Recording and replay: a recorded run keeps the answers of its host
//! calls (clocks, random seeds, kv, HTTP, secrets by name), and replaying
//! it executes the plugin again against them, with no side effects.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use common::TestDaemon;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An HTTP server on 127.0.0.1 that answers every request with its current
/// body and counts the requests.
struct Server {
    port: u16,
    body: Arc<std::sync::Mutex<String>>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    async fn start(body: &str) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(std::sync::Mutex::new(body.to_string()));
        let hits = Arc::new(AtomicUsize::new(0));
        let (served, counted) = (body.clone(), hits.clone());
        let app = axum::Router::new().fallback(axum::routing::any(move || {
            let (served, counted) = (served.clone(), counted.clone());
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                served.lock().unwrap().clone()
            }
        }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { port, body, hits }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/data", self.port)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// A daemon that lets plugins reach 127.0.0.1.
fn daemon(extra: &[&str]) -> TestDaemon {
    let mut args = vec!["--http-allow-private", "127.0.0.1/32"];
    args.extend_from_slice(extra);
    TestDaemon::start_with(&args, &[])
}

/// Uploads the `replay` plugin and makes a job of it reaching `server`.
async fn replay_job(daemon: &TestDaemon, server: &Server, extra: Value) {
    daemon.upload("replay", "replay").await;
    let mut body = json!({
        "name": "replay",
        "plugin": "replay",
        "http_allow": [format!("127.0.0.1:{}", server.port)],
        "input": {"url": server.url()},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    daemon.create_job(body).await;
}

async fn replay(daemon: &TestDaemon, run_id: &str, body: Option<Value>) -> common::Answer {
    daemon
        .call(Method::POST, &format!("/v1/runs/{run_id}/replay"), body)
        .await
}

fn output(run: &Value) -> Value {
    serde_json::from_str(run["output"].as_str().expect("an output")).expect("the plugin answers JSON")
}

#[tokio::test]
async fn a_recorded_run_replays_identically_after_the_server_and_kv_changed_and_nothing_reaches_the_server() {
    let daemon = daemon(&[]);
    let server = Server::start("first answer").await;
    replay_job(&daemon, &server, json!({"record": true})).await;
    let recorded = daemon.run_job("replay", None).await;
    assert_eq!(recorded["status"], "succeeded", "{recorded}");
    let seen = output(&recorded);
    assert_eq!(
        (seen["count"].clone(), seen["body"].clone()),
        (json!(0), json!("first answer"))
    );
    let record = &recorded["record"];
    assert_eq!(record["replayable"], true, "{recorded}");
    assert!(record["calls"].as_u64().unwrap() >= 4, "clocks, kv and http: {record}");
    assert!(record["bytes"].as_u64().unwrap() > 86, "{record}");

    // The world moves on: the server answers otherwise, kv holds another count.
    *server.body.lock().unwrap() = "second answer".to_string();
    let second = daemon.run_job("replay", None).await;
    assert_eq!(output(&second)["count"], 1);
    assert_eq!(output(&second)["body"], "second answer");
    let hits = server.hits();

    let answer = replay(&daemon, recorded["id"].as_str().unwrap(), None).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["identical"], true, "{}", answer.body);
    assert_eq!(answer.body["diverged_at"], Value::Null);
    assert_eq!(answer.body["error"], Value::Null);
    // The same clocks, random bytes, kv and response as the recorded run.
    assert_eq!(answer.body["output"], recorded["output"]);
    assert_eq!(server.hits(), hits, "no request reached the server during the replay");
    // The replay wrote nothing: the count is the second run's.
    let third = daemon.run_job("replay", None).await;
    assert_eq!(output(&third)["count"], 2, "{third}");
    assert_ne!(output(&third)["random"], seen["random"], "runs draw fresh random bytes");
}

/// What a run with this secure seed draws for `get-random-bytes(16)` then
/// `get-random-u64`, as wasmtime-wasi 48 draws them: a `u32` per byte, then
/// a `u64`. Should wasmtime-wasi draw otherwise, this no longer matches,
/// and the tape's random ABI must change.
fn drawn(seed: [u8; 32]) -> (String, u64) {
    use chacha20::rand_core::{Rng, SeedableRng};
    let mut generator = chacha20::ChaCha20Rng::from_seed(seed);
    let bytes: String = (0..16).map(|_| format!("{:02x}", generator.next_u32() as u8)).collect();
    (bytes, generator.next_u64())
}

#[tokio::test]
async fn the_random_bytes_a_recorded_run_draws_follow_from_the_seeds_on_its_tape() {
    let daemon = daemon(&[]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({"record": true})).await;
    let run = daemon.run_job("replay", None).await;
    let id = run["id"].as_str().unwrap();
    let export = daemon.call(Method::GET, &format!("/v1/runs/{id}/record"), None).await;
    let tape = base64::engine::general_purpose::STANDARD
        .decode(export.body["tape"].as_str().unwrap())
        .unwrap();
    assert_eq!(&tape[..4], b"SCTP");
    let seed: [u8; 32] = tape[6..38].try_into().unwrap();
    let (bytes, number) = drawn(seed);
    let seen = output(&run);
    assert_eq!(seen["random"], bytes, "the random ABI changed: {seen}");
    assert_eq!(seen["random_u64"], number);
}

#[tokio::test]
async fn a_new_version_replayed_against_an_old_record_diverges_at_the_call_it_changed() {
    let daemon = daemon(&[]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({})).await;
    // A manual run recorded by asking, though the job does not record.
    let recorded = daemon
        .call(Method::POST, "/v1/jobs/replay/run?wait=60s&record=true", None)
        .await
        .body;
    assert_eq!(recorded["record"]["replayable"], true, "{recorded}");
    // Version 2 reads another kv key.
    let uploaded = daemon.upload_bytes("replay", common::plugin_bytes("replay_v2")).await;
    assert_eq!(uploaded.body["version"], 2, "{}", uploaded.body);
    let id = recorded["id"].as_str().unwrap();
    let answer = replay(&daemon, id, Some(json!({"plugin": "replay@2"}))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["identical"], false);
    let diverged = &answer.body["diverged_at"];
    assert_eq!(diverged["expected"], "kv.get \"counter\"", "{}", answer.body);
    assert_eq!(diverged["got"], "kv.get \"counter-v2\"");
    let call = diverged["call"].as_u64().unwrap();
    assert!(call >= 2, "after the clock reads: {call}");
    // The version it ran replays identically still.
    let same = replay(&daemon, id, Some(json!({"plugin": "replay@1"}))).await;
    assert_eq!(same.body["identical"], true, "{}", same.body);
    // A plugin that does not exist, or a body that is not the shape.
    let missing = replay(&daemon, id, Some(json!({"plugin": "replay@9"}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    let wrong = replay(&daemon, id, Some(json!({"plugins": "replay@2"}))).await;
    assert_eq!((wrong.status, wrong.code()), (StatusCode::BAD_REQUEST, "invalid_field"));
    assert!(wrong.message().contains("plugins"), "{}", wrong.message());
}

#[tokio::test]
async fn an_unrecorded_run_answers_409_and_an_unknown_one_404() {
    let daemon = daemon(&[]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({})).await;
    let run = daemon.run_job("replay", None).await;
    assert_eq!(
        run.get("record"),
        None,
        "a run that does not record shows no record: {run}"
    );
    let id = run["id"].as_str().unwrap();
    let answer = replay(&daemon, id, None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "run_not_recorded")
    );
    assert!(answer.message().contains("record"), "{}", answer.message());
    let export = daemon.call(Method::GET, &format!("/v1/runs/{id}/record"), None).await;
    assert_eq!(
        (export.status, export.code()),
        (StatusCode::CONFLICT, "run_not_recorded")
    );
    let unknown = replay(&daemon, "01kbgz8m7yq3d5v2c8n6r4t1wz", None).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "run_not_found")
    );
    // A recorded run whose plugin was deleted since.
    let recorded = daemon
        .call(Method::POST, "/v1/jobs/replay/run?wait=60s&record=true", None)
        .await
        .body;
    assert_eq!(
        daemon.call(Method::DELETE, "/v1/jobs/replay", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(
        daemon
            .call(Method::DELETE, "/v1/plugins/replay", None)
            .await
            .status
            .is_success()
    );
    let gone = replay(&daemon, recorded["id"].as_str().unwrap(), None).await;
    assert_eq!(
        (gone.status, gone.code()),
        (StatusCode::CONFLICT, "plugin_gone"),
        "{}",
        gone.body
    );
}

#[tokio::test]
async fn a_run_past_the_record_cap_is_kept_but_not_replayable() {
    let daemon = daemon(&["--max-record-bytes", "2KiB"]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({"record": true})).await;
    let small = daemon.run_job("replay", None).await;
    assert_eq!(small["record"]["replayable"], true, "{small}");
    // 500 more kv reads, clock reads and random draws: past 2 KiB of tape.
    let big = daemon
        .run_job("replay", Some(json!({"url": server.url(), "calls": 500})))
        .await;
    assert_eq!(big["status"], "succeeded", "the cap does not fail the run: {big}");
    let record = &big["record"];
    assert_eq!(record["replayable"], false, "{big}");
    assert_eq!(record["bytes"], 0);
    assert!(record["calls"].as_u64().unwrap() > 1000, "{record}");
    let answer = replay(&daemon, big["id"].as_str().unwrap(), None).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::CONFLICT, "record_incomplete")
    );
    assert!(answer.message().contains("max_record_bytes"), "{}", answer.message());
}

#[tokio::test]
async fn a_tape_counts_in_the_tenants_run_bytes() {
    let daemon = daemon(&[]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({"record": true})).await;
    let run = daemon
        .run_job("replay", Some(json!({"url": server.url(), "calls": 300})))
        .await;
    let tape = run["record"]["bytes"].as_u64().unwrap();
    assert!(tape > 3000, "300 rounds of calls: {run}");
    let tenant = daemon.call(Method::GET, "/v1/tenants/default", None).await.body;
    let used = tenant["usage"]["run_bytes"].as_u64().unwrap();
    let output = run["output_size"].as_u64().unwrap();
    assert!(
        used > tape + output,
        "the tape is charged with the run: {used} <= {tape} + {output}"
    );
}

#[tokio::test]
async fn secrets_never_reach_a_record_and_a_replay_sees_their_marker() {
    // Sent in a header as it is, and form-encoded in a URL's query.
    const VALUE: &str = "s3cr3t token/value+1";
    const ENCODED: &str = "s3cr3t+token%2Fvalue%2B1";
    let daemon = daemon(&[]);
    let put = daemon
        .call(Method::PUT, "/v1/secrets/token", Some(json!({"value": VALUE})))
        .await;
    assert!(put.status.is_success(), "{}", put.body);
    let server = Server::start("answer").await;
    let input = json!({"url": server.url(), "secret": "token"});
    replay_job(
        &daemon,
        &server,
        json!({"record": true, "secrets": ["token"], "input": input}),
    )
    .await;
    let recorded = daemon.run_job("replay", None).await;
    assert_eq!(output(&recorded)["secret_present"], true, "{recorded}");
    assert_eq!(server.hits(), 1);
    let id = recorded["id"].as_str().unwrap();
    let export = daemon.call(Method::GET, &format!("/v1/runs/{id}/record"), None).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    let text = export.body.to_string();
    assert!(!text.contains(VALUE), "the record holds the secret: {text}");
    assert!(!text.contains(ENCODED), "the record holds the secret, encoded: {text}");
    let tape = base64::engine::general_purpose::STANDARD
        .decode(export.body["tape"].as_str().unwrap())
        .unwrap();
    for form in [VALUE, ENCODED] {
        assert!(
            !tape.windows(form.len()).any(|window| window == form.as_bytes()),
            "{form}"
        );
    }
    // Replayed, the plugin holds the marker as the secret: the same calls,
    // the marker encoded in the URL as the value was.
    let answer = replay(&daemon, id, None).await;
    assert_eq!(answer.body["identical"], true, "{}", answer.body);
}

#[tokio::test]
async fn replays_have_places_of_their_own_and_a_tenant_holds_at_most_its_concurrent_runs() {
    let daemon = daemon(&[]);
    let token = daemon
        .new_tenant("one", json!({"quotas": {"concurrent_runs": 1}}))
        .await;
    let upload = daemon
        .upload_bytes_as(&token, "spin", common::plugin_bytes("spin"))
        .await;
    assert!(upload.status.is_success(), "{}", upload.body);
    let job = json!({"name": "spin", "plugin": "spin", "record": true, "limits": {"timeout": "2s"}});
    let created = daemon.call_as(Some(&token), Method::POST, "/v1/jobs", Some(job)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let run = daemon
        .call_as(Some(&token), Method::POST, "/v1/jobs/spin/run?wait=30s", None)
        .await
        .body;
    assert_eq!(run["error"]["kind"], "timeout", "{run}");
    let path = format!("/v1/runs/{}/replay", run["id"].as_str().unwrap());
    // One replay spins for its 2 s; a second of the same tenant is refused at once.
    let first = tokio::spawn({
        let (url, token, path) = (daemon.url.clone(), token.clone(), path.clone());
        async move {
            let answer = reqwest::Client::new()
                .post(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            (answer.status(), answer.json::<Value>().await.unwrap())
        }
    });
    let mut refused = None;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let second = daemon.call_as(Some(&token), Method::POST, &path, None).await;
        if second.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(second);
            break;
        }
    }
    let refused = refused.expect("a second replay of the tenant was refused while the first went on");
    assert_eq!(refused.code(), "too_many_replays", "{}", refused.body);
    // Meanwhile runs go on as ever.
    daemon.job_with("hello", "hello", json!({})).await;
    let hello = daemon.run_job("hello", Some(json!({"name": "x"}))).await;
    assert_eq!(hello["status"], "succeeded", "{hello}");
    let (status, body) = first.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["error"]["kind"], "timeout",
        "the replay timed out as the run did: {body}"
    );
}

#[tokio::test]
async fn a_record_exported_replays_offline_and_the_cli_replays_a_run() {
    let daemon = daemon(&[]);
    let server = Server::start("answer").await;
    replay_job(&daemon, &server, json!({"record": true})).await;
    let recorded = daemon.run_job("replay", None).await;
    let id = recorded["id"].as_str().unwrap();
    // `sandcron replay RUN_ID` against the daemon.
    let replayed: Value = serde_json::from_str(&daemon.cli(&["replay", id])).expect("JSON");
    assert_eq!(replayed["identical"], true, "{replayed}");
    // `sandcron run record RUN_ID -o FILE`, then `sandcron exec --replay FILE plugin.wasm`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("run.record.json");
    daemon.cli(&["record", id, "-o", file.to_str().unwrap()]);
    let hits = server.hits();
    let plugin = common::plugin("replay");
    let offline = common::offline_cli(
        &["exec", "--replay", file.to_str().unwrap(), plugin.to_str().unwrap()],
        &[],
    );
    let stdout = common::text(&offline.stdout);
    assert!(offline.status.success(), "{stdout}{}", common::text(&offline.stderr));
    let offline: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(offline["identical"], true, "{offline}");
    assert_eq!(offline["output"], recorded["output"]);
    assert_eq!(server.hits(), hits, "the offline replay reached nothing either");
    // Another version offline diverges, and the command says so by its status.
    let v2 = common::plugin("replay_v2");
    let diverged = common::offline_cli(&["exec", "--replay", file.to_str().unwrap(), v2.to_str().unwrap()], &[]);
    assert_eq!(diverged.status.code(), Some(1), "{}", common::text(&diverged.stdout));
    let diverged: Value = serde_json::from_str(&common::text(&diverged.stdout)).expect("JSON");
    assert_eq!(diverged["diverged_at"]["got"], "kv.get \"counter-v2\"");
}
