//! What a plugin project is: its folder, language and name, how `build`
//! tells them from the marker file `new` writes (or, without one, from the
//! files that are there), and which names a project may take.

use std::path::{Path, PathBuf};

use super::error::AuthoringError;
use super::lang::Lang;
use super::marker::{MARKER, Marker};

/// The longest project name (as a plugin name it must fit the daemon's).
const MAX_NAME_LEN: usize = 64;

/// A project found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Its root folder.
    pub dir: PathBuf,
    /// Its language.
    pub lang: Lang,
    /// Its name: the marker's, else the package's or the folder's.
    pub name: String,
}

/// Checks a name for `sandcron new`: it becomes a Cargo package, an npm
/// package and the plugin's name, so it keeps to what all of them take.
pub fn check_project_name(name: &str) -> Result<(), AuthoringError> {
    let refuse = |reason: String| {
        Err(AuthoringError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty".to_string());
    }
    if name.len() > MAX_NAME_LEN {
        return refuse(format!("it is longer than {MAX_NAME_LEN} characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return refuse("it must start with a lowercase letter".to_string());
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_')))
    {
        return refuse(format!("it contains {bad:?}; use a-z, 0-9, '-' and '_'"));
    }
    // Names a Cargo package or a Python import may not take, and the SDK's own.
    const RESERVED: &[&str] = &[
        "std",
        "core",
        "alloc",
        "test",
        "proc_macro",
        "proc-macro",
        "sandcron",
        "sandcron-plugin",
        "sandcron_plugin",
        "wit_world",
        "self",
        "super",
        "crate",
    ];
    if RESERVED.contains(&name) {
        return refuse("it is the name of a library the project uses".to_string());
    }
    Ok(())
}

/// The project in `dir`: from its marker file, else from what is there
/// (`Cargo.toml`: Rust, `package.json`: JavaScript, `app.py`: Python).
pub fn detect(dir: &Path) -> Result<Project, AuthoringError> {
    let marker_path = dir.join(MARKER);
    match std::fs::read_to_string(&marker_path) {
        Ok(text) => {
            let marker: Marker = toml::from_str(&text).map_err(|error| AuthoringError::BadMarker {
                path: marker_path.clone(),
                reason: error.message().to_string(),
            })?;
            // The name names the component file: keep it to a plugin's name.
            crate::model::validate::check_name(&marker.name).map_err(|reason| AuthoringError::BadMarker {
                path: marker_path.clone(),
                reason: format!("name {reason}"),
            })?;
            return Ok(Project {
                dir: dir.to_path_buf(),
                lang: marker.lang,
                name: marker.name,
            });
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            return Err(AuthoringError::Io {
                what: format!("reading {}", marker_path.display()),
                error,
            });
        }
    }
    let lang = if dir.join("Cargo.toml").is_file() {
        Lang::Rust
    } else if dir.join("package.json").is_file() {
        Lang::Js
    } else if dir.join("app.py").is_file() {
        Lang::Python
    } else {
        return Err(AuthoringError::NotAProject(dir.to_path_buf()));
    };
    let name = match lang {
        Lang::Js => package_json_name(dir),
        Lang::Rust | Lang::Python => None,
    }
    .or_else(|| folder_name(dir))
    .unwrap_or_else(|| "plugin".to_string());
    Ok(Project {
        dir: dir.to_path_buf(),
        lang,
        name,
    })
}

/// The `name` of `dir/package.json`, if it is one a plugin may have.
fn package_json_name(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("package.json")).ok()?;
    let package: serde_json::Value = serde_json::from_str(&text).ok()?;
    let name = package["name"].as_str()?;
    crate::model::validate::check_name(name).ok()?;
    Some(name.to_string())
}

/// The folder's own name, if it is one a plugin may have.
fn folder_name(dir: &Path) -> Option<String> {
    let absolute = std::path::absolute(dir).ok()?;
    let name = absolute.file_name()?.to_str()?.to_string();
    crate::model::validate::check_name(&name).ok()?;
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temp dir");
        for (path, text) in files {
            std::fs::write(dir.path().join(path), text).expect("writing a file");
        }
        dir
    }

    #[test]
    fn the_marker_decides_the_language_over_the_files_present() {
        let dir = project_with(&[
            (
                MARKER,
                &Marker {
                    name: "greeter".to_string(),
                    lang: Lang::Python,
                }
                .to_toml(),
            ),
            ("package.json", r#"{"name": "other"}"#),
        ]);
        let project = detect(dir.path()).expect("a project");
        assert_eq!(project.lang, Lang::Python);
        assert_eq!(project.name, "greeter");
    }

    #[test]
    fn without_a_marker_the_files_present_decide() {
        let rust = project_with(&[("Cargo.toml", "[package]\nname = \"x\"\n"), ("app.py", "")]);
        assert_eq!(detect(rust.path()).expect("a project").lang, Lang::Rust);
        let js = project_with(&[("package.json", r#"{"name": "my-job"}"#), ("app.py", "")]);
        let js = detect(js.path()).expect("a project");
        assert_eq!((js.lang, js.name.as_str()), (Lang::Js, "my-job"));
        let python = project_with(&[("app.py", "")]);
        assert_eq!(detect(python.path()).expect("a project").lang, Lang::Python);
    }

    #[test]
    fn a_folder_without_a_project_says_so() {
        let empty = project_with(&[("notes.txt", "")]);
        assert!(matches!(detect(empty.path()), Err(AuthoringError::NotAProject(_))));
    }

    #[test]
    fn a_marker_with_an_unknown_language_is_an_error_naming_the_file() {
        let dir = project_with(&[(MARKER, "name = \"x\"\nlang = \"cobol\"\n")]);
        let error = detect(dir.path()).expect_err("cobol is no language of ours");
        assert!(matches!(error, AuthoringError::BadMarker { .. }), "{error}");
        assert!(error.to_string().contains(MARKER), "{error}");
    }

    #[test]
    fn a_marker_whose_name_is_no_plugin_name_is_refused() {
        let dir = project_with(&[(MARKER, "name = \"../../elsewhere\"\nlang = \"js\"\n")]);
        let error = detect(dir.path()).expect_err("a name with slashes");
        assert!(matches!(error, AuthoringError::BadMarker { .. }), "{error}");
    }

    #[test]
    fn project_names_keep_to_what_cargo_npm_and_the_daemon_take() {
        for good in ["hello", "nightly-report", "job_2", "a"] {
            assert!(check_project_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Hello",
            "2fast",
            "-x",
            "my job",
            "über",
            "a.b",
            "std",
            "sandcron-plugin",
        ] {
            assert!(check_project_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_project_name(&"x".repeat(65)).is_err());
    }
}
