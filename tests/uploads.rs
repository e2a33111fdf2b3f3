//! Black-box tests of hostile plugin uploads: refused uploads cost neither
//! memory nor disk, deleted plugins leave nothing behind, compiled plugins
//! in memory stay within their byte budget, and one tenant cannot tell that
//! another uploaded the same bytes.

mod common;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{TestDaemon, plugin_bytes};
use reqwest::{Method, StatusCode};
use sandcron::store::{PluginStorage, SledStore};
use serde_json::{Value, json};

/// Appends `value` as unsigned LEB128.
fn leb128(bytes: &mut Vec<u8>, mut value: usize) {
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return;
        }
        bytes.push(low | 0x80);
    }
}

/// A built plugin made distinct by a custom section (id 0, its size, the
/// name's length and the name, then `index` and `padding` zero bytes): a
/// valid component with its own digest.
fn padded(plugin: &str, index: u64, padding: usize) -> Vec<u8> {
    const NAME: &[u8] = b"sandcron-test";
    let mut content = Vec::new();
    leb128(&mut content, NAME.len());
    content.extend_from_slice(NAME);
    content.extend_from_slice(&index.to_le_bytes());
    content.resize(content.len() + padding, 0);
    let mut bytes = plugin_bytes(plugin);
    bytes.push(0);
    leb128(&mut bytes, content.len());
    bytes.extend_from_slice(&content);
    bytes
}

/// [`padded`] without padding.
fn distinct(plugin: &str, index: u64) -> Vec<u8> {
    padded(plugin, index, 0)
}

/// The daemon's resident memory (VmRSS), bytes.
fn rss(daemon: &TestDaemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).expect("reading /proc");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line");
    kib << 10
}

/// Bytes the files under `dir` take on disk (as `du` counts them).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("reading the data dir").flatten() {
        let Ok(metadata) = entry.metadata() else {
            continue; // sled removed it meanwhile
        };
        total += if metadata.is_dir() {
            disk_use(&entry.path())
        } else {
            metadata.blocks() * 512
        };
    }
    total
}

/// What the stopped daemon's store keeps of plugins.
fn storage(daemon: &TestDaemon) -> PluginStorage {
    if !common::on_postgres() {
        let store = SledStore::open(&daemon.data_dir().join("db")).expect("opening the stopped daemon's store");
        return store.plugin_storage().expect("counting the plugin trees");
    }
    // On PostgreSQL: versions and bytes in the database, code on the node.
    let database = common::postgres::server().database_for(daemon.data_dir());
    let counted = common::postgres::server().psql(
        &database,
        "SELECT (SELECT count(*) FROM plugin_versions) || ' ' || (SELECT count(*) FROM plugin_bytes)
             || ' ' || (SELECT coalesce(sum(octet_length(bytes)), 0) FROM plugin_bytes)",
    );
    let counts: Vec<u64> = counted
        .split_whitespace()
        .map(|count| count.parse().expect("a count"))
        .collect();
    let code = code_dir(daemon);
    let code_bytes: u64 = std::fs::read_dir(&code)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.metadata().ok())
                .map(|metadata| metadata.len())
                .sum()
        })
        .unwrap_or(0);
    PluginStorage {
        versions: counts[0] as usize,
        digests: counts[1] as usize,
        artifacts: code_files(daemon),
        bytes: counts[2] + code_bytes,
    }
}

/// Where a daemon keeps compiled code: in sled's plugin files, or the
/// node's own folder on PostgreSQL.
fn code_dir(daemon: &TestDaemon) -> std::path::PathBuf {
    if common::on_postgres() {
        daemon.data_dir().join("compiled").join("code")
    } else {
        daemon.data_dir().join("db").join("plugins").join("code")
    }
}

const MIB: u64 = 1 << 20;

