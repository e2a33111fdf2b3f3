//! `sandcron build` for each language: which compiler runs, with which
//! arguments, and where the component lands.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::error::AuthoringError;
use super::project::Project;
use super::toolchains::{self, CARGO, COMPONENTIZE_PY, COMPONENTIZE_QJS, NODE, PYTHON, Step};

/// Where a Python or JavaScript build writes the component:
/// `<project>/build/<name>.wasm`.
fn component_path(project: &Project) -> Result<PathBuf, AuthoringError> {
    let build = std::path::absolute(project.dir.join("build")).map_err(|error| AuthoringError::Io {
        what: format!("finding {}", project.dir.display()),
        error,
    })?;
    std::fs::create_dir_all(&build).map_err(|error| AuthoringError::Io {
        what: format!("creating {}", build.display()),
        error,
    })?;
    Ok(build.join(format!("{}.wasm", project.name)))
}

/// Builds a Python project (`app.py` with the `sandcron` package) with
/// componentize-py.
pub fn python(project: &Project, cache: &Path) -> Result<PathBuf, AuthoringError> {
    let componentize = toolchains::componentize_py(cache)?;
    let output = component_path(project)?;
    let step = Step::start(format!(
        "building {} with componentize-py {COMPONENTIZE_PY}",
        project.name
    ));
    toolchains::run(
        componentize
            .command()
            .args(["-d", "wit", "-w", "job", "componentize", "app", "-o"])
            .arg(&output)
            .current_dir(&project.dir),
        PYTHON,
        "building with componentize-py",
    )?;
    step.done();
    Ok(output)
}

/// The JavaScript entry file: package.json's `main`, else `index.js`.
fn js_entry(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|package| package["main"].as_str().map(str::to_string))
        .unwrap_or_else(|| "index.js".to_string())
}

/// Builds a JavaScript project with componentize-qjs (QuickJS, the
/// synchronous runtime: the daemon does not run component-model async).
pub fn js(project: &Project, cache: &Path) -> Result<PathBuf, AuthoringError> {
    let qjs = toolchains::componentize_qjs(cache)?;
    let output = component_path(project)?;
    let entry = js_entry(&project.dir);
    let step = Step::start(format!(
        "building {} ({entry}) with componentize-qjs {COMPONENTIZE_QJS}",
        project.name
    ));
    toolchains::run(
        qjs.command()
            .args(["--wit", "wit", "--world", "job", "--js", &entry, "--sync", "-o"])
            .arg(&output)
            .current_dir(&project.dir),
        NODE,
        "building with componentize-qjs",
    )?;
    step.done();
    Ok(output)
}

/// Builds a Rust project with `cargo build --release --target
/// wasm32-wasip2`; cargo's own progress and errors go to standard error,
/// and its JSON messages say where the library landed (wherever the
/// target folder is).
pub fn rust(project: &Project) -> Result<PathBuf, AuthoringError> {
    toolchains::rust_target(&project.dir)?;
    eprintln!(
        "building {} with cargo build --release --target wasm32-wasip2",
        project.name
    );
    let what = "building with cargo";
    let output = Command::new(CARGO.program)
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(&project.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|error| toolchains::spawn_error(error, CARGO, what))?;
    if !output.status.success() {
        return Err(AuthoringError::CommandFailed {
            what: what.to_string(),
            status: output.status.to_string(),
            output: String::new(),
        });
    }
    let manifest = std::fs::canonicalize(project.dir.join("Cargo.toml")).ok();
    cdylib_artifact(&String::from_utf8_lossy(&output.stdout), manifest.as_deref()).ok_or(AuthoringError::NoArtifact)
}

/// The `.wasm` of the cdylib of the package at `manifest` among cargo's
/// JSON messages (else of the last cdylib built).
fn cdylib_artifact(messages: &str, manifest: Option<&Path>) -> Option<PathBuf> {
    let mut found = None;
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"));
        if message["reason"] != "compiler-artifact" || !is_cdylib {
            continue;
        }
        let wasm = message["filenames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str())
            .find(|name| name.ends_with(".wasm"))
            .map(PathBuf::from);
        let Some(wasm) = wasm else {
            continue;
        };
        let ours = message["manifest_path"]
            .as_str()
            .is_some_and(|path| Some(Path::new(path)) == manifest);
        if ours {
            return Some(wasm);
        }
        found = Some(wasm);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_own_library_is_taken_from_cargos_messages() {
        let messages = [
            r#"{"reason":"compiler-artifact","manifest_path":"/p/sdk/Cargo.toml","target":{"kind":["lib"]},"filenames":["/t/libsdk.rlib"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/p/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/wasm32-wasip2/release/hello.wasm"]}"#,
            r#"{"reason":"compiler-artifact","manifest_path":"/q/Cargo.toml","target":{"kind":["cdylib"]},"filenames":["/t/other.wasm"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
            "not JSON",
        ]
        .join("\n");
        assert_eq!(
            cdylib_artifact(&messages, Some(Path::new("/p/Cargo.toml"))),
            Some(PathBuf::from("/t/wasm32-wasip2/release/hello.wasm"))
        );
        assert_eq!(
            cdylib_artifact(&messages, Some(Path::new("/elsewhere/Cargo.toml"))),
            Some(PathBuf::from("/t/other.wasm"))
        );
        assert_eq!(cdylib_artifact("", None), None);
    }

    #[test]
    fn the_javascript_entry_is_package_mains_else_index_js() {
        let dir = tempfile::tempdir().expect("a temp dir");
        assert_eq!(js_entry(dir.path()), "index.js");
        std::fs::write(dir.path().join("package.json"), r#"{"main": "src/job.js"}"#).expect("writing");
        assert_eq!(js_entry(dir.path()), "src/job.js");
    }
}
