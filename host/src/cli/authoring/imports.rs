//! A built component's imports against what the daemon links, read from the
//! bytes in milliseconds (the daemon learns the same only after compiling
//! it, which takes seconds): WASI preview 2 (0.2.x) interfaces of
//! `wasmtime_wasi::p2::add_to_linker_async`, and `sandcron:plugin/*`.

use std::path::Path;

use wasmparser::{ComponentExternalKind, ComponentTypeRef, Parser, Payload, TypeBounds};

use super::error::AuthoringError;

/// The WASI 0.2 interfaces the daemon links (`package/interface`), as
/// `wasmtime_wasi::p2::add_to_linker_async` adds them. wasi:http is not
/// among them.
const WASI_P2: &[&str] = &[
    "io/error",
    "io/poll",
    "io/streams",
    "clocks/monotonic-clock",
    "clocks/wall-clock",
    "random/random",
    "random/insecure",
    "random/insecure-seed",
    "cli/environment",
    "cli/exit",
    "cli/stdin",
    "cli/stdout",
    "cli/stderr",
    "cli/terminal-input",
    "cli/terminal-output",
    "cli/terminal-stdin",
    "cli/terminal-stdout",
    "cli/terminal-stderr",
    "filesystem/types",
    "filesystem/preopens",
    "sockets/network",
    "sockets/instance-network",
    "sockets/tcp",
    "sockets/tcp-create-socket",
    "sockets/udp",
    "sockets/udp-create-socket",
    "sockets/ip-name-lookup",
];

/// Whether the daemon links an import of this name
/// (`wasi:io/poll@0.2.9`, `sandcron:plugin/kv@0.1.0`).
pub fn is_linked(import: &str) -> bool {
    if let Some(interface) = import.strip_prefix("sandcron:plugin/") {
        return !interface.is_empty();
    }
    let Some(rest) = import.strip_prefix("wasi:") else {
        return false;
    };
    let Some((interface, version)) = rest.split_once('@') else {
        return false;
    };
    // wasmtime matches any 0.2.x import to its own 0.2 implementation.
    version.starts_with("0.2.") && WASI_P2.contains(&interface)
}

/// What a component imports (but types) and exports at its top level.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Surface {
    /// Import names, in order.
    pub imports: Vec<String>,
    /// Names of exported functions.
    pub functions: Vec<String>,
}