#[tokio::test]
async fn over_quota_uploads_leave_memory_and_disk_flat() {
    let mut daemon = TestDaemon::start();
    let token = daemon
        .new_tenant("hostile", json!({"quotas": {"plugin_bytes": 1024}}))
        .await;
    // A small refused upload first (a component header and padding), so
    // the request path's own buffers are counted in the baseline.
    let mut small = b"\0asm\x0d\0\x01\0".to_vec();
    small.resize(2048, 0);
    let tiny = daemon.upload_bytes_as(&token, "tiny", small).await;
    assert_eq!(tiny.status, StatusCode::FORBIDDEN, "{}", tiny.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (memory_before, disk_before) = (rss(&daemon), disk_use(daemon.data_dir()));

    for index in 0..30 {
        let refused = daemon
            .upload_bytes_as(&token, &format!("p{index}"), distinct("noop", index))
            .await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "quota_exceeded"),
            "{}",
            refused.body
        );
        assert!(refused.message().contains("plugin_bytes"), "{}", refused.message());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (memory_after, disk_after) = (rss(&daemon), disk_use(daemon.data_dir()));
    // Compiling and keeping each took ~0.6 MiB of memory and ~0.4 MiB of
    // disk (30 of them: ~19 MiB and ~12 MiB).
    let grown = memory_after.saturating_sub(memory_before);
    assert!(
        grown < 6 * MIB,
        "the daemon grew by {} KiB over 30 refused uploads",
        grown >> 10
    );
    let written = disk_after.saturating_sub(disk_before);
    assert!(
        written < 2 * MIB,
        "the data dir grew by {} KiB over 30 refused uploads",
        written >> 10
    );
    let logs = daemon.logs();
    assert!(
        !logs.iter().any(|line| line.contains("plugin compiled")),
        "a refused upload was compiled: {logs:#?}"
    );
    daemon.kill();
    assert_eq!(storage(&daemon), PluginStorage::default(), "nothing of them is stored");
}

#[tokio::test]
async fn upload_delete_cycles_leave_the_data_dir_within_a_bound() {
    let mut daemon = TestDaemon::start();
    let token = daemon
        .new_tenant("cycler", json!({"quotas": {"plugin_bytes": "3MiB"}}))
        .await;
    // Another tenant's plugin with the bytes of the first cycle's: the
    // bytes and code they share stay while it uses them. Each cycle's
    // component carries 1 MiB of custom section, so what a deleted one
    // leaves behind shows.
    let cycle_bytes = |cycle| padded("hello", cycle, MIB as usize);
    let shared = cycle_bytes(0);
    let kept = daemon.upload_bytes("keeper", shared.clone()).await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);

    for cycle in 0..20 {
        let uploaded = daemon.upload_bytes_as(&token, "tool", cycle_bytes(cycle)).await;
        assert_eq!(uploaded.status, StatusCode::CREATED, "cycle {cycle}: {}", uploaded.body);
        let deleted = daemon
            .call_as(Some(&token), Method::DELETE, "/v1/plugins/tool", None)
            .await;
        assert_eq!(
            deleted.status,
            StatusCode::NO_CONTENT,
            "cycle {cycle}: {}",
            deleted.body
        );
    }
    let shown = daemon.call(Method::GET, "/v1/tenants/cycler", None).await;
    assert_eq!(shown.body["usage"]["plugin_bytes"], 0, "{}", shown.body);
    // Each cycle kept the bytes and code of a deleted plugin, ~3.5 MiB of
    // data dir (71 MiB for 20); what stays is the keeper's 1.6 MiB.
    let after_cycles = disk_use(daemon.data_dir());
    assert!(
        after_cycles < 8 * MIB,
        "the data dir holds {} KiB after 20 upload/delete cycles",
        after_cycles >> 10
    );

    daemon.restart();
    let after_restart = disk_use(daemon.data_dir());
    assert!(
        after_restart < 8 * MIB,
        "the data dir holds {} KiB after a restart",
        after_restart >> 10
    );
    // The shared plugin still runs, from its kept code.
    daemon
        .create_job(json!({"name": "greet", "plugin": "keeper", "input": {"name": "Ada"}}))
        .await;
    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");
    daemon.kill();
    let kept = storage(&daemon);
    assert_eq!(
        (kept.versions, kept.digests, kept.artifacts),
        (1, 1, 1),
        "only the keeper's bytes and code stay: {kept:?}"
    );
    assert!(kept.bytes < 4 * MIB, "{kept:?}");
}

/// One sample of the daemon's scrape.
async fn sample(daemon: &TestDaemon, name: &str) -> u64 {
    daemon.metric(name).await as u64
}

