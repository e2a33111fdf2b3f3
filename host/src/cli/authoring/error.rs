//! Why `sandcron new` or `sandcron build` could not do their work: the one
//! error every authoring step returns.

use std::path::PathBuf;

use super::marker::MARKER;

/// Why `new` or `build` could not do their work.
#[derive(Debug, thiserror::Error)]
pub enum AuthoringError {
    /// A program the build needs is not on PATH.
    #[error("{program} was not found on PATH: install {install}")]
    MissingTool {
        program: &'static str,
        install: &'static str,
    },
    /// A program the build needs is too old.
    #[error("{program} is too old ({found}): install {install}")]
    OldTool {
        program: &'static str,
        found: String,
        install: &'static str,
    },
    /// A compiler or installer failed; what it printed follows.
    #[error("{what} failed ({status}){}", if output.is_empty() { String::new() } else { format!(":\n{output}") })]
    CommandFailed {
        what: String,
        status: String,
        output: String,
    },
    /// The folder holds no project `build` knows.
    #[error(
        "{} holds no sandcron plugin project (no {}, Cargo.toml, package.json or app.py); make one with `sandcron new NAME --lang rust|python|js`",
        .0.display(),
        MARKER
    )]
    NotAProject(PathBuf),
    /// The marker file does not say a language and a name.
    #[error("{}: {reason}", path.display())]
    BadMarker { path: PathBuf, reason: String },
    /// `new` was pointed at a folder with files in it.
    #[error("{} is not empty: `sandcron new` writes only into a new or empty folder (--dir)", .0.display())]
    NotEmpty(PathBuf),
    /// The name cannot name a project.
    #[error("{name:?} cannot name a plugin project: {reason}")]
    InvalidName { name: String, reason: String },
    /// The component imports what the daemon does not link.
    #[error(
        "{} imports what sandcron does not provide, so the daemon would refuse it: {}. A plugin may import sandcron:plugin/* and the WASI 0.2 interfaces io, clocks, random, cli, filesystem and sockets (not wasi:http: use the SDK's http)",
        path.display(),
        imports.join(", ")
    )]
    UnlinkedImports { path: PathBuf, imports: Vec<String> },
    /// The build's output is not a job component.
    #[error("{} is not a sandcron plugin: {reason}", path.display())]
    BadComponent { path: PathBuf, reason: String },
    /// cargo succeeded but built no `.wasm` library.
    #[error("cargo built no .wasm library: is crate-type = [\"cdylib\"] in Cargo.toml's [lib]?")]
    NoArtifact,
    /// There is nowhere to install toolchains.
    #[error("there is no folder for the toolchains: set SANDCRON_CACHE_DIR (or HOME)")]
    NoCacheDir,
    /// A file or folder could not be read or written.
    #[error("{what}: {error}")]
    Io { what: String, error: std::io::Error },
}