/// Reads the top-level imports and exported functions of a component.
pub fn surface(bytes: &[u8]) -> Result<Surface, String> {
    let mut surface = Surface::default();
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|error| error.to_string())? {
            Payload::Version { encoding, .. } if depth == 0 && encoding != wasmparser::Encoding::Component => {
                return Err("it is a core WebAssembly module, not a component".to_string());
            }
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    let import = import.map_err(|error| error.to_string())?;
                    // A world's `use` of a type (`run-context`) is a type
                    // import equal to one of an interface: nothing to link.
                    if matches!(import.ty, ComponentTypeRef::Type(TypeBounds::Eq(_))) {
                        continue;
                    }
                    surface.imports.push(import.name.name.to_string());
                }
            }
            Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    let export = export.map_err(|error| error.to_string())?;
                    if export.kind == ComponentExternalKind::Func {
                        surface.functions.push(export.name.name.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(surface)
}

/// Refuses a built component the daemon would refuse for its imports or
/// for lacking the `run` export.
pub fn check(path: &Path) -> Result<(), AuthoringError> {
    let bytes = std::fs::read(path).map_err(|error| AuthoringError::Io {
        what: format!("reading {}", path.display()),
        error,
    })?;
    let surface = surface(&bytes).map_err(|reason| AuthoringError::BadComponent {
        path: path.to_path_buf(),
        reason,
    })?;
    let unlinked: Vec<String> = surface.imports.into_iter().filter(|name| !is_linked(name)).collect();
    if !unlinked.is_empty() {
        return Err(AuthoringError::UnlinkedImports {
            path: path.to_path_buf(),
            imports: unlinked,
        });
    }
    if !surface.functions.iter().any(|name| name == "run") {
        return Err(AuthoringError::BadComponent {
            path: path.to_path_buf(),
            reason: "it does not export the job world's `run` function".to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_toolchains_import_is_linked() {
        // As componentize-py 0.25.1, componentize-qjs 0.4.5 and wit-bindgen
        // components import them.
        for name in [
            "wasi:io/poll@0.2.9",
            "wasi:cli/environment@0.2.12",
            "wasi:random/insecure-seed@0.2.12",
            "wasi:sockets/ip-name-lookup@0.2.9",
            "wasi:filesystem/preopens@0.2.6",
            "sandcron:plugin/kv@0.1.0",
            "sandcron:plugin/log@0.1.0",
        ] {
            assert!(is_linked(name), "{name}");
        }
    }

    #[test]
    fn what_the_daemon_does_not_link_is_not() {
        for name in [
            "wasi:http/types@0.2.10",
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:io/poll@0.3.0",
            "wasi:io/poll",
            "wasi:clocks/timezone@0.2.6",
            "acme:tools/thing@1.0.0",
            "sandcron:plugin/",
            "run",
        ] {
            assert!(!is_linked(name), "{name}");
        }
    }

    /// A component (not valid, only well formed) importing `imports` as
    /// instances and exporting `functions`.
    fn component(imports: &[&str], functions: &[&str]) -> Vec<u8> {
        fn section(bytes: &mut Vec<u8>, id: u8, body: &[u8]) {
            bytes.push(id);
            bytes.push(u8::try_from(body.len()).expect("a short section"));
            bytes.extend_from_slice(body);
        }
        fn name(body: &mut Vec<u8>, name: &str) {
            body.push(0x00);
            body.push(u8::try_from(name.len()).expect("a short name"));
            body.extend_from_slice(name.as_bytes());
        }
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        // Type 0: an instance type with no declarations.
        section(&mut bytes, 7, &[1, 0x42, 0]);
        let mut body = vec![u8::try_from(imports.len() + 1).expect("few imports")];
        // A type a world uses from an interface (`run-context`): not linked.
        name(&mut body, "run-context");
        body.extend_from_slice(&[0x03, 0x00, 0]); // a type equal to type 0
        for import in imports {
            name(&mut body, import);
            body.extend_from_slice(&[0x05, 0]); // an instance of type 0
        }
        section(&mut bytes, 10, &body);
        let mut body = vec![u8::try_from(functions.len()).expect("few exports")];
        for function in functions {
            name(&mut body, function);
            body.extend_from_slice(&[0x01, 0, 0]); // function 0, no type ascribed
        }
        section(&mut bytes, 11, &body);
        bytes
    }

    fn check_bytes(bytes: &[u8]) -> Result<(), AuthoringError> {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("plugin.wasm");
        std::fs::write(&path, bytes).expect("writing");
        check(&path)
    }

    #[test]
    fn a_component_of_linked_imports_with_run_passes() {
        let bytes = component(&["wasi:io/poll@0.2.12", "sandcron:plugin/kv@0.1.0"], &["run"]);
        assert_eq!(
            surface(&bytes).expect("a component"),
            Surface {
                imports: vec![
                    "wasi:io/poll@0.2.12".to_string(),
                    "sandcron:plugin/kv@0.1.0".to_string()
                ],
                functions: vec!["run".to_string()],
            }
        );
        check_bytes(&bytes).expect("the daemon links all of it");
    }

    #[test]
    fn a_component_importing_what_the_daemon_lacks_is_refused_naming_it() {
        let bytes = component(&["wasi:io/poll@0.2.12", "wasi:http/types@0.2.10"], &["run"]);
        let error = check_bytes(&bytes).expect_err("wasi:http is not linked");
        assert!(
            matches!(&error, AuthoringError::UnlinkedImports { imports, .. } if imports == &["wasi:http/types@0.2.10"])
        );
        assert!(error.to_string().contains("wasi:http/types@0.2.10"), "{error}");
    }

    #[test]
    fn a_component_without_run_is_refused() {
        let bytes = component(&["sandcron:plugin/log@0.1.0"], &["greet"]);
        let error = check_bytes(&bytes).expect_err("no run export");
        assert!(error.to_string().contains("`run`"), "{error}");
    }

    #[test]
    fn a_core_module_and_garbage_are_not_components() {
        let core_module = b"\0asm\x01\0\0\0";
        assert!(surface(core_module).expect_err("a core module").contains("core"));
        assert!(surface(b"not wasm at all").is_err());
    }
}
