//! The compilers `sandcron build` drives, installed on first use into a
//! cache folder at pinned versions: componentize-py in a virtualenv (wheels
//! only, checked against their hashes), componentize-qjs in an npm prefix
//! (from a lock file with integrity hashes, no install scripts), and for
//! Rust the machine's cargo with the `wasm32-wasip2` target added. Each
//! toolchain's folder is named after its pins, so a new pin installs fresh,
//! and is installed into a temporary folder renamed into place when
//! complete, so an interrupted install is never used.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::error::AuthoringError;

/// The componentize-py release Python plugins are built with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-qjs release JavaScript plugins are built with.
pub const COMPONENTIZE_QJS: &str = "0.4.5";

/// What pip installs (hashes of every platform's wheel).
const PYTHON_REQUIREMENTS: &str = include_str!("../../../../sdk/python/toolchain/requirements.txt");
/// What npm installs: the manifest and its lock file (integrity hashes).
const JS_MANIFEST: &str = include_str!("../../../../sdk/js/toolchain/package.json");
const JS_LOCK: &str = include_str!("../../../../sdk/js/toolchain/package-lock.json");

/// Runs componentize-py from its virtualenv's interpreter: the console
/// script's `#!` line names the temporary folder it was installed in.
const COMPONENTIZE_PY_MAIN: &str =
    "import sys; from componentize_py import script; sys.argv[0] = 'componentize-py'; sys.exit(script())";

/// The oldest Python componentize-py runs on.
const MIN_PYTHON: (u32, u32) = (3, 9);
/// The oldest Node.js componentize-qjs runs on.
const MIN_NODE: u32 = 18;

/// A temporary install folder older than this was left by an install that
/// was stopped; it is removed.
const STALE_INSTALL: Duration = Duration::from_secs(3600);

/// Where toolchains are installed: the given folder (`--cache-dir`,
/// `SANDCRON_CACHE_DIR`), else `$XDG_CACHE_HOME/sandcron` (an absolute
/// path, as the XDG spec asks), else `$HOME/.cache/sandcron`.
pub fn cache_dir(
    given: Option<&Path>,
    xdg_cache_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Result<PathBuf, AuthoringError> {
    if let Some(given) = given.filter(|path| !path.as_os_str().is_empty()) {
        return Ok(given.to_path_buf());
    }
    if let Some(xdg) = xdg_cache_home.map(Path::new).filter(|path| path.is_absolute()) {
        return Ok(xdg.join("sandcron"));
    }
    match home.filter(|home| !home.is_empty()) {
        Some(home) => Ok(Path::new(home).join(".cache").join("sandcron")),
        None => Err(AuthoringError::NoCacheDir),
    }
}

/// A step that may take a while: a spinner on a terminal, a line otherwise.
pub struct Step {
    what: String,
    started: Instant,
    spinner: Option<indicatif::ProgressBar>,
}

impl Step {
    /// Shows that `what` has started (on standard error).
    pub fn start(what: impl Into<String>) -> Step {
        let what = what.into();
        let spinner = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let spinner = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
                spinner.set_style(style);
            }
            spinner.set_message(what.clone());
            spinner.enable_steady_tick(Duration::from_millis(120));
            Some(spinner)
        } else {
            eprintln!("{what}...");
            None
        };
        Step {
            what,
            started: Instant::now(),
            spinner,
        }
    }

    /// Replaces the spinner with a line saying how long the step took.
    pub fn done(self) {
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
        eprintln!("{}: done in {:.1} s", self.what, self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        // A failed step leaves no spinner behind its error message.
        if let Some(spinner) = &self.spinner {
            spinner.finish_and_clear();
        }
    }
}

/// A program `build` needs, and what to install when it is missing.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The command.
    pub program: &'static str,
    /// What to install to get it.
    pub install: &'static str,
}

pub const PYTHON: Tool = Tool {
    program: "python3",
    install: "Python 3.9 or later with its venv module (Debian/Ubuntu: apt install python3 python3-venv; macOS: brew install python)",
};
pub const NODE: Tool = Tool {
    program: "node",
    install: "Node.js 18 or later (https://nodejs.org, or your system's nodejs package)",
};
pub const NPM: Tool = Tool {
    program: "npm",
    install: "npm, which comes with Node.js (Debian/Ubuntu: apt install npm)",
};
pub const CARGO: Tool = Tool {
    program: "cargo",
    install: "Rust from https://rustup.rs",
};
pub const RUSTUP: Tool = Tool {
    program: "rustup",
    install: "rustup (https://rustup.rs), or the wasm32-wasip2 target for your Rust some other way",
};

