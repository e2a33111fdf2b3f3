//! What can go wrong with a plugin operation, for callers to match on.

use crate::sandbox::ComponentError;
use crate::store::StoreError;

/// Why a plugin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No bytes were sent.
    #[error("the request body is empty; send the component's bytes")]
    Empty,
    /// More bytes than the configured cap.
    #[error("the plugin is larger than the {limit}-byte upload limit")]
    TooLarge {
        /// The cap.
        limit: u64,
    },
    /// The `name` is missing or malformed.
    #[error("name: {0}")]
    InvalidName(String),
    /// Not a usable component.
    #[error(transparent)]
    Component(#[from] ComponentError),
    /// No plugin of that name.
    #[error("no plugin named {name:?}")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name exists but not that version.
    #[error("plugin {name:?} has no version {version}")]
    VersionNotFound {
        /// The name.
        name: String,
        /// The version asked for.
        version: u32,
    },
    /// A built-in plugin (or a name reserved for them) cannot be uploaded
    /// over or deleted; the message says which and why.
    #[error("{0}")]
    Builtin(String),
    /// Jobs still use the plugin.
    #[error("plugin {name:?} is used by jobs: {}", jobs.join(", "))]
    InUse {
        /// The name.
        name: String,
        /// Names of the jobs using it.
        jobs: Vec<String>,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Compiling or loading failed on the host side.
    #[error("{0}")]
    Internal(String),
}
