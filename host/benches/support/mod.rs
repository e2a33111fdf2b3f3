//! What the benches share: test plugins built on demand, and (in `daemon`)
//! an in-process daemon with its figures.

use std::path::Path;

// Each bench uses the part of these helpers it needs.
#[allow(dead_code)]
pub mod daemon;

/// A manual run of a job "job" with in-memory kv, these limits and input,
/// recording or replaying as `tape` says.
#[allow(dead_code)]
pub fn run_request(
    limits: sandcron::model::run::RunLimits,
    input: &[u8],
    tape: sandcron::sandbox::TapeMode,
) -> sandcron::sandbox::RunRequest {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use sandcron::sandbox::{Capabilities, MemoryKeyValue, RunContext, RunRequest};
    RunRequest {
        context: RunContext {
            tenant: "default".into(),
            job_id: "job".into(),
            job_name: "job".into(),
            run_id: "run".into(),
            attempt: 1,
            trigger: sandcron::model::Trigger::Manual,
            scheduled_at_ms: 0,
        },
        input: input.to_vec(),
        limits,
        capabilities: Capabilities::kv_only(Arc::new(MemoryKeyValue::default())),
        cancel: Arc::new(AtomicBool::new(false)),
        log: sandcron::sandbox::log::LogSink::new(limits.logs),
        tape,
    }
}

/// Builds `plugins/testing/noop` for wasm32-wasip2 and returns its bytes.
pub fn noop_bytes() -> Vec<u8> {
    plugin_bytes("noop")
}

/// Builds the plugin crate `name` of `plugins/` for wasm32-wasip2 and
/// returns its component's bytes.
pub fn plugin_bytes(name: &str) -> Vec<u8> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let status = std::process::Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .expect("rustup");
    assert!(status.success());
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", name])
        .current_dir(&plugins)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo build of the plugins");
    assert!(status.success());
    let file = format!("target/wasm32-wasip2/release/{}.wasm", name.replace('-', "_"));
    std::fs::read(plugins.join(file)).unwrap_or_else(|error| panic!("{name}.wasm: {error}"))
}