/// Runs `command` to its end with its output captured: a missing program
/// is `MissingTool`, a failure `CommandFailed` with what it printed.
pub fn run(command: &mut Command, tool: Tool, what: &str) -> Result<Output, AuthoringError> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| spawn_error(error, tool, what))?;
    if !output.status.success() {
        return Err(AuthoringError::CommandFailed {
            what: what.to_string(),
            status: output.status.to_string(),
            output: printed(&output),
        });
    }
    Ok(output)
}

/// A program that could not be started: missing, or something else.
pub fn spawn_error(error: std::io::Error, tool: Tool, what: &str) -> AuthoringError {
    if error.kind() == std::io::ErrorKind::NotFound {
        AuthoringError::MissingTool {
            program: tool.program,
            install: tool.install,
        }
    } else {
        AuthoringError::Io {
            what: format!("{what}: starting {}", tool.program),
            error,
        }
    }
}

/// What a command printed (standard output, then standard error), its
/// last 60 lines at most.
fn printed(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Installs into `target` through a temporary sibling folder that is
/// renamed into place once `install` succeeded; if another build finished
/// the same install first, its folder is kept.
fn install_atomically(
    target: &Path,
    install: impl FnOnce(&Path) -> Result<(), AuthoringError>,
) -> Result<(), AuthoringError> {
    let io = |what: String| move |error| AuthoringError::Io { what, error };
    let parent = target.parent().ok_or(AuthoringError::NoCacheDir)?;
    std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
    let name = target
        .file_name()
        .and_then(OsStr::to_str)
        .ok_or(AuthoringError::NoCacheDir)?;
    let temporary = parent.join(format!(
        ".{name}.partial-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir(&temporary).map_err(io(format!("creating {}", temporary.display())))?;
    if let Err(error) = install(&temporary) {
        let _ = std::fs::remove_dir_all(&temporary);
        return Err(error);
    }
    match std::fs::rename(&temporary, target) {
        Ok(()) => Ok(()),
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(&temporary);
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_dir_all(&temporary);
            Err(io(format!("moving the install to {}", target.display()))(error))
        }
    }
}

/// Removes temporary folders of stopped installs of `target`: those whose
/// process is gone (where /proc tells) or older than an hour.
fn remove_stale_installs(target: &Path) {
    let (Some(parent), Some(name)) = (target.parent(), target.file_name().and_then(OsStr::to_str)) else {
        return;
    };
    let prefix = format!(".{name}.partial-");
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|file| file.strip_prefix(&prefix)) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|metadata| metadata.modified())
            .is_ok_and(|modified| modified.elapsed().is_ok_and(|age| age > STALE_INSTALL));
        let pid = rest.split('-').next().unwrap_or_default();
        let gone = Path::new("/proc/self").exists() && !Path::new("/proc").join(pid).exists();
        if old || gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The interpreter of a virtualenv.
fn venv_python(venv: &Path) -> PathBuf {
    if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    }
}

/// `(major, minor)` of a version line such as `v20.20.2` or `3.11`.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next().map_or(Some(0), |minor| minor.parse().ok())?;
    Some((major, minor))
}

/// componentize-py, ready to run.
pub struct Componentize {
    python: PathBuf,
}

impl Componentize {
    /// A command running componentize-py (arguments follow).
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.python);
        command.args(["-c", COMPONENTIZE_PY_MAIN]);
        command
    }
}

/// The machine's Python, checked to be recent enough: the command and
/// its `major.minor`.
fn base_python() -> Result<(&'static str, (u32, u32)), AuthoringError> {
    let probe = "import sys; print('%d.%d' % sys.version_info[:2])";
    for program in ["python3", "python"] {
        let tool = Tool { program, ..PYTHON };
        match run(Command::new(program).args(["-c", probe]), tool, "checking Python") {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output.stdout).into_owned();
                let version = parse_version(&text).unwrap_or((0, 0));
                if version < MIN_PYTHON {
                    return Err(AuthoringError::OldTool {
                        program,
                        found: text.trim().to_string(),
                        install: PYTHON.install,
                    });
                }
                return Ok((program, version));
            }
            Err(AuthoringError::MissingTool { .. }) => continue,
            Err(error) => return Err(error),
        }
    }
    Err(AuthoringError::MissingTool {
        program: PYTHON.program,
        install: PYTHON.install,
    })
}

