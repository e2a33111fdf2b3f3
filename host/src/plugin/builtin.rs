//! Built-in plugins: components built from the crates under `plugins/std/`
//! by `host/build.rs` and embedded in the binary. Every tenant has them
//! without an upload, under names with the `std.` prefix; none can be
//! uploaded over or deleted, and none counts against a tenant's
//! `plugin_bytes`. They run as any plugin does (same sandbox, same
//! imports); the registry compiles each once per engine family, on its
//! first run, and keeps the code in memory for the daemon's life.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};

use super::error::PluginError;
use crate::model::{PluginRef, PluginVersion};

/// The prefix of every built-in's name; no upload may take a name with it.
pub const PREFIX: &str = "std.";

/// One built-in plugin.
pub struct Builtin {
    /// Its name (`std.http`).
    pub name: &'static str,
    /// Its version: stays the same while what it does stays the same, so
    /// jobs may pin it (`std.http@1`).
    pub version: u32,
    /// The component.
    pub bytes: &'static [u8],
    /// sha256 of the bytes, hashed on first use.
    digest: LazyLock<String>,
}

/// `std.http`: one HTTP request (plugins/std/http).
const STD_HTTP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/std_http.wasm"));

/// Every built-in plugin.
static BUILTINS: [Builtin; 1] = [Builtin {
    name: "std.http",
    version: 1,
    bytes: STD_HTTP,
    digest: LazyLock::new(|| super::digest::digest(STD_HTTP)),
}];

impl Builtin {
    /// sha256 of its bytes, hex: the same for the same bytes, so a daemon
    /// built from the same sources gives it the same digest.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The built-in as a version of a tenant's plugin. It was never
    /// uploaded: its date is the Unix epoch, and the API shows none.
    pub fn version_of(&self, tenant: &str) -> PluginVersion {
        PluginVersion {
            tenant: tenant.to_string(),
            name: self.name.to_string(),
            version: self.version,
            digest: self.digest().to_string(),
            size: self.bytes.len() as u64,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }
}

/// Every built-in plugin.
pub fn all() -> &'static [Builtin] {
    &BUILTINS
}

/// The built-in plugin called `name`.
pub fn named(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|builtin| builtin.name == name)
}

/// The built-in plugin whose bytes have this digest.
pub fn with_digest(digest: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|builtin| builtin.digest() == digest)
}

/// Is `name` one only a built-in may have?
pub fn is_reserved(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// What a reference to a built-in (`std.http`, `std.http@1`) resolves to;
/// None when it names no built-in.
pub(super) fn resolve(tenant: &str, reference: &str) -> Option<Result<PluginVersion, PluginError>> {
    if !is_reserved(reference) {
        return None;
    }
    let parsed = PluginRef::parse(reference).ok()?;
    let builtin = named(&parsed.name)?;
    Some(match parsed.version {
        Some(version) if version != builtin.version => Err(PluginError::VersionNotFound {
            name: parsed.name,
            version,
        }),
        _ => Ok(builtin.version_of(tenant)),
    })
}

/// The digest this daemon's built-in has for a run's reference
/// (`std.http@1`), whichever bytes the run was queued with; None when the
/// reference is to no built-in (or to a version this daemon lacks).
pub fn current_digest(reference: &str) -> Option<&'static str> {
    if !is_reserved(reference) {
        return None;
    }
    let parsed = PluginRef::parse(reference).ok()?;
    let builtin = named(&parsed.name)?;
    parsed
        .version
        .is_none_or(|version| version == builtin.version)
        .then(|| builtin.digest())
}

/// Refuses an upload under a built-in's name, or under any other name with
/// the reserved prefix.
pub(super) fn check_upload(name: &str) -> Result<(), PluginError> {
    if named(name).is_some() {
        return Err(PluginError::Builtin(format!(
            "{name:?} is a built-in plugin: every tenant has it and it cannot be uploaded over"
        )));
    }
    if is_reserved(name) {
        return Err(PluginError::Builtin(format!(
            "{name:?}: names starting with {PREFIX:?} are reserved for built-in plugins; choose another name"
        )));
    }
    Ok(())
}

/// Refuses to delete a built-in. (A plugin with the reserved prefix that a
/// daemon from before stored may be deleted.)
pub(super) fn check_delete(name: &str) -> Result<(), PluginError> {
    match named(name) {
        Some(_) => Err(PluginError::Builtin(format!(
            "{name:?} is a built-in plugin: every tenant has it and it cannot be deleted"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_components_with_stable_reserved_names_and_digests() {
        for builtin in all() {
            assert!(is_reserved(builtin.name), "{}", builtin.name);
            assert_eq!(crate::sandbox::check_header(builtin.bytes), Ok(()), "{}", builtin.name);
            assert_eq!(builtin.digest(), crate::plugin::digest::digest(builtin.bytes));
            assert_eq!(
                with_digest(builtin.digest()).map(|found| found.name),
                Some(builtin.name)
            );
            let version = builtin.version_of("acme");
            assert_eq!(
                (version.reference(), version.size),
                (
                    format!("{}@{}", builtin.name, builtin.version),
                    builtin.bytes.len() as u64
                )
            );
        }
        assert_eq!(named("std.http").map(|builtin| builtin.version), Some(1));
        assert!(named("std.nothing").is_none() && with_digest("00").is_none());
        assert!(is_reserved("std.anything") && !is_reserved("stdhttp") && !is_reserved("my.std.http"));
        let digest = named("std.http").map(Builtin::digest);
        assert_eq!(current_digest("std.http@1"), digest);
        assert_eq!(current_digest("std.http"), digest);
        assert_eq!(current_digest("std.http@2"), None);
        assert_eq!(current_digest("hello@1"), None);
    }
}
