//! Builds the daemon's built-in plugins (the crates under `plugins/std/`)
//! for wasm32-wasip2 with a nested cargo, and copies each component into
//! `OUT_DIR`, where `src/plugin/builtin.rs` embeds it with `include_bytes!`.
//!
//! The nested build is the plugins workspace's own: its lock file, its
//! release profile, its target dir (`plugins/target`, which the test
//! harness and the README's quickstart build into too, so the SDK compiles
//! once). What the outer cargo tells a build script about its own build
//! (target and build dirs, flags, jobserver, wrappers such as clippy's,
//! profile and target) is removed from the nested cargo's environment, so
//! none of it leaks into a build for another target.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

/// The target the plugins are built for.
const TARGET: &str = "wasm32-wasip2";

/// The built-in plugins' crates (each becomes `<crate, - as _>.wasm`).
const BUILTINS: [&str; 1] = ["std-http"];

/// The files whose change builds the plugins again (from the repository root).
const INPUTS: [&str; 6] = [
    "plugins/std",
    "plugins/sdk",
    "wit",
    "plugins/Cargo.toml",
    "plugins/Cargo.lock",
    "plugins/.cargo",
];

fn main() {
    let manifest_dir = PathBuf::from(required_env("CARGO_MANIFEST_DIR"));
    let repository = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();
    let plugins = repository.join("plugins");
    let out_dir = PathBuf::from(required_env("OUT_DIR"));
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", repository.join(input).display());
    }
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    ensure_target(&rustc);
    let target_dir = plugins.join("target");
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cargo
        .current_dir(&plugins)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for name in BUILTINS {
        cargo.args(["-p", name]);
    }
    // The outer build's -j, without its jobserver (which is not ours).
    if let Some(jobs) = std::env::var_os("NUM_JOBS") {
        cargo.arg("-j").arg(jobs);
    }
    clean_environment(&mut cargo);
    // Its intermediate files beside its outputs: a build dir shared with
    // the outer build would wait on the outer build's lock for ever.
    cargo.env("CARGO_BUILD_BUILD_DIR", &target_dir).env("RUSTC", &rustc);
    // Only `cargo:` lines may reach this script's stdout.
    cargo.stdout(Stdio::from(std::io::stderr()));
    let status = cargo
        .status()
        .unwrap_or_else(|error| fail(&format!("could not run cargo to build the built-in plugins: {error}")));
    if !status.success() {
        fail(&format!(
            "building the built-in plugins ({}) in {} failed ({status}); the errors are above",
            BUILTINS.join(", "),
            plugins.display()
        ));
    }
    for name in BUILTINS {
        let file = format!("{}.wasm", name.replace('-', "_"));
        let built = target_dir.join(TARGET).join("release").join(&file);
        if let Err(error) = std::fs::copy(&built, out_dir.join(&file)) {
            fail(&format!("copying {} into OUT_DIR: {error}", built.display()));
        }
    }
}

fn required_env(name: &str) -> OsString {
    std::env::var_os(name).unwrap_or_else(|| fail(&format!("cargo did not set {name} for the build script")))
}

/// Makes sure the compiler has the wasm32-wasip2 standard library, adding
/// it with rustup when it is missing.
fn ensure_target(rustc: &OsStr) {
    if target_installed(rustc) {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; running `rustup target add {TARGET}`");
    let added = Command::new("rustup")
        .args(["target", "add", TARGET])
        .stdout(Stdio::from(std::io::stderr()))
        .status();
    if added.as_ref().is_ok_and(ExitStatus::success) && target_installed(rustc) {
        return;
    }
    let why = match added {
        Ok(status) => format!("`rustup target add {TARGET}` failed ({status})"),
        Err(error) => format!("rustup could not be run ({error})"),
    };
    fail(&format!(
        "the Rust target {TARGET} is not installed and could not be added: {why}. \
         Run `rustup target add {TARGET}` and build again: the daemon embeds its built-in plugins, \
         which are built for that target"
    ));
}

/// Does the compiler's sysroot hold a standard library for [`TARGET`]?
fn target_installed(rustc: &OsStr) -> bool {
    let Ok(output) = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
    else {
        return false;
    };
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    output.status.success()
        && std::fs::read_dir(Path::new(&libdir)).is_ok_and(|mut entries| {
            entries.any(|entry| entry.is_ok_and(|entry| entry.file_name().to_string_lossy().starts_with("libstd-")))
        })
}

/// Removes from the nested cargo's environment what the outer cargo set
/// for its own build. Kept: `CARGO_HOME` and the settings of how cargo
/// reaches registries (`CARGO_NET_*`, `CARGO_HTTP_*`, `CARGO_REGISTRIES_*`,
/// `CARGO_REGISTRY_*`) and talks (`CARGO_TERM_*`); rustup's own variables,
/// so the same toolchain is used.
fn clean_environment(cargo: &mut Command) {
    const KEPT_PREFIXES: [&str; 6] = [
        "CARGO_HOME",
        "CARGO_NET_",
        "CARGO_HTTP_",
        "CARGO_REGISTRIES_",
        "CARGO_REGISTRY_",
        "CARGO_TERM_",
    ];
    const REMOVED: [&str; 17] = [
        "CARGO",
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "MAKEFLAGS",
        "MFLAGS",
        "OUT_DIR",
        "TARGET",
        "HOST",
        "PROFILE",
        "OPT_LEVEL",
        "DEBUG",
        "NUM_JOBS",
    ];
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        let outer = (name.starts_with("CARGO_") && !KEPT_PREFIXES.iter().any(|kept| name.starts_with(kept)))
            || name.starts_with("__CARGO")
            || REMOVED.contains(&name);
        if outer {
            cargo.env_remove(name);
        }
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
