//! The files `sandcron new` writes, built into the binary so a project
//! stands alone: the template of each language (`templates/<lang>/`), the
//! SDK (`plugins/sdk` for Rust, `sdk/python`, `sdk/js`) and the contract
//! (`wit/plugin.wit`), each from its one source in the repository.

use std::path::{Path, PathBuf};

use super::error::AuthoringError;
use super::lang::Lang;
use super::marker::{MARKER, Marker};

/// The plugin contract.
const WIT: &str = include_str!("../../../../wit/plugin.wit");

/// One file of a template: where it goes in the project and its text, in
/// which `{{name}}` and `{{crate_name}}` are replaced.
struct Template {
    path: &'static str,
    text: &'static str,
}

macro_rules! template {
    ($path:literal => $source:literal) => {
        Template {
            path: $path,
            text: include_str!(concat!("../../../../", $source)),
        }
    };
}

const RUST: &[Template] = &[
    template!("Cargo.toml" => "templates/rust/Cargo.toml"),
    template!("Cargo.lock" => "templates/rust/Cargo.lock"),
    template!(".cargo/config.toml" => "templates/rust/cargo-config.toml"),
    template!(".gitignore" => "templates/rust/gitignore"),
    template!("README.md" => "templates/rust/README.md"),
    template!("src/lib.rs" => "templates/rust/src/lib.rs"),
    template!("sdk/sandcron-plugin/Cargo.toml" => "templates/rust/sdk/sandcron-plugin/Cargo.toml"),
    template!("sdk/sandcron-plugin/src/lib.rs" => "plugins/sdk/src/lib.rs"),
];

const PYTHON: &[Template] = &[
    template!("app.py" => "templates/python/app.py"),
    template!(".gitignore" => "templates/python/gitignore"),
    template!("README.md" => "templates/python/README.md"),
    template!("sandcron/__init__.py" => "sdk/python/sandcron/__init__.py"),
    template!("sandcron/py.typed" => "sdk/python/sandcron/py.typed"),
];

const JS: &[Template] = &[
    template!("index.js" => "templates/js/index.js"),
    template!("package.json" => "templates/js/package.json"),
    template!(".gitignore" => "templates/js/gitignore"),
    template!("README.md" => "templates/js/README.md"),
    template!("sandcron.js" => "sdk/js/sandcron.js"),
    template!("sandcron.d.ts" => "sdk/js/sandcron.d.ts"),
];

/// The files of a new `lang` project called `name`: relative path and text.
pub fn render(lang: Lang, name: &str) -> Vec<(PathBuf, String)> {
    let templates = match lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    // The Rust library's file name (`target/.../<crate_name>.wasm`).
    let crate_name = name.replace('-', "_");
    let mut files: Vec<(PathBuf, String)> = templates
        .iter()
        .map(|template| {
            let text = template
                .text
                .replace("{{name}}", name)
                .replace("{{crate_name}}", &crate_name);
            (PathBuf::from(template.path), text)
        })
        .collect();
    files.push((PathBuf::from("wit/plugin.wit"), WIT.to_string()));
    let marker = Marker {
        name: name.to_string(),
        lang,
    };
    files.push((PathBuf::from(MARKER), marker.to_toml()));
    files
}

/// Writes `files` under `dir`, which must not exist or be empty (nothing
/// of the user's is ever overwritten).
pub fn write(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), AuthoringError> {
    let io = |what: String| move |error| AuthoringError::Io { what, error };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(AuthoringError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(format!("reading {}", dir.display()))(error)),
    }
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(format!("creating {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(io(format!("writing {}", path.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];

    fn file<'a>(files: &'a [(PathBuf, String)], path: &str) -> &'a str {
        files
            .iter()
            .find(|(name, _)| name == Path::new(path))
            .map(|(_, text)| text.as_str())
            .unwrap_or_else(|| panic!("no {path}"))
    }

    #[test]
    fn every_placeholder_is_filled_with_the_projects_name() {
        for lang in LANGS {
            let files = render(lang, "nightly-report");
            for (path, text) in &files {
                assert!(!text.contains("{{"), "{lang}: {} keeps a placeholder", path.display());
            }
            let marker: Marker = toml::from_str(file(&files, MARKER)).expect("the marker is TOML");
            assert_eq!((marker.name.as_str(), marker.lang), ("nightly-report", lang));
            assert_eq!(file(&files, "wit/plugin.wit"), WIT);
        }
        let rust = render(Lang::Rust, "nightly-report");
        assert!(file(&rust, "Cargo.toml").contains("name = \"nightly-report\""));
        assert!(file(&rust, "README.md").contains("release/nightly_report.wasm"));
        let js = render(Lang::Js, "nightly-report");
        let package: serde_json::Value = serde_json::from_str(file(&js, "package.json")).expect("JSON");
        assert_eq!(package["name"], "nightly-report");
    }

    #[test]
    fn each_project_carries_its_sdk_and_the_contract() {
        let rust = render(Lang::Rust, "hello");
        assert!(file(&rust, "sdk/sandcron-plugin/src/lib.rs").contains("macro_rules! json_job"));
        // The SDK finds the contract two folders up, as in the repository.
        assert!(file(&rust, "sdk/sandcron-plugin/src/lib.rs").contains("path: \"../../wit\""));
        assert!(file(&rust, "Cargo.toml").contains("path = \"sdk/sandcron-plugin\""));
        let python = render(Lang::Python, "hello");
        assert!(file(&python, "sandcron/__init__.py").contains("class WitWorld"));
        assert!(file(&python, "app.py").contains("from sandcron import"));
        let js = render(Lang::Js, "hello");
        assert!(file(&js, "sandcron.js").contains("export function job"));
        assert!(file(&js, "sandcron.d.ts").contains("export function job"));
        assert!(file(&js, "index.js").contains("from './sandcron.js'"));
    }

    #[test]
    fn the_rust_sdk_written_into_a_project_asks_for_the_crates_the_repositorys_does() {
        let dependencies = |text: &str| -> Vec<String> {
            let manifest: toml::Table = toml::from_str(text).expect("a Cargo.toml");
            manifest["dependencies"]
                .as_table()
                .expect("dependencies")
                .keys()
                .cloned()
                .collect()
        };
        let repository = include_str!("../../../../plugins/sdk/Cargo.toml");
        let project = render(Lang::Rust, "hello");
        assert_eq!(
            dependencies(repository),
            dependencies(file(&project, "sdk/sandcron-plugin/Cargo.toml"))
        );
        let wit_bindgen = |text: &str| -> String {
            let manifest: toml::Table = toml::from_str(text).expect("a Cargo.toml");
            manifest["dependencies"]["wit-bindgen"].to_string()
        };
        assert_eq!(
            wit_bindgen(repository),
            wit_bindgen(file(&project, "sdk/sandcron-plugin/Cargo.toml"))
        );
    }

    #[test]
    fn new_never_writes_into_a_folder_with_something_in_it() {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(dir.path().join("mine.txt"), "keep me").expect("writing");
        let files = render(Lang::Python, "hello");
        assert!(matches!(write(dir.path(), &files), Err(AuthoringError::NotEmpty(_))));
        assert_eq!(std::fs::read_dir(dir.path()).expect("listing").count(), 1);

        let fresh = dir.path().join("fresh");
        write(&fresh, &files).expect("a new folder is written");
        assert!(fresh.join("sandcron/py.typed").is_file());
        assert!(fresh.join("wit/plugin.wit").is_file());
    }
}