/// componentize-py, installed first if this cache has none for the
/// machine's Python.
pub fn componentize_py(cache: &Path) -> Result<Componentize, AuthoringError> {
    let (program, (major, minor)) = base_python()?;
    let venv = cache.join(format!("componentize-py-{COMPONENTIZE_PY}-python{major}.{minor}"));
    let python = venv_python(&venv);
    remove_stale_installs(&venv);
    // A virtualenv whose base Python went away is installed again.
    if venv.is_dir() && !python.exists() {
        let _ = std::fs::remove_dir_all(&venv);
    }
    if !venv.is_dir() {
        let step = Step::start(format!(
            "installing componentize-py {COMPONENTIZE_PY} (first use; a 17 MB download) into {}",
            venv.display()
        ));
        install_atomically(&venv, |temporary| {
            let tool = Tool { program, ..PYTHON };
            run(
                Command::new(program).args(["-m", "venv"]).arg(temporary),
                tool,
                "creating a Python virtualenv",
            )?;
            let requirements = temporary.join("requirements.txt");
            std::fs::write(&requirements, PYTHON_REQUIREMENTS).map_err(|error| AuthoringError::Io {
                what: format!("writing {}", requirements.display()),
                error,
            })?;
            let python = venv_python(temporary);
            let pip = Tool {
                program: "pip",
                install: PYTHON.install,
            };
            run(
                Command::new(&python)
                    .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
                    .args(["--only-binary=:all:", "--require-hashes", "-r"])
                    .arg(&requirements)
                    // A user-wide `--user` default cannot install into a virtualenv.
                    .env_remove("PIP_USER"),
                pip,
                &format!("installing componentize-py {COMPONENTIZE_PY} with pip"),
            )?;
            run(
                Command::new(&python).args(["-c", "import componentize_py"]),
                pip,
                "loading componentize-py",
            )?;
            Ok(())
        })?;
        step.done();
    }
    Ok(Componentize { python })
}

/// componentize-qjs, ready to run with node.
pub struct Qjs {
    script: PathBuf,
}

impl Qjs {
    /// A command running componentize-qjs (arguments follow).
    pub fn command(&self) -> Command {
        let mut command = Command::new(NODE.program);
        command.arg(&self.script);
        command
    }
}

/// Checks that a program answers `--version` with at least `major`.
fn check_major(tool: Tool, major: u32) -> Result<(), AuthoringError> {
    let output = run(
        Command::new(tool.program).arg("--version"),
        tool,
        &format!("checking {}", tool.program),
    )?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    match parse_version(&text) {
        Some((found, _)) if found >= major => Ok(()),
        _ => Err(AuthoringError::OldTool {
            program: tool.program,
            found: text,
            install: tool.install,
        }),
    }
}

/// componentize-qjs, installed first if this cache has none.
pub fn componentize_qjs(cache: &Path) -> Result<Qjs, AuthoringError> {
    check_major(NODE, MIN_NODE)?;
    let prefix = cache.join(format!("componentize-qjs-{COMPONENTIZE_QJS}"));
    let script = |prefix: &Path| prefix.join("node_modules/componentize-qjs/bin/componentize-qjs");
    remove_stale_installs(&prefix);
    if !prefix.is_dir() {
        let npm = Command::new(NPM.program).arg("--version").stdin(Stdio::null()).output();
        if let Err(error) = npm {
            return Err(spawn_error(error, NPM, "checking npm"));
        }
        let step = Step::start(format!(
            "installing componentize-qjs {COMPONENTIZE_QJS} (first use; a 13 MB download) into {}",
            prefix.display()
        ));
        install_atomically(&prefix, |temporary| {
            for (file, text) in [("package.json", JS_MANIFEST), ("package-lock.json", JS_LOCK)] {
                let path = temporary.join(file);
                std::fs::write(&path, text).map_err(|error| AuthoringError::Io {
                    what: format!("writing {}", path.display()),
                    error,
                })?;
            }
            run(
                Command::new(NPM.program)
                    .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"])
                    .current_dir(temporary),
                NPM,
                &format!("installing componentize-qjs {COMPONENTIZE_QJS} with npm"),
            )?;
            if !script(temporary).is_file() {
                return Err(AuthoringError::CommandFailed {
                    what: format!("installing componentize-qjs {COMPONENTIZE_QJS} with npm"),
                    status: "success".to_string(),
                    output: "npm installed no node_modules/componentize-qjs/bin/componentize-qjs".to_string(),
                });
            }
            Ok(())
        })?;
        step.done();
    }
    Ok(Qjs {
        script: script(&prefix),
    })
}