#[tokio::test]
async fn compiled_plugins_past_the_cache_budget_are_dropped_and_loaded_again() {
    // The sizes the cache counts, from a daemon with room for both.
    let sizes = {
        let daemon = TestDaemon::start();
        daemon.upload("noop", "noop").await;
        let noop = sample(&daemon, "sandcron_plugin_cache_bytes").await;
        daemon.upload("hello", "hello").await;
        let both = sample(&daemon, "sandcron_plugin_cache_bytes").await;
        assert!(noop > 0 && both > noop, "{noop} then {both}");
        (noop, both - noop)
    };
    // Room for either, not both.
    let budget = sizes.0.max(sizes.1);
    let daemon = TestDaemon::start_with(&["--plugin-cache-bytes", &budget.to_string()], &[]);
    daemon.job_with("echo", "noop", json!({"input": "hi"})).await;
    daemon
        .job_with("greet", "hello", json!({"input": {"name": "Ada"}}))
        .await;
    assert_eq!(
        sample(&daemon, "sandcron_plugin_cache_bytes").await,
        sizes.1,
        "uploading hello pushed noop out"
    );
    let from_artifact = "sandcron_plugin_cache_total{result=\"artifact\"}";
    let from_memory = "sandcron_plugin_cache_total{result=\"memory\"}";

    let run = daemon.run_job("echo", None).await;
    assert_eq!(
        (run["status"].as_str(), run["output"].as_str()),
        (Some("succeeded"), Some("\"hi\"")),
        "{run}"
    );
    assert_eq!(
        sample(&daemon, from_artifact).await,
        1,
        "noop was loaded again from its artifact"
    );
    assert_eq!(sample(&daemon, "sandcron_plugin_cache_bytes").await, sizes.0);

    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");
    assert_eq!(sample(&daemon, from_artifact).await, 2, "and then hello");
    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");
    assert_eq!(sample(&daemon, from_artifact).await, 2);
    assert_eq!(
        sample(&daemon, from_memory).await,
        1,
        "the second run found it in memory"
    );
    assert_eq!(
        sample(&daemon, "sandcron_plugin_cache_total{result=\"compiled\"}").await,
        2,
        "nothing compiled again"
    );
}

#[tokio::test]
async fn concurrent_first_runs_of_a_metered_plugin_compile_it_once() {
    let daemon = TestDaemon::start();
    daemon.upload("hello", "hello").await;
    // Three jobs, as runs of one job take turns.
    for name in ["first", "second", "third"] {
        daemon
            .create_job(json!({"name": name, "plugin": "hello", "limits": {"fuel": 1_000_000_000u64}}))
            .await;
    }
    let paths = ["first", "second", "third"].map(|name| format!("/v1/jobs/{name}/run?wait=60s"));
    let (first, second, third) = tokio::join!(
        daemon.call(Method::POST, &paths[0], None),
        daemon.call(Method::POST, &paths[1], None),
        daemon.call(Method::POST, &paths[2], None),
    );
    for answer in [first, second, third] {
        assert_eq!(answer.body["status"], "succeeded", "{}", answer.body);
    }
    assert_eq!(
        sample(&daemon, "sandcron_plugin_cache_total{result=\"compiled\"}").await,
        2,
        "one compile at upload, one for the metered engines"
    );
}

/// Every timestamp in a plugin version's view.
fn instants(view: &Value) -> Vec<(String, DateTime<Utc>)> {
    view.as_object()
        .expect("a version object")
        .iter()
        .filter_map(|(field, value)| {
            let instant = DateTime::parse_from_rfc3339(value.as_str()?).ok()?;
            Some((field.clone(), instant.with_timezone(&Utc)))
        })
        .collect()
}

#[tokio::test]
async fn another_tenants_identical_upload_does_not_reveal_the_first_ones_compile() {
    let daemon = TestDaemon::start();
    let first = daemon.new_tenant("first", json!({})).await;
    let second = daemon.new_tenant("second", json!({})).await;
    let bytes = distinct("hello", 7);
    let uploaded = daemon.upload_bytes_as(&first, "tool", bytes.clone()).await;
    assert_eq!(uploaded.status, StatusCode::CREATED, "{}", uploaded.body);
    tokio::time::sleep(Duration::from_millis(50)).await;

    let before_second = Utc::now();
    let again = daemon.upload_bytes_as(&second, "tool", bytes).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    let listed = daemon
        .call_as(Some(&second), Method::GET, "/v1/plugins/tool", None)
        .await;
    for view in [&again.body, &listed.body["versions"][0]] {
        for field in ["compiled_at", "compile_ms"] {
            assert!(view.get(field).is_none(), "{field} is the shared artifact's: {view}");
        }
        let instants = instants(view);
        assert!(instants.iter().any(|(field, _)| field == "uploaded_at"), "{view}");
        for (field, instant) in instants {
            assert!(
                instant >= before_second,
                "{field} {instant} is from before the second tenant's upload ({before_second}): {view}"
            );
        }
    }
}

