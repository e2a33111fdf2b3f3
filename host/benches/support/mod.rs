//! What the benches share: the noop plugin, built on demand.

use std::path::Path;

/// Builds `plugins/testing/noop` for wasm32-wasip2 and returns its bytes.
pub fn noop_bytes() -> Vec<u8> {
    let plugins = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins");
    let status = std::process::Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status()
        .expect("rustup");
    assert!(status.success());
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet", "-p", "noop"])
        .current_dir(&plugins)
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .expect("cargo build of the plugins");
    assert!(status.success());
    std::fs::read(plugins.join("target/wasm32-wasip2/release/noop.wasm")).expect("noop.wasm")
}
