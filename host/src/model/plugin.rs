//! Plugin versions and their compiled artifacts.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One uploaded version of a named plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    /// Owning tenant.
    pub tenant: String,
    /// The plugin's name.
    pub name: String,
    /// 1, 2, 3, ... per name.
    pub version: u32,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// Size of the component bytes.
    pub size: u64,
    /// When this version was uploaded.
    pub created_at: DateTime<Utc>,
}

impl PluginVersion {
    /// `name@version`.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }
}

/// A compiled component, cached by digest and engine fingerprint so a
/// restart loads it instead of compiling again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// sha256 of the component bytes it was compiled from.
    pub digest: String,
    /// The engine's compatibility fingerprint.
    pub engine: String,
    /// When it was compiled.
    pub compiled_at: DateTime<Utc>,
    /// How long compiling took, milliseconds.
    pub compile_ms: u64,
    /// sha256 of the serialized artifact, checked before loading it.
    pub artifact_digest: String,
}

/// How a job names its plugin: `name` (latest) or `name@3` (pinned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// The plugin's name.
    pub name: String,
    /// A pinned version, or None for the latest.
    pub version: Option<u32>,
}

impl PluginRef {
    /// Parses `name` or `name@N`.
    pub fn parse(text: &str) -> Result<PluginRef, String> {
        let (name, version) = match text.split_once('@') {
            Some((name, version)) => {
                let version: u32 = version
                    .parse()
                    .ok()
                    .filter(|version| *version > 0)
                    .ok_or_else(|| format!("{text:?}: the version after '@' must be a number from 1"))?;
                (name, Some(version))
            }
            None => (text, None),
        };
        crate::model::name::check_name(name).map_err(|problem| format!("{text:?}: the plugin name {problem}"))?;
        Ok(PluginRef {
            name: name.to_string(),
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_refs_parse_name_and_optional_version() {
        assert_eq!(
            PluginRef::parse("hello").unwrap(),
            PluginRef {
                name: "hello".into(),
                version: None
            }
        );
        assert_eq!(
            PluginRef::parse("hello@3").unwrap(),
            PluginRef {
                name: "hello".into(),
                version: Some(3)
            }
        );
        for bad in ["", "hello@", "hello@0", "hello@x", "@3", "he llo", "a@1@2"] {
            assert!(PluginRef::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