#[tokio::test]
async fn an_upload_its_length_puts_over_the_quota_is_refused_before_its_body_arrives() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let daemon = TestDaemon::start();
    let token = daemon
        .new_tenant("hostile", json!({"quotas": {"plugin_bytes": 1024}}))
        .await;
    let address = daemon.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    // 10 MiB announced, none of it sent: the answer cannot wait for it.
    let head = format!(
        "POST /v1/plugins?name=big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: {}\r\n\r\n\0asm",
        10 << 20
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer (and no close) within 5 s: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.contains("\"quota_exceeded\""), "{answer}");
    // A length the size limit refuses is told apart, before the body too.
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/plugins?name=huge HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\n\r\n",
        daemon.token,
        1u64 << 40
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "no answer within 5 s: {answer:?}");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"body_too_large\""), "{answer}");
    // A tenant within its quota still uploads, and the same bytes again
    // (which take no more room) are given back even past it.
    let bytes = plugin_bytes("noop");
    let roomy = daemon
        .new_tenant("roomy", json!({"quotas": {"plugin_bytes": bytes.len()}}))
        .await;
    let first = daemon.upload_bytes_as(&roomy, "noop", bytes.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = daemon.upload_bytes_as(&roomy, "noop", bytes).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
}

#[tokio::test]
async fn a_job_that_asks_for_fuel_gets_its_plugins_metered_code_before_its_first_run() {
    let daemon = TestDaemon::start();
    daemon.upload("hello", "hello").await;
    let compiled = "sandcron_plugin_cache_total{result=\"compiled\"}";
    let at_upload = daemon.metric(compiled).await;
    assert_eq!(at_upload, 1.0, "the upload compiles the unmetered code");
    daemon
        .create_job(json!({"name": "metered", "plugin": "hello", "limits": {"fuel": 1_000_000_000u64}}))
        .await;
    // Compiled in the background once the job exists, not by its first run.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while daemon.metric(compiled).await < 2.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the metered code was not compiled"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = daemon.run_job("metered", Some(json!({"name": "fuel"}))).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(daemon.metric(compiled).await, 2.0, "the run compiled nothing");
}

#[tokio::test]
async fn the_same_new_bytes_uploaded_at_once_by_two_tenants_are_compiled_once() {
    let daemon = TestDaemon::start();
    let (first, second) = (
        daemon.new_tenant("first", json!({})).await,
        daemon.new_tenant("second", json!({})).await,
    );
    let bytes = distinct("hello", 7);
    let (a, b) = tokio::join!(
        daemon.upload_bytes_as(&first, "shared", bytes.clone()),
        daemon.upload_bytes_as(&second, "shared", bytes.clone()),
    );
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(b.status, StatusCode::CREATED, "{}", b.body);
    assert_eq!(
        daemon.metric("sandcron_plugin_cache_total{result=\"compiled\"}").await,
        1.0
    );
}

/// The compiled code files of a daemon's data dir.
fn code_files(daemon: &TestDaemon) -> usize {
    std::fs::read_dir(code_dir(daemon))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| !entry.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn compiled_code_past_the_disk_budget_is_deleted_oldest_first_and_compiled_again_when_needed() {
    // Room on disk for the newest code only.
    let mut daemon = TestDaemon::start_with(&["--artifact-cache-bytes", "1"], &[]);
    daemon.job_with("echo", "noop", json!({"input": "hi"})).await;
    assert_eq!(code_files(&daemon), 1);
    daemon
        .job_with("greet", "hello", json!({"input": {"name": "Ada"}}))
        .await;
    assert_eq!(code_files(&daemon), 1, "noop's code went for hello's");
    let compiled = "sandcron_plugin_cache_total{result=\"compiled\"}";
    assert_eq!(daemon.metric(compiled).await, 2.0);
    // In memory still: runs do not need the disk.
    assert_eq!(daemon.run_job("echo", None).await["output"], "\"hi\"");
    assert_eq!(daemon.metric(compiled).await, 2.0);
    // After a restart noop is compiled again from its bytes, and its code
    // now takes the place of hello's.
    daemon.restart();
    assert_eq!(daemon.run_job("echo", None).await["output"], "\"hi\"");
    assert_eq!(daemon.metric(compiled).await, 1.0, "compiled again after the restart");
    assert_eq!(code_files(&daemon), 1);
    assert_eq!(daemon.run_job("greet", None).await["output"], "Hello, Ada!");
}