/// Makes sure the Rust toolchain that builds `project` has the
/// `wasm32-wasip2` target, adding it with rustup when it is missing.
pub fn rust_target(project: &Path) -> Result<(), AuthoringError> {
    let rustc = Tool {
        program: "rustc",
        install: CARGO.install,
    };
    let sysroot = run(
        Command::new(rustc.program)
            .args(["--print", "sysroot"])
            .current_dir(project),
        rustc,
        "finding the Rust toolchain",
    )?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        return Ok(());
    }
    let step = Step::start("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    run(
        Command::new(RUSTUP.program)
            .args(["target", "add", "wasm32-wasip2"])
            .current_dir(project),
        RUSTUP,
        "adding the wasm32-wasip2 target",
    )?;
    step.done();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_dir_is_the_given_one_then_xdgs_then_homes() {
        let given = Path::new("/srv/cache");
        let xdg = OsStr::new("/var/xdg");
        let home = OsStr::new("/home/ada");
        assert_eq!(cache_dir(Some(given), Some(xdg), Some(home)).expect("a dir"), given);
        assert_eq!(
            cache_dir(None, Some(xdg), Some(home)).expect("a dir"),
            Path::new("/var/xdg/sandcron")
        );
        assert_eq!(
            cache_dir(None, None, Some(home)).expect("a dir"),
            Path::new("/home/ada/.cache/sandcron")
        );
        // The XDG spec ignores a relative XDG_CACHE_HOME, and empty is unset.
        assert_eq!(
            cache_dir(Some(Path::new("")), Some(OsStr::new("relative")), Some(home)).expect("a dir"),
            Path::new("/home/ada/.cache/sandcron")
        );
        assert!(matches!(cache_dir(None, None, None), Err(AuthoringError::NoCacheDir)));
    }

    #[test]
    fn versions_read_from_what_the_tools_print() {
        assert_eq!(parse_version("v20.20.2\n"), Some((20, 20)));
        assert_eq!(parse_version("3.11"), Some((3, 11)));
        assert_eq!(parse_version("18"), Some((18, 0)));
        assert_eq!(parse_version("Python"), None);
        assert!(parse_version("3.8").is_some_and(|version| version < MIN_PYTHON));
    }

    #[test]
    fn the_pins_are_the_versions_the_lock_files_install() {
        assert!(PYTHON_REQUIREMENTS.contains(&format!("componentize-py=={COMPONENTIZE_PY} ")));
        // One hash per platform wheel, so pip takes none it cannot check.
        assert_eq!(PYTHON_REQUIREMENTS.matches("--hash=sha256:").count(), 5);
        let lock: serde_json::Value = serde_json::from_str(JS_LOCK).expect("the lock file is JSON");
        let package = &lock["packages"]["node_modules/componentize-qjs"];
        assert_eq!(package["version"], COMPONENTIZE_QJS);
        assert!(
            package["integrity"]
                .as_str()
                .is_some_and(|hash| hash.starts_with("sha512-"))
        );
        let manifest: serde_json::Value = serde_json::from_str(JS_MANIFEST).expect("package.json is JSON");
        assert_eq!(manifest["dependencies"]["componentize-qjs"], COMPONENTIZE_QJS);
    }

    #[test]
    fn a_failed_install_leaves_nothing_to_be_used_next_time() {
        let cache = tempfile::tempdir().expect("a temp dir");
        let target = cache.path().join("componentize-qjs-0.0.0");
        let failed = install_atomically(&target, |temporary| {
            std::fs::write(temporary.join("half"), "written").expect("writing");
            Err(AuthoringError::NoCacheDir)
        });
        assert!(failed.is_err());
        assert!(!target.exists());
        assert_eq!(
            std::fs::read_dir(cache.path()).expect("listing").count(),
            0,
            "no temporary folder left"
        );

        install_atomically(&target, |temporary| {
            std::fs::write(temporary.join("whole"), "written").expect("writing");
            Ok(())
        })
        .expect("an install");
        assert!(target.join("whole").is_file());
        // A second install of the same (a concurrent build) keeps the first.
        install_atomically(&target, |temporary| {
            std::fs::write(temporary.join("second"), "written").expect("writing");
            Ok(())
        })
        .expect("a second install");
        assert!(target.join("whole").is_file() && !target.join("second").exists());
        assert_eq!(std::fs::read_dir(cache.path()).expect("listing").count(), 1);
    }

    #[test]
    fn the_folder_of_an_install_whose_process_is_gone_is_removed() {
        let cache = tempfile::tempdir().expect("a temp dir");
        let target = cache.path().join("componentize-qjs-0.0.0");
        // No process has an id this high (pid_max is at most 2^22).
        let killed = cache.path().join(".componentize-qjs-0.0.0.partial-99999999-0000abcd");
        let running = cache.path().join(format!(
            ".componentize-qjs-0.0.0.partial-{}-0000abcd",
            std::process::id()
        ));
        let other = cache.path().join(".componentize-py-0.0.0.partial-99999999-0000abcd");
        for dir in [&killed, &running, &other] {
            std::fs::create_dir(dir).expect("creating a folder");
        }
        remove_stale_installs(&target);
        if Path::new("/proc/self").exists() {
            assert!(!killed.exists());
        }
        assert!(running.exists() && other.exists());
    }
}
